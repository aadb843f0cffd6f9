"""The ceremony page (/ui/) refuses, guards and explains, in real headless Chromium.

Every refusal shows the server's sentence; a page of another origin (another
port, a rebinding name) cannot submit a share; adoption and "Check my share"
work in the browser; the page is labelled, usable by keyboard and at 200 %.
"""

import base64
import re

from playwright.sync_api import expect

import page_steps
from app import shamir
from browser import REBOUND, REFUSED_RESOURCE, ForeignSite
from page_steps import (
    LIVE_MS,
    V1,
    clean,
    healthy,
    init_service,
    lead_starts,
    share_field,
    submit_as_holder,
    view,
)

# The fixtures: one Chromium for this module, a fresh service per test, people in it.
browser, server, people = page_steps.browser, page_steps.server, page_steps.people


def test_every_refusal_shows_the_servers_sentence(server, people):
    init = init_service(server)
    keys = init["keys"]
    wrong_token = {"X-Vault-Token": "s." + "x" * 24}
    lead = people().open()
    lead.page.get_by_role("button", name="Lead").click()
    view(lead, "lead").get_by_label("Operator token").fill(wrong_token["X-Vault-Token"])
    view(lead, "lead").get_by_label("Mask it with a one-time pad that only I see").check()
    view(lead, "lead").get_by_role("button", name="Start attempt").click()
    expect(lead.page.locator("#lead-message")).to_contain_text("Refused:")
    # The same request again, outside the browser: a refusal changes nothing, so it is said again.
    said = server.put(f"{V1}/generate-share/attempt", headers=wrong_token).json()["errors"][0]
    expect(lead.page.locator("#lead-message")).to_contain_text(said)
    assert "permission denied" in said
    lead.shot("21-lead-refused-a-wrong-token")
    nonce = lead_starts(lead, init["root_token"], pad=True)

    holder = people().open()
    submit_as_holder(holder, nonce, keys[0])
    expect(holder.page.locator("#holder-message")).to_contain_text("1 of 3")
    cases = {
        "the-same-share-again": (nonce, keys[0]),
        "a-nonce-not-the-attempts": ("0" * 8 + "-0000-0000-0000-" + "0" * 12, keys[1]),
        "a-share-of-the-wrong-length": (nonce, keys[1][:-2]),
        "not-a-share": (nonce, "not a share!"),
    }
    for number, (case, (typed_nonce, share)) in enumerate(cases.items(), start=2):
        submit_as_holder(holder, typed_nonce, share)
        message = holder.page.locator("#holder-message")
        expect(message).to_contain_text("Refused:")
        said = server.put(f"{V1}/generate-share/update", json={"key": share, "nonce": typed_nonce})
        assert said.status_code == 400
        expect(message).to_contain_text(" ".join(said.json()["errors"]))
        expect(message).to_have_attribute("role", "alert")
        expect(share_field(holder)).to_have_value("")
        holder.shot(f"2{number}-holder-refused-{case}")
    assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 1  # nothing else was counted
    # Only the provoked refusals reached the console, as Chromium's own lines.
    for someone in (lead, holder):
        assert someone.foreign_requests() == [] and someone.violations() == []
        for line in someone.console_errors():
            match = REFUSED_RESOURCE.match(line)
            assert match and match.group(1) in ("400", "403"), line


def test_a_page_of_another_origin_cannot_submit_a_share(server, people, tmp_path):
    init = init_service(server)
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
    submit_as_holder(rebound, nonce, init["keys"][0])
    message = rebound.page.locator("#holder-message")
    expect(message).to_contain_text(f"Origin: http://{REBOUND}:{server.port}")
    expect(message).to_contain_text("nothing was changed")
    rebound.shot("31-rebinding-page-refused")
    assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 0

    # The service's own page at localhost, the listening address's own name, works.
    local = people(origin=f"http://localhost:{server.port}").open()
    submit_as_holder(local, nonce, init["keys"][0])
    expect(local.page.locator("#holder-message")).to_contain_text("1 of 3")
    healthy(local)


