"""Adopting a share set that Vault split: then generate-share mints a share of the same key."""

import base64
import json
from pathlib import Path

import pytest

from app import audit, reading, shamir
from helpers import assert_error

# Open mode: adoption as the seed does it, without the lead's token; tests/test_token.py adopts in token mode.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"
VECTORS = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"]
# The cases that leave room for one share more than the threshold.
ROOMY = [c for c in VECTORS if c["parts"] > c["threshold"]]


def case_id(case):
    return f"{len(case['secret_hex']) // 2}B-{case['threshold']}of{case['parts']}"


def adopt(client, shares, threshold, **extra):
    """Run a whole adoption; return the last reply."""
    r = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": threshold, **extra})
    assert r.status_code == 200, r.get_json()
    nonce = r.get_json()["nonce"]
    for share in shares:
        r = client.put(f"{V1}/adopt/update", json={"key": share, "nonce": nonce})
    return r


def generate(client, shares):
    """Run a generate-share ceremony; return the new share."""
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    for share in shares:
        r = client.put(f"{V1}/generate-share/update", json={"key": share, "nonce": nonce})
    body = r.get_json()
    assert body["complete"] is True, body
    return bytes.fromhex(body["key"])


def test_the_roomy_cases_are_the_expected_ones():
    assert [case_id(c) for c in ROOMY] == [
        "32B-3of5",
        "32B-5of10",
        "1B-2of3",
        "64B-4of7",
        "32B-10of255",
        "32B-2of255",
    ]


@pytest.mark.parametrize("case", ROOMY, ids=case_id)
def test_adopt_every_vault_case_then_generate_a_share_that_unseals_it(client, folder, case):
    t, shares = case["threshold"], case["shares_hex"]
    brought = shares[: t + 1]
    r = adopt(client, brought, t)
    body = r.get_json()
    assert r.status_code == 200 and body["complete"] is True
    assert body["indices"] == sorted(bytes.fromhex(s)[-1] for s in brought)
    assert body["secret_threshold"] == t and body["progress"] == t + 1
    assert client.get(f"{V1}/init").get_json() == {"initialized": True}
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["threshold"] == t and {s["origin"] for s in registry["shares"]} == {"adopted"}
    # Any t shares of the set run a generate-share ceremony; the new share,
    # with t-1 shares that never came near the service, gives Vault's secret.
    new = generate(client, shares[1 : t + 1])
    assert len(new) == len(case["secret_hex"]) // 2 + 1
    assert new[-1] not in {bytes.fromhex(s)[-1] for s in brought}
    unseen = [bytes.fromhex(s) for s in shares[t + 1 :] if bytes.fromhex(s)[-1] != new[-1]]
    if len(unseen) < t - 1:  # small cases: the rest of the set, submitted or not
        unseen = [bytes.fromhex(s) for s in shares[::-1] if bytes.fromhex(s)[-1] != new[-1]]
    assert shamir.combine([new, *unseen[: t - 1]]).hex() == case["secret_hex"]
    report = reading.verify(folder)
    assert report.ok, report.message


def test_a_set_with_one_altered_share_is_refused(client, folder):
    case = ROOMY[0]
    t = case["threshold"]
    altered = bytearray.fromhex(case["shares_hex"][1])
    altered[7] ^= 0x20
    brought = [case["shares_hex"][0], altered.hex(), *case["shares_hex"][2 : t + 1]]
    r = adopt(client, brought, t)
    text = assert_error(r, 400, "not consistent")
    assert "reset to 0" in text
    status = client.get(f"{V1}/adopt/attempt").get_json()
    assert status["started"] is True and status["progress"] == 0
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}
    assert reading.verify(folder).ok
    # The holders try again with the right share, in the same attempt.
    nonce = status["nonce"]
    for share in case["shares_hex"][: t + 1]:
        r = client.put(f"{V1}/adopt/update", json={"key": share, "nonce": nonce})
    assert r.get_json()["complete"] is True


def test_a_wrong_threshold_is_caught_too(client):
    case = ROOMY[1]  # really 5 of 10
    r = adopt(client, case["shares_hex"][:4], 3)
    assert_error(r, 400, "not consistent")


