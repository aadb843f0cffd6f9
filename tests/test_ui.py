"""The ceremony page (/ui/) in real headless Chromium, against the real gunicorn.

The lead and every holder each have their own browser context, as if each
sat at their own machine; the service runs in token mode, its default. Each
step saves a screenshot in build/ui-screenshots/ (see tests/browser.py).
"""

import base64
import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from browser import REBOUND, REFUSED_RESOURCE, ForeignSite, launch, person
from gpgtools import Keyring
from helpers import same_key
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


def _init(server, shares=5, threshold=3) -> dict:
    reply = server.put(f"{V1}/init", json={"secret_shares": shares, "secret_threshold": threshold})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _clean(someone, baseline: dict) -> None:
    """Assert the page left nothing behind: no storage, cookie, cache, database, history entry."""
    found = someone.leftovers()
    assert found == baseline, (found, baseline)
    assert found["local"] == found["session"] == found["caches"] == found["databases"] == 0
    assert found["cookie"] == "" and found["context_cookies"] == 0 and found["workers"] == 0


def _healthy(*everyone) -> None:
    """Assert no page made a request elsewhere, logged an error, or hit the page's policy."""
    for someone in everyone:
        assert someone.foreign_requests() == []
        assert someone.console_errors() == []
        assert someone.violations() == []


def _view(someone, name: str):
    """The locator of one view of the page."""
    return someone.page.locator(f"#view-{name}")


def _share_field(holder):
    return _view(holder, "holder").get_by_label("Share", exact=True)


def _submit_as_holder(holder, nonce: str, share: str) -> None:
    view = _view(holder, "holder")
    view.get_by_label("Nonce").fill(nonce)
    view.get_by_label("Share", exact=True).fill(share)
    view.get_by_role("button", name="Submit share").click()


def _lead_starts(lead, token: str, *, pad: bool = False, key_file=None, key_text=None) -> str:
    """Start an attempt from the lead's view; return the nonce it shows."""
    page = lead.page
    page.get_by_role("button", name="Lead").click()
    view = _view(lead, "lead")
    view.get_by_label("Operator token").fill(token)
    if pad:
        view.get_by_label("Mask it with a one-time pad that only I see").check()
    if key_file is not None:
        view.get_by_label("The new holder's public key file").set_input_files(str(key_file))
    if key_text is not None:
        view.get_by_label("Or paste the public key").fill(key_text)
    view.get_by_role("button", name="Start attempt").click()
    expect(page.locator("#lead-started")).to_be_visible()
    nonce = page.locator("#lead-nonce").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", nonce), nonce
    return nonce


