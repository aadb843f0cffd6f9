"""What the tests of the ceremony page share: the browser, the service, people, and their steps.

One headless Chromium per test module (``browser``), a fresh gunicorn in token
mode per test (``server``), and ``people``, which gives each person their own
browser context, as if each sat at their own machine.
"""

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from browser import launch, person
from server import Server

V1 = "/v1/sys"
TOKEN_MODE = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}
#: How long a page may take to show what another page did: a few polls of 2 s.
LIVE_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path):
    """The real service under gunicorn, in token mode, on a fresh data folder."""
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=TOKEN_MODE) as running:
        yield running
    assert "Traceback" not in running.output()


@pytest.fixture
def people(browser, server):
    """Make people with their own contexts; close them all at the end."""
    made = []

    def make(origin=None, **options):
        someone = person(browser, origin or server.url, **options)
        made.append(someone)
        return someone

    yield make
    for someone in made:
        someone.close()


def init_service(server, shares=5, threshold=3) -> dict:
    reply = server.put(f"{V1}/init", json={"secret_shares": shares, "secret_threshold": threshold})
    assert reply.status_code == 200, reply.text
    return reply.json()


def clean(someone, baseline: dict) -> None:
    """Assert the page left nothing behind: no storage, cookie, cache, database, history entry."""
    found = someone.leftovers()
    assert found == baseline, (found, baseline)
    assert found["local"] == found["session"] == found["caches"] == found["databases"] == 0
    assert found["cookie"] == "" and found["context_cookies"] == 0 and found["workers"] == 0


def healthy(*everyone) -> None:
    """Assert no page made a request elsewhere, logged an error, or hit the page's policy."""
    for someone in everyone:
        assert someone.foreign_requests() == []
        assert someone.console_errors() == []
        assert someone.violations() == []


def view(someone, name: str):
    """The locator of one view of the page."""
    return someone.page.locator(f"#view-{name}")


def share_field(holder):
    return view(holder, "holder").get_by_label("Share", exact=True)


def submit_as_holder(holder, nonce: str, share: str) -> None:
    here = view(holder, "holder")
    here.get_by_label("Nonce").fill(nonce)
    here.get_by_label("Share", exact=True).fill(share)
    here.get_by_role("button", name="Submit share").click()


def lead_starts(lead, token: str, *, pad: bool = False, key_file=None, key_text=None) -> str:
    """Start an attempt from the lead's view; return the nonce it shows."""
    page = lead.page
    page.get_by_role("button", name="Lead").click()
    here = view(lead, "lead")
    here.get_by_label("Operator token").fill(token)
    if pad:
        here.get_by_label("Mask it with a one-time pad that only I see").check()
    if key_file is not None:
        here.get_by_label("The new holder's public key file").set_input_files(str(key_file))
    if key_text is not None:
        here.get_by_label("Or paste the public key").fill(key_text)
    here.get_by_role("button", name="Start attempt").click()
    expect(page.locator("#lead-started")).to_be_visible()
    nonce = page.locator("#lead-nonce").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", nonce), nonce
    return nonce