@pytest.mark.parametrize(
    ("real", "claimed"), [((3, 5), 4), ((5, 10), 7), ((2, 255), 5), ((2, 3), 2)], ids=str
)
def test_a_too_high_threshold_is_refused_and_the_real_one_named(client, folder, real, claimed):
    # Every share of a t-of-n set also lies on a polynomial of any higher
    # degree whose top coefficients are zero: consistent, yet the wrong threshold.
    case = next(c for c in VECTORS if (c["threshold"], c["parts"]) == real)
    if claimed == real[0]:  # 2 of 3, claimed right: adopted, the control case
        assert adopt(client, case["shares_hex"], claimed).get_json()["complete"] is True
        return
    r = adopt(client, case["shares_hex"][: claimed + 1], claimed)
    text = assert_error(r, 400, f"this share set's threshold is {real[0]}, not {claimed}")
    assert f"start it again with secret_threshold {real[0]}" in text and "reset to 0" in text
    assert client.get(f"{V1}/adopt/attempt").get_json()["progress"] == 0
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}
    assert reading.verify(folder).ok


def test_a_set_whose_shares_all_share_y_is_threshold_1(client):
    shares = [(bytes([7]) * 16 + bytes([x])).hex() for x in (1, 2, 3)]
    assert_error(adopt(client, shares, 2), 400, "threshold is 1, not 2")


def test_a_16_byte_key_split_here_in_vaults_layout_is_adopted(client):
    secret = bytes(range(16))
    shares = [s.hex() for s in shamir.split(secret, 6, 3)]
    assert (
        adopt(client, [base64.b64encode(bytes.fromhex(s)).decode() for s in shares[:4]], 3).status_code == 200
    )
    new = generate(client, shares[:3])
    assert len(new) == 17 and shamir.combine([new, bytes.fromhex(shares[5])]) != secret
    assert shamir.combine([new, bytes.fromhex(shares[4]), bytes.fromhex(shares[5])]) == secret


def test_known_indices_are_recorded_and_never_issued(client):
    case = next(c for c in ROOMY if c["parts"] == 255 and c["threshold"] == 2)
    shares = case["shares_hex"]
    brought = shares[:3]
    free = {200, 201}
    known = [x for x in range(4, 256) if x not in free]
    r = adopt(client, brought, 2, known_indices=known)
    assert r.get_json()["indices"] == sorted({1, 2, 3} | set(known))
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["issued"] == 253
    new = generate(client, shares[:2])
    assert new[-1] in free
    # Vault's own share at that x: issued again, it is the very same share.
    assert new.hex() == shares[new[-1] - 1]


def test_adopted_shares_count_against_the_share_limit(client):
    case = ROOMY[0]
    adopt(client, case["shares_hex"][:4], 3, share_limit=6, known_indices=[5])
    assert client.get(f"{V1}/shares").get_json()["share_limit"] == 6
    generate(client, case["shares_hex"][:3])
    assert_error(client.put(f"{V1}/generate-share/attempt"), 400, "share limit of 6 was reached")


# -- the attempt's life ----------------------------------------------------------


def test_status_cancel_and_defaults(client):
    assert client.get(f"{V1}/adopt/attempt").get_json() == {
        "started": False,
        "nonce": "",
        "progress": 0,
        "required": 0,
        "secret_threshold": 0,
        "complete": False,
        "indices": [],
        "check": "",
    }
    started = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3}).get_json()
    assert started["required"] == 4 and started["secret_threshold"] == 3 and started["started"] is True
    assert_error(client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3}), 400, "already in progress")
    assert client.get(f"{V1}/health").get_json()["adoption_in_progress"] is True
    client.put(f"{V1}/adopt/update", json={"key": ROOMY[0]["shares_hex"][0]})
    assert client.get(f"{V1}/adopt/attempt").get_json()["progress"] == 1
    r = client.delete(f"{V1}/adopt/attempt")
    assert r.status_code == 204 and r.data == b""
    assert client.get(f"{V1}/adopt/attempt").get_json()["started"] is False
    assert client.delete(f"{V1}/adopt/attempt").status_code == 204


