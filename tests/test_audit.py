"""The audit trail: what it records, that it holds no key material, that tampering shows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import audit, reading, shamir
from app.state import STATE_FILE
from helpers import assert_error
from server import Server

# Open mode: what the seed's ceremonies write to the trail; tests/test_token.py has token mode's.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"


def events(folder):
    return [json.loads(line) for line in (folder / audit.AUDIT_FILE).read_text().splitlines()]


def ceremony(client, shares, *, bad_first=False):
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    if bad_first:
        client.put(f"{V1}/generate-share/update", json={"key": "zz!", "nonce": nonce})
    for key in shares[:3]:
        last = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).get_json()
    return nonce, last


def test_a_ceremony_is_recorded_event_by_event(client, shares, folder):
    nonce, last = ceremony(client, shares, bad_first=True)
    client.put(f"{V1}/generate-share/attempt")
    client.delete(f"{V1}/generate-share/attempt")
    lines = events(folder)
    assert [e["event"] for e in lines] == [
        "init",
        "attempt_started",
        "refused",
        "share_accepted",
        "share_accepted",
        "share_issued",
        "attempt_started",
        "attempt_cancelled",
    ]
    xs = [bytes.fromhex(k)[-1] for k in shares]
    init, started, refused, first, second, issued = lines[:6]
    assert sorted(init["indices"]) == sorted(xs) and init["threshold"] == 3 and init["share_limit"] == 255
    assert started["nonce"] == nonce and started["pgp_fingerprint"] == ""
    assert refused["action"] == "update" and "neither hex nor" in refused["reason"]
    assert (first["index"], second["index"]) == (xs[0], xs[1])
    assert issued["index"] == bytes.fromhex(last["key"])[-1] and issued["indices"] == xs[:3]
    for number, event in enumerate(lines, start=1):
        assert event["seq"] == number
        assert event["client"] == "127.0.0.1"
        assert len(event["request_id"]) == 32
        assert event["time"].endswith("Z")
    report = reading.verify(folder)
    assert report.ok, report.message
    assert report.lines == 8 and "6 shares" in report.message


def test_the_trail_holds_no_key_material(client, shares, folder):
    _, last = ceremony(client, shares, bad_first=True)
    text = (folder / audit.AUDIT_FILE).read_text() + (folder / STATE_FILE).read_text()
    for secret in [*shares, last["key"]]:
        for form in (secret, secret.upper(), secret[:-2]):
            assert form not in text
        assert bytes.fromhex(secret)[:-1].hex() not in text


def test_a_share_that_is_not_the_one_recorded_at_its_x_is_refused_before_it_counts(client, shares, folder):
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    tampered = bytearray.fromhex(shares[2])
    tampered[0] ^= 1
    for key in (shares[0], shares[1], tampered.hex()):
        r = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    assert_error(r, 400, f"not the one the service recorded at x = {tampered[-1]}")
    last = events(folder)[-1]
    assert last["event"] == "refused" and last["action"] == "update"
    assert client.get(f"{V1}/generate-share/attempt").get_json()["progress"] == 2  # nobody's share spent
    r = client.put(f"{V1}/generate-share/update", json={"key": shares[2], "nonce": nonce})
    assert r.status_code == 200 and r.get_json()["complete"] is True
    assert reading.verify(folder).ok


def test_failed_reconstruction_is_one_event(client, folder):
    # Only a share at an x without a custody digest (adopted as known, never seen) can spoil it.
    real = shamir.split(bytes(range(32)), 5, 2)
    adopt = client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 2, "known_indices": [real[4][-1]]})
    for share in real[:3]:
        client.put(f"{V1}/adopt/update", json={"key": share.hex(), "nonce": adopt.get_json()["nonce"]})
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    tampered = bytearray(real[4])
    tampered[0] ^= 1
    for key in (real[0].hex(), tampered.hex()):
        r = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    assert_error(r, 400, "did not reconstruct")
    last = events(folder)[-1]
    assert last["event"] == "reconstruction_failed"
    assert last["indices"] == [real[0][-1], real[4][-1]] and last["unchecked"] == [real[4][-1]]
    assert reading.verify(folder).ok


def test_refusals_at_start_and_init_are_recorded(client, shares, folder):
    client.put(f"{V1}/generate-share/attempt")
    client.put(f"{V1}/generate-share/attempt")
    client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2})
    refusals = [(e["action"], e["reason"]) for e in events(folder) if e["event"] == "refused"]
    assert refusals == [
        ("start_attempt", refusals[0][1]),
        ("initialize", refusals[1][1]),
    ]
    assert "already in progress" in refusals[0][1] and "already initialized" in refusals[1][1]


def test_an_incoming_request_id_is_honoured_and_a_strange_one_replaced(client, shares, folder):
    r = client.put(f"{V1}/generate-share/attempt", headers={"X-Request-Id": "ceremony-42"})
    assert r.headers["X-Request-Id"] == "ceremony-42"
    assert events(folder)[-1]["request_id"] == "ceremony-42"
    r = client.delete(f"{V1}/generate-share/attempt", headers={"X-Request-Id": "evil line"})
    assert r.headers["X-Request-Id"] != "evil line"
    assert events(folder)[-1]["request_id"] == r.headers["X-Request-Id"]


# -- tampering ----------------------------------------------------------------


def _rewrite(folder, change):
    path = folder / audit.AUDIT_FILE
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(change(lines))


def _edit(lines):
    lines[2] = lines[2].replace(b'"progress":1', b'"progress":2')
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    ("change", "line", "why"),
    [
        (_edit, 4, "does not chain to line 3"),
        (lambda ls: b"\n".join(ls[:2] + ls[3:]) + b"\n", 3, "sequence number is 4"),
        (lambda ls: b"\n".join([ls[0], ls[2], ls[1], *ls[3:]]) + b"\n", 2, "sequence number is 3"),
        (lambda ls: b"\n".join(ls), 5, "incomplete"),
        (lambda ls: b"\n".join(ls[:-1]) + b"\n", 5, "ends at line 4"),
        (lambda ls: b"\n".join(ls)[:-7] + b"\n", 5, "not valid JSON"),
        (lambda ls: b"", 1, "ends at line 0"),
        (lambda ls: b"\n".join([*ls, ls[-1]]) + b"\n", 6, "sequence number is 5"),
    ],
    ids=["edit", "delete", "reorder", "cut-mid-line", "delete-last", "truncate-last", "empty", "duplicate"],
)
def test_tampering_is_caught_and_named(app, client, shares, folder, change, line, why):
    ceremony(client, shares)
    assert reading.verify(folder).ok
    _rewrite(folder, change)
    report = reading.verify(folder)
    assert not report.ok
    assert report.message.startswith(f"audit trail broken at line {line}:"), report.message
    assert why in report.message


def test_a_registry_that_disagrees_with_the_trail_is_caught(client, shares, folder):
    ceremony(client, shares)
    state = json.loads((folder / STATE_FILE).read_text())
    registry = state["state"]["shares"]
    # An x no share holds: the minted share's x is random, and 250 may be it (a duplicate, another refusal).
    registry[0]["index"] = max(set(range(1, 256)) - {entry["index"] for entry in registry})
    (folder / STATE_FILE).write_text(json.dumps(state))
    report = reading.verify(folder)
    assert not report.ok and "registry in the state file does not match the trail" in report.message


def test_a_tampered_trail_stops_the_service_at_start(tmp_path):
    data = tmp_path / "data"
    with Server(data, tmp_path / "1.log") as first:
        first.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})
        first.put(f"{V1}/generate-share/attempt")
    (data / audit.AUDIT_FILE).write_bytes(b"")
    second = Server(data, tmp_path / "2.log")
    second.spawn()
    assert second.wait() != 0
    assert (
        "audit trail broken at line 1:" in second.output()
        and "lines were cut from the end" in second.output()
    )
    assert f"run 'generate-share audit verify {data}'" in second.output()


# -- over HTTP: proxies and the request log ------------------------------------


@pytest.mark.parametrize(("hops", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_client_address_behind_trusted_proxies(tmp_path, hops, expected):
    env = {"GENERATE_SHARE_TRUSTED_PROXIES": str(hops)}
    with Server(tmp_path / "data", tmp_path / "g.log", env=env) as server:
        server.put(
            f"{V1}/init",
            json={"secret_shares": 2, "secret_threshold": 2},
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Request-Id": "abc"},
        )
        server.stop()
        [init] = events(tmp_path / "data")
        assert init["client"] == expected and init["request_id"] == "abc"
        logged = [json.loads(line) for line in server.output().splitlines() if '"app.access"' in line]
        [log] = [entry for entry in logged if entry["path"] == "/v1/sys/init"]
        assert log["client"] == expected
        assert log | {"duration_ms": 0} == {
            "time": log["time"],
            "level": "INFO",
            "logger": "app.access",
            "message": "request",
            "method": "PUT",
            "path": "/v1/sys/init",
            "status": 200,
            "duration_ms": 0,
            "request_id": "abc",
            "client": expected,
        }


def test_verify_from_the_command_line(client, shares, folder):
    ceremony(client, shares)
    command = [str(Path(sys.executable).with_name("generate-share")), "audit", "verify", str(folder)]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "audit trail verified: 5 lines" in ok.stdout, ok.stderr
    _rewrite(folder, _edit)
    broken = subprocess.run(command, capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert "audit trail broken at line 4" in broken.stdout + broken.stderr
