"""Whole ceremonies on the ceremony page (/ui/) in real headless Chromium, against the real gunicorn.

The lead and every holder each have their own browser context; the service
runs in token mode, its default. Each step saves a screenshot in
build/ui-screenshots/ (see tests/browser.py). tests/test_ui_guards.py holds
the refusals, the other origins, adoption, custody and accessibility.
"""

import base64
import re
import subprocess
from pathlib import Path

from playwright.sync_api import expect

import page_steps
from gpgtools import Keyring
from helpers import same_key
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


def test_a_whole_ceremony_with_a_one_time_pad(server, people):
    init = init_service(server)
    keys = init["keys"]
    lead = people(permissions=["clipboard-read", "clipboard-write"]).open()
    expect(lead.page.locator("#view-status")).to_be_visible()  # nothing in progress: the status
    expect(lead.page.locator("#strip .cell-issued")).to_have_count(5)
    expect(lead.page.locator("#strip .cell")).to_have_count(255)  # every x from 1 to 255, once
    lead_baseline = lead.leftovers()
    lead.shot("01-status-before")

    nonce = lead_starts(lead, init["root_token"], pad=True)
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
    clean(lead, lead_baseline)

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
            submit_as_holder(holder, nonce, keys[number - 1])
        message = page.locator("#holder-message")
        if number < 3:
            expect(message).to_contain_text(f"your share was accepted: {number} of 3 shares provided")
            expect(share_field(holder)).to_have_value("")
            holder.shot(f"0{3 + number}-holder-{number}-accepted")
            # The lead's page follows without a reload.
            expect(lead.page.locator("#lead-progress-text")).to_contain_text(
                f"{number} of 3", timeout=LIVE_MS
            )
        else:
            done = page.locator("#holder-done")
            expect(done).to_contain_text("Your share completed the attempt")
            expect(share_field(holder)).to_have_value("")
            expect(done).to_be_visible()
            expect(done).to_contain_text("masked with the lead's one-time pad")
            expect(done).to_contain_text(
                re.compile(r"generate-share decode --otp - --check [0-9a-f]{32} --key-file new-share\.b64")
            )
            holder.shot("06-holder-3-receives-the-masked-share")
            with page.expect_download() as downloading:
                page.get_by_role("button", name="Download the new share").click()
            download = downloading.value
            assert download.suggested_filename == "new-share.b64"
            masked = base64.b64decode(Path(download.path()).read_bytes().strip(), validate=True)
            page.get_by_role("button", name="I have saved it: hide the new share").click()
            expect(done).to_be_hidden()
            expect(share_field(holder)).to_be_visible()
            assert base64.b64encode(masked).decode() not in page.content()
        clean(holder, baseline)

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
    clean(lead, lead_baseline)
    healthy(lead, *holders)


def test_a_pgp_ceremony_whose_downloaded_share_gpg_decrypts(server, people, keyring: Keyring, tmp_path):
    init = init_service(server)
    keys = init["keys"]
    lead = people().open()
    name = keyring.ECC
    armored = keyring.public_armored(name).decode()

    # Started with the pasted armored key, then cancelled: every share submitted to it is forgotten.
    nonce = lead_starts(lead, init["root_token"], key_text=armored)
    holder = people().open()
    submit_as_holder(holder, nonce, keys[0])
    expect(holder.page.locator("#holder-message")).to_contain_text("1 of 3")
    lead.page.get_by_role("button", name="Cancel the attempt").click()
    lead.page.get_by_role("button", name="Yes, cancel it").click()
    expect(lead.page.locator("#lead-message")).to_contain_text("the attempt was cancelled")
    assert server.get(f"{V1}/generate-share/attempt").json()["started"] is False

    # Started again with the binary key file, as gpg --export writes it.
    key_file = tmp_path / "new-holder.gpg"
    key_file.write_bytes(keyring.public_binary(name))
    nonce = lead_starts(lead, init["root_token"], key_file=key_file)
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
        if number == 2:
            here = view(someone, "holder")
            here.get_by_label("Nonce").fill(nonce)
            here.get_by_label("Share", exact=True).fill(keys[number])
            someone.shot("13-holder-compares-the-fingerprints")  # the README's picture
        submit_as_holder(someone, nonce, keys[number])
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
    healthy(lead, *holders)