def test_init_and_adoption_exclude_each_other(client):
    client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 2})
    assert_error(
        client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}),
        400,
        "adoption is in progress",
    )
    client.delete(f"{V1}/adopt/attempt")
    case = ROOMY[0]
    adopt(client, case["shares_hex"][:4], 3)
    assert_error(
        client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}), 400, "already initialized"
    )
    assert_error(client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 2}), 400, "already initialized")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "secret_threshold is required"),
        ({"secret_threshold": 255}, "from 2 to 254"),
        ({"secret_threshold": 1}, "from 2 to 254"),
        ({"secret_threshold": "3"}, "JSON integer"),
        ({"secret_threshold": 3, "required": 3}, "required (3) must exceed secret_threshold (3)"),
        ({"secret_threshold": 3, "required": 256}, "required must be from secret_threshold + 1 to 255"),
        ({"secret_threshold": 3, "known_indices": [1, 1]}, "must not list the same x twice"),
        ({"secret_threshold": 3, "known_indices": [0]}, "an x from 1 to 255"),
        ({"secret_threshold": 3, "known_indices": [4, None]}, "known_indices[1]: each of known_indices"),
        ({"secret_threshold": 3, "known_indices": "1,2"}, "JSON list"),
        ({"secret_threshold": 3, "share_limit": 3}, "share_limit"),
    ],
)
def test_bad_adoption_starts_are_refused(client, body, fragment):
    assert_error(client.put(f"{V1}/adopt/attempt", json=body), 400, fragment)
    assert client.get(f"{V1}/adopt/attempt").get_json()["started"] is False


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("00", "has 2 hex digits; expected a share of 33 bytes"),
        ("ab" * 66, "has 132 hex digits; expected a share of 33 bytes"),
        ("not a share", "neither hex nor"),
        ("11" * 32 + "00", "last byte is its x"),
        ("SHORT", "expected a share of 33 bytes"),
        ("SAME", "already submitted"),
        ("SAME_X", "x = 1 was already submitted"),
    ],
)
def test_bad_adoption_shares_are_refused_and_change_nothing(client, key, fragment):
    case = ROOMY[0]
    nonce = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3}).get_json()["nonce"]
    client.put(f"{V1}/adopt/update", json={"key": case["shares_hex"][0], "nonce": nonce})
    same_x = bytearray.fromhex(case["shares_hex"][0])
    same_x[0] ^= 1
    key = {
        "SHORT": ROOMY[2]["shares_hex"][1],  # a 1-byte key's share, among 32-byte ones
        "SAME": case["shares_hex"][0],
        "SAME_X": same_x.hex(),
    }.get(key, key)
    before = client.get(f"{V1}/adopt/attempt").get_json()
    assert_error(client.put(f"{V1}/adopt/update", json={"key": key, "nonce": nonce}), 400, fragment)
    assert client.get(f"{V1}/adopt/attempt").get_json() == before


@pytest.mark.parametrize("key", ["00", "ab" * 66, base64.b64encode(b"x" * 66).decode()])
def test_the_first_share_may_be_2_to_65_bytes(client, key):
    client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3})
    assert_error(client.put(f"{V1}/adopt/update", json={"key": key}), 400, "2 to 65 bytes")
    assert client.get(f"{V1}/adopt/attempt").get_json()["progress"] == 0


def test_a_wrong_nonce_and_no_adoption_are_refused(client):
    assert_error(client.put(f"{V1}/adopt/update", json={"key": "00"}), 400, "no adoption is in progress")
    nonce = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3}).get_json()["nonce"]
    text = assert_error(
        client.put(f"{V1}/adopt/update", json={"key": ROOMY[0]["shares_hex"][0], "nonce": "x"}), 400, "nonce"
    )
    assert nonce in text


def test_adoption_is_in_the_audit_trail(client, folder):
    case = ROOMY[0]
    adopt(client, case["shares_hex"][:4], 3, known_indices=[5])
    lines = [json.loads(line) for line in (folder / audit.AUDIT_FILE).read_text().splitlines()]
    assert [e["event"] for e in lines] == [
        "adoption_started",
        "share_accepted",
        "share_accepted",
        "share_accepted",
        "adopted",
    ]
    assert lines[0]["known_indices"] == [5] and lines[0]["required"] == 4
    assert lines[-1]["indices"] == [1, 2, 3, 4, 5] and lines[-1]["submitted"] == [1, 2, 3, 4]
    text = (folder / audit.AUDIT_FILE).read_text()
    assert not any(s[:20] in text for s in case["shares_hex"])
    assert reading.verify(folder).ok