def test_adoption_and_the_custody_check_in_the_browser(server, people):
    secret = bytes(range(32))
    shares = shamir.split(secret, 5, 2, xs=[17, 90, 101, 150, 200])
    brought, known = shares[:3], shares[3:]
    lead = people(permissions=["clipboard-read", "clipboard-write"]).open()
    expect(lead.page.locator("#view-status")).to_be_visible()
    lead.page.get_by_role("button", name="Adoption").click()
    here = view(lead, "adopt")
    here.get_by_label("Threshold").fill("2")
    here.get_by_label("Shares to bring").fill("3")
    here.get_by_label("x of the other existing shares").fill("150, 200")
    here.get_by_role("button", name="Start the adoption").click()
    expect(here.locator("#adopt-started")).to_be_visible()
    nonce = here.locator("#adopt-nonce").inner_text().strip()
    token = here.locator("#adopt-token-value").input_value()
    assert token and here.locator("#adopt-cancel-token").input_value() == token
    here.get_by_role("button", name="Copy the token").click()
    assert lead.page.evaluate("navigator.clipboard.readText()") == token
    lead.shot("41-lead-started-an-adoption")
    here.get_by_role("button", name="I have kept it: hide the token").click()
    assert token not in lead.page.locator("#adopt-started").inner_html()

    holders = [people().open() for _ in brought]
    for number, (holder, share) in enumerate(zip(holders, brought, strict=True), start=1):
        expect(view(holder, "adopt")).to_be_visible()  # an adoption is in progress: its view opens
        baseline = holder.leftovers()
        form = view(holder, "adopt")
        form.get_by_label("Nonce").fill(nonce)
        form.get_by_label("Share", exact=True).fill(base64.b64encode(share).decode())
        form.get_by_role("button", name="Submit share").click()
        message = form.locator("#adopt-message")
        if number < 3:
            expect(message).to_contain_text(f"{number} of 3 shares provided")
        else:
            expect(message).to_contain_text("the share set was adopted: x 17, 90, 101, 150, 200")
            holder.shot("42-holder-completes-the-adoption")
        expect(form.get_by_label("Share", exact=True)).to_have_value("")
        clean(holder, baseline)

    # The registry: three adopted, two known only, apart in the strip by letter as well as colour.
    lead.page.get_by_role("button", name="Status").click()
    expect(lead.page.locator("#strip .cell-adopted")).to_have_count(3, timeout=LIVE_MS)
    expect(lead.page.locator("#strip .cell-known")).to_have_count(2)
    assert lead.page.locator('#strip [data-x="150"]').inner_text() == "K"
    assert lead.page.locator('#strip [data-x="17"]').inner_text() == "A"
    expect(lead.page.locator("#strip-summary")).to_contain_text(
        "5 shares exist: 0 issued, 3 adopted, 2 known"
    )
    lead.shot("43-status-after-the-adoption")

    # Check my share: a brought share is confirmed, a known one cannot be, nonsense is refused.
    holder = holders[0]
    holder.page.get_by_role("button", name="Check my share").click()
    custody = view(holder, "custody")
    field = custody.get_by_label("Share", exact=True)
    for share, expected in (
        (brought[0].hex(), "this is the share recorded at x 17"),
        (known[0].hex(), "this share was not confirmed"),
        ("abcd", "Refused:"),
    ):
        field.fill(share)
        custody.get_by_role("button", name="Check my share").click()
        expect(custody.locator("#custody-message")).to_contain_text(expected)
        expect(field).to_have_value("")
        if share == brought[0].hex():
            holder.shot("44-holder-checks-their-share")
    said = server.put(f"{V1}/shares/verify", json={"key": "abcd"}).json()["errors"][0]
    expect(custody.locator("#custody-message")).to_contain_text(said)
    registry = server.get(f"{V1}/shares").json()
    assert [s["verified_at"] is not None for s in sorted(registry["shares"], key=lambda s: s["index"])] == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert lead.foreign_requests() == [] and lead.console_errors() == [] and lead.violations() == []
    for someone in holders:
        assert someone.foreign_requests() == [] and someone.violations() == []


def test_the_page_is_labelled_usable_at_200_percent_and_states_more_than_colour(server, people):
    init = init_service(server)
    server.put(f"{V1}/generate-share/attempt", headers={"X-Vault-Token": init["root_token"]})
    # 200 % zoom of a 1100 px window: half as many CSS pixels across.
    holder = people(viewport={"width": 550, "height": 900}, device_scale_factor=2).open()
    page = holder.page
    for name in ("status", "holder", "lead", "adopt", "custody"):
        page.locator(f'.tab[data-view="{name}"]').click()
        expect(page.locator(f"#view-{name}")).to_be_visible()
        assert page.locator(f'.tab[data-view="{name}"]').get_attribute("aria-current") == "page"
        # Nothing sticks out sideways (a wide table scrolls inside its own box).
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        if name == "holder":
            holder.shot("51-holder-view-at-200-percent")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, textarea, select")]
              .filter((e) => e.type !== "hidden" && e.labels.length === 0 && !e.getAttribute("aria-label"))
              .map((e) => e.id)"""
    )
    assert unlabelled == []
    nameless = page.evaluate(
        """() => [...document.querySelectorAll("button")].filter((b) => !b.textContent.trim()).length"""
    )
    assert nameless == 0
    # Every state a message shows is in words and an icon, not in its colour alone.
    page.locator('.tab[data-view="custody"]').click()
    view(holder, "custody").get_by_label("Share", exact=True).fill("nonsense")
    view(holder, "custody").get_by_role("button", name="Check my share").click()
    expect(page.locator("#custody-message")).to_contain_text("\u2716 Refused:")
    # The tabs work from the keyboard: focus one, press Enter.
    page.locator('.tab[data-view="status"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#view-status")).to_be_visible()
    expect(page.locator("#status-title")).to_be_focused()


def test_live_updates_pause_after_30_minutes_without_a_change(server, people):
    """The page polls on its own, pauses after 30 minutes without a change, and resumes on a click."""
    init_service(server)
    watcher = people().open()
    page = watcher.page
    page.clock.install()  # from now on the page's timers and Date are the test's
    with page.expect_request(lambda r: "/v1/sys/health" in r.url):
        pass  # the next round, on the real timer set before the fake clock
    page.clock.fast_forward("31:00")  # nothing changed for more than 30 minutes
    expect(page.locator("#live-text")).to_contain_text("Live updates are paused")
    paused = sum("/v1/sys/health" in url for url in watcher.requests)
    page.clock.fast_forward("01:00:00")
    assert page.evaluate("document.hidden") is False  # one round trip to the page: any request is seen
    assert sum("/v1/sys/health" in url for url in watcher.requests) == paused  # no request while paused
    watcher.shot("52-live-updates-paused")
    with page.expect_request(lambda r: "/v1/sys/health" in r.url):
        page.get_by_role("button", name="Resume live updates").click()
    expect(page.locator("#live-notice")).to_be_hidden()
    healthy(watcher)