def test_a_whole_ceremony_with_a_one_time_pad(server, people):
    init = _init(server)
    keys = init["keys"]
    lead = people(permissions=["clipboard-read", "clipboard-write"]).open()
    expect(lead.page.locator("#view-status")).to_be_visible()  # nothing in progress: the status
    expect(lead.page.locator("#strip .cell-issued")).to_have_count(5)
    lead_baseline = lead.leftovers()
    lead.shot("01-status-before")

    nonce = _lead_starts(lead, init["root_token"], pad=True)
    pad_field = lead.page.get_by_label("One-time pad (base64)")
    pad = pad_field.input_value()
    assert len(base64.b64decode(pad, validate=True)) == 33
    lead.page.get_by_role("button", name="Copy the pad").click()
    expect(lead.page.locator("#lead-pad-message")).to_contain_text("copied")
    assert lead.page.evaluate("navigator.clipboard.readText()") == pad
    lead.shot("02-lead-started-nonce-and-pad")
    lead.page.get_by_role("button", name="I have kept it: hide the pad").click()
    expect(lead.page.locator("#lead-pad")).to_be_hidden()
    assert pad not in lead.page.content()  # shown once: gone from the page
    _clean(lead, lead_baseline)

    holders = [people().open() for _ in range(3)]
    for number, holder in enumerate(holders, start=1):
        page = holder.page
        expect(page.locator("#view-holder")).to_be_visible()  # an attempt is in progress: the holder's view
        expect(page.locator("#holder-progress-text")).to_contain_text(f"{number - 1} of 3")
        baseline = holder.leftovers()
        if number == 1:
            holder.shot("03-holder-opens-the-page")
        if number == 2:
            # The keyboard alone: Tab to the Nonce field, type, Tab to Share, type, Enter.
            for _ in range(20):
                if page.evaluate("document.activeElement.id") == "holder-nonce":
                    break
                page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == "holder-nonce"
            page.keyboard.type(nonce)
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == "holder-share"
            page.keyboard.type(keys[1])
            page.keyboard.press("Enter")
        else:
            _submit_as_holder(holder, nonce, keys[number - 1])
        message = page.locator("#holder-message")
        if number < 3:
            expect(message).to_contain_text(f"your share was accepted: {number} of 3 shares provided")
            expect(_share_field(holder)).to_have_value("")
            holder.shot(f"0{3 + number}-holder-{number}-accepted")
            # The lead's page follows without a reload.
            expect(lead.page.locator("#lead-progress-text")).to_contain_text(
                f"{number} of 3", timeout=LIVE_MS
            )
        else:
            done = page.locator("#holder-done")
            expect(done).to_contain_text("Your share completed the attempt")
            expect(_share_field(holder)).to_have_value("")
            expect(done).to_be_visible()
            expect(done).to_contain_text("masked with the lead's one-time pad")
            expect(done).to_contain_text("generate-share decode --otp - --key-file new-share.b64")
            holder.shot("06-holder-3-receives-the-masked-share")
            with page.expect_download() as downloading:
                page.get_by_role("button", name="Download the new share").click()
            download = downloading.value
            assert download.suggested_filename == "new-share.b64"
            masked = base64.b64decode(Path(download.path()).read_bytes().strip(), validate=True)
            page.get_by_role("button", name="I have saved it: hide the new share").click()
            expect(done).to_be_hidden()
            expect(_share_field(holder)).to_be_visible()
            assert base64.b64encode(masked).decode() not in page.content()
        _clean(holder, baseline)

    new_share = bytes(m ^ p for m, p in zip(masked, base64.b64decode(pad), strict=True))
    assert same_key(new_share.hex(), keys, 3)
    assert server.put(f"{V1}/shares/verify", json={"key": new_share.hex()}).json()["valid"] is True

    expect(lead.page.locator("#lead-progress-text")).to_contain_text(
        "The attempt completed: a new share was issued (6 shares exist now)", timeout=LIVE_MS
    )
    lead.shot("07-lead-after-the-ceremony")
    lead.page.get_by_role("button", name="Status").click()
    expect(lead.page.locator("#strip .cell-issued")).to_have_count(6, timeout=LIVE_MS)
    expect(lead.page.locator("#strip-summary")).to_contain_text("6 shares exist: 6 issued")
    expect(lead.page.locator("#registry-rows tr")).to_have_count(6)
    lead.shot("08-status-after-the-ceremony")
    _clean(lead, lead_baseline)
    _healthy(lead, *holders)


def test_a_pgp_ceremony_whose_downloaded_share_gpg_decrypts(server, people, keyring: Keyring, tmp_path):
    init = _init(server)
    keys = init["keys"]
    lead = people().open()
    name = keyring.ECC
    armored = keyring.public_armored(name).decode()

    # Started with the pasted armored key, then cancelled: every share submitted to it is forgotten.
    nonce = _lead_starts(lead, init["root_token"], key_text=armored)
    holder = people().open()
    _submit_as_holder(holder, nonce, keys[0])
    expect(holder.page.locator("#holder-message")).to_contain_text("1 of 3")
    lead.page.get_by_role("button", name="Cancel the attempt").click()
    lead.page.get_by_role("button", name="Yes, cancel it").click()
    expect(lead.page.locator("#lead-message")).to_contain_text("the attempt was cancelled")
    assert server.get(f"{V1}/generate-share/attempt").json()["started"] is False

    # Started again with the binary key file, as gpg --export writes it.
    key_file = tmp_path / "new-holder.gpg"
    key_file.write_bytes(keyring.public_binary(name))
    nonce = _lead_starts(lead, init["root_token"], key_file=key_file)
    lead.shot("11-lead-started-with-a-pgp-key")
    # The fingerprints, as gpg itself prints them, for the room to compare out loud.
    listing = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(keyring.home),
            "--fingerprint",
            "--with-subkey-fingerprints",
            keyring.fingerprint(name),
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    shown = [t.strip() for t in lead.page.locator("#lead-started-keys .fingerprint").all_inner_texts()]
    assert len(shown) == 2 and all(t in listing for t in shown), (shown, listing)
    assert shown[0].replace(" ", "").lower() == keyring.fingerprint(name)
    assert shown[1].replace(" ", "").lower() == keyring.encryption_subkey(name)

    holders = [holder, people().open(), people().open()]
    for number, someone in enumerate(holders, start=1):
        expect(someone.page.locator("#holder-progress-text")).to_contain_text(
            f"{number - 1} of 3", timeout=LIVE_MS
        )
        holder_shown = [
            t.strip() for t in someone.page.locator("#holder-protection .fingerprint").all_inner_texts()
        ]
        assert holder_shown == shown
        _submit_as_holder(someone, nonce, keys[number])
    last = holders[-1].page
    done = last.locator("#holder-done")
    expect(done).to_contain_text("encrypted to the new holder's PGP key")
    expect(done).to_contain_text("generate-share decode --key-file new-share.b64")
    holders[-1].shot("12-holder-3-receives-the-encrypted-share")
    with last.expect_download() as downloading:
        last.get_by_role("button", name="Download the new share").click()
    message = base64.b64decode(Path(downloading.value.path()).read_bytes().strip(), validate=True)
    new_share = keyring.decrypt(message)
    assert same_key(new_share.hex(), [keys[3], keys[4], keys[0]], 3)
    _healthy(lead, *holders)