def test_a_truncated_first_share_does_not_blame_the_next_holder(client):
    case = ROOMY[0]
    shares = case["shares_hex"]
    nonce = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 3}).get_json()["nonce"]
    truncated = shares[0][:-4] + shares[0][-2:]  # one y byte lost, x kept
    assert client.put(f"{V1}/adopt/update", json={"key": truncated, "nonce": nonce}).status_code == 200
    r = client.put(f"{V1}/adopt/update", json={"key": shares[1], "nonce": nonce})
    text = assert_error(r, 400, "the length of the first share submitted in this attempt")
    assert "an earlier share may be the wrong one" in text and "generate-share adopt cancel" in text
    assert client.get(f"{V1}/adopt/attempt").get_json()["progress"] == 1
    assert client.delete(f"{V1}/adopt/attempt").status_code == 204
    assert adopt(client, shares[:4], 3).get_json()["complete"] is True


def test_a_wrong_length_in_generate_share_blames_only_that_share(client, shares):
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    client.put(f"{V1}/generate-share/update", json={"key": shares[0], "nonce": nonce})
    r = client.put(f"{V1}/generate-share/update", json={"key": shares[1][:-4], "nonce": nonce})
    assert "earlier share" not in assert_error(r, 400, "expected a share of 33 bytes")


# -- x in one notation: decimal, told by `inspect` -------------------------------


def cli_run(*args: str, input: str | None = None):
    from click.testing import CliRunner

    from app.cli import cli

    result = CliRunner().invoke(cli, list(args), input=input, prog_name="generate-share")
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("encode", [bytes.hex, lambda b: base64.b64encode(b).decode()], ids=["hex", "b64"])
def test_inspect_tells_x_and_length_offline_and_never_prints_the_share(encode):
    share = bytes.fromhex(VECTORS[0]["shares_hex"][1])
    # No server: --address points nowhere, and inspect must not need it.
    result = cli_run("--address", "http://127.0.0.1:9", "inspect", input=encode(share) + "\n")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == f"x:      {share[-1]}\nlength: {len(share)} bytes (a key of {len(share) - 1} bytes)\n"
    )
    assert encode(share) not in result.output and share[:-1].hex() not in result.output
    bad = cli_run("inspect", input="not a share\n")
    assert bad.exit_code == 2 and "neither hex nor" in bad.output and "not a share" not in bad.output


def test_known_reads_decimal_or_0x_hex_never_a_bare_guess(tmp_path):
    from server import Server

    case = ROOMY[0]
    with Server(tmp_path / "data", tmp_path / "log") as server:
        refused = cli_run("--address", server.url, "adopt", "start", "--threshold", "3", "--known", "5a")
        assert refused.exit_code == 2 and "0x11" in refused.output
        started = cli_run(
            "--address", server.url, "adopt", "start", "--threshold", "3", "--known", "0x5,0x11"
        )
        assert started.exit_code == 0, started.output
        assert "Known x:   5, 17 (recorded, not brought)" in started.stdout
        nonce = requests_get(server, "/v1/sys/adopt/attempt")["nonce"]
        for share in case["shares_hex"][:4]:
            server.put("/v1/sys/adopt/update", json={"key": share, "nonce": nonce})
        assert [s["index"] for s in requests_get(server, "/v1/sys/shares")["shares"]] == [1, 2, 3, 4, 5, 17]
        # A share named but never brought: the CLI says it cannot be checked, not that it is wrong.
        unchecked = cli_run("--address", server.url, "verify", input=case["shares_hex"][4] + "\n")
        assert unchecked.exit_code == 1 and "NOT VALID" not in unchecked.output
        assert unchecked.stdout.startswith(
            "CANNOT CHECK: this x (5) is recorded, but its share never reached the service, "
            "so it cannot be checked.\n"
        )
        server.kill()


def requests_get(server, path: str) -> dict:
    return server.get(path).json()