def test_every_refusal_shows_the_servers_sentence(server, people):
    init = _init(server)
    keys = init["keys"]
    wrong_token = {"X-Vault-Token": "s." + "x" * 24}
    lead = people().open()
    lead.page.get_by_role("button", name="Lead").click()
    _view(lead, "lead").get_by_label("Operator token").fill(wrong_token["X-Vault-Token"])
    _view(lead, "lead").get_by_label("Mask it with a one-time pad that only I see").check()
    _view(lead, "lead").get_by_role("button", name="Start attempt").click()
    expect(lead.page.locator("#lead-message")).to_contain_text("Refused:")
    # The same request again, outside the browser: a refusal changes nothing, so it is said again.
    said = server.put(f"{V1}/generate-share/attempt", headers=wrong_token).json()["errors"][0]
    expect(lead.page.locator("#lead-message")).to_contain_text(said)
    assert "permission denied" in said
    lead.shot("21-lead-refused-a-wrong-token")
    nonce = _lead_starts(lead, init["root_token"], pad=True)

    holder = people().open()
    _submit_as_holder(holder, nonce, keys[0])
    expect(holder.page.locator("#holder-message")).to_contain_text("1 of 3")
    cases = {
        "the-same-share-again": (nonce, keys[0]),
        "a-nonce-not-the-attempts": ("0" * 8 + "-0000-0000-0000-" + "0" * 12, keys[1]),
        "a-share-of-the-wrong-length": (nonce, keys[1][:-2]),
        "not-a-share": (nonce, "not a share!"),
    }
    for number, (case, (typed_nonce, share)) in enumerate(cases.items(), start=2):
        _submit_as_holder(holder, typed_nonce, share)
        message = holder.page.locator("#holder-message")
        expect(message).to_contain_text("Refused:")
        said = server.put(f"{V1}/generate-share/update", json={"key": share, "nonce": typed_nonce})
        assert said.status_code == 400
        expect(message).to_contain_text(" ".join(said.json()["errors"]))
        expect(message).to_have_attribute("role", "alert")
        expect(_share_field(holder)).to_have_value("")
        holder.shot(f"2{number}-holder-refused-{case}")
    assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 1  # nothing else was counted
    # Only the provoked refusals reached the console, as Chromium's own lines.
    for someone in (lead, holder):
        assert someone.foreign_requests() == [] and someone.violations() == []
        for line in someone.console_errors():
            match = REFUSED_RESOURCE.match(line)
            assert match and match.group(1) in ("400", "403"), line


def test_a_page_of_another_origin_cannot_submit_a_share(server, people, tmp_path):
    init = _init(server)
    token = init["root_token"]
    nonce = server.put(f"{V1}/generate-share/attempt", headers={"X-Vault-Token": token}).json()["nonce"]
    body = f'{{"key": "{init["keys"][0]}", "nonce": "{nonce}"}}'

    # A page on another port of the same host: a form post and a no-cors fetch.
    with ForeignSite(server.url + f"{V1}/generate-share/update", body) as site:
        visitor = people(origin=site.url)
        visitor.page.goto(site.url + "/")
        # The fetch first, then the form: the page ends on the service's refusal.
        visitor.page.wait_for_url(re.compile(re.escape(server.url)))
        assert "another origin" in visitor.page.content()  # and was refused
    assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 0
    refused = [
        line for line in server.output().splitlines() if '"path": "/v1/sys/generate-share/update"' in line
    ]
    assert len(refused) == 2 and all('"status": 403' in line for line in refused), refused

    # The service's own page under a name that points at it (DNS rebinding):
    # Host and Origin agree, and it is still refused.
    rebound = people(origin=f"http://{REBOUND}:{server.port}").open()
    _submit_as_holder(rebound, nonce, init["keys"][0])
    message = rebound.page.locator("#holder-message")
    expect(message).to_contain_text(f"Origin: http://{REBOUND}:{server.port}")
    expect(message).to_contain_text("nothing was changed")
    rebound.shot("31-rebinding-page-refused")
    assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 0

    # The service's own page at localhost, the listening address's own name, works.
    local = people(origin=f"http://localhost:{server.port}").open()
    _submit_as_holder(local, nonce, init["keys"][0])
    expect(local.page.locator("#holder-message")).to_contain_text("1 of 3")
    _healthy(local)
