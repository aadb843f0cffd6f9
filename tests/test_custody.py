"""Holders prove custody of their share, one at a time, without a quorum."""

import base64
import json

import pytest

from app import audit, create_app, reading
from helpers import assert_error, unmask

V1 = "/v1/sys"


def verify(client, key):
    r = client.put(f"{V1}/shares/verify", json={"key": key})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def generate(client, lead, shares, **body):
    """Run an attempt as the lead; return its last reply, a bare share unmasked with the start's pad."""
    start = client.put(f"{V1}/generate-share/attempt", json=body or None, headers=lead).get_json()
    for key in shares:
        r = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": start["nonce"]})
    done = r.get_json()
    if "key" in done:
        done["key"] = unmask(done["key"], start.get("otp"))
    return done


def test_every_share_from_init_verifies(client, shares):
    for key in shares:
        body = verify(client, key)
        assert body["valid"] is True
        assert body["index"] == bytes.fromhex(key)[-1] and body["origin"] == "init"
        assert body["issued_at"].endswith("Z") and body["verified_at"].endswith("Z")
    # base64 works as well as hex
    assert verify(client, base64.b64encode(bytes.fromhex(shares[0])).decode())["valid"] is True
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["verifiable"] == 5 and registry["verified"] == 5
    assert all(s["verifiable"] and s["verified_at"] for s in registry["shares"])


def test_a_generated_share_verifies_even_when_it_was_encrypted(client, lead, shares, keyring):
    plain = generate(client, lead, shares[:3])
    body = verify(client, plain["key"])
    assert body["valid"] is True and body["origin"] == "generate-share"
    pgp_key = base64.b64encode(keyring.public_binary(keyring.ECC)).decode()
    sealed = generate(client, lead, shares[1:4], pgp_key=pgp_key)
    share = keyring.decrypt(base64.b64decode(sealed["key_base64"]))
    assert verify(client, share.hex())["index"] == share[-1]
    assert verify(client, sealed["key"][:66])["valid"] is False  # the ciphertext is no share


def test_shares_that_are_not_the_recorded_one_are_an_answer_not_an_error(client, shares, tmp_path):
    changed = bytearray.fromhex(shares[0])
    changed[4] ^= 1
    assert verify(client, changed.hex()) == {
        "valid": False,
        "reason": f"this is not the share the service recorded at x = {changed[-1]}",
    }
    other = create_app({"DATA_DIR": str(tmp_path / "other")})
    try:
        foreign = other.test_client().put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2})
        for key in foreign.get_json()["keys"]:
            assert verify(client, key)["valid"] is False
    finally:
        other.extensions["generate_share_store"].close()
    used = {bytes.fromhex(k)[-1] for k in shares}
    unused = next(x for x in range(1, 256) if x not in used)
    assert verify(client, bytes.fromhex(shares[0])[:-1].hex() + f"{unused:02x}") == {
        "valid": False,
        "reason": f"no share at x = {unused} was ever recorded by this service",
    }
    assert verify(client, "00" * 33)["valid"] is False
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["verified"] == 0 and all(s["verified_at"] is None for s in registry["shares"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "key is required"),
        ({"key": 7}, "key must be a string"),
        ({"key": "not-a-share"}, "neither hex nor"),
        ({"key": "00" * 20}, "has 40 hex digits; expected a share of 33 bytes"),
    ],
)
def test_malformed_shares_are_400(client, shares, body, fragment):
    assert_error(client.put(f"{V1}/shares/verify", json=body), 400, fragment)


def test_before_init_there_is_nothing_to_verify(client):
    assert_error(client.put(f"{V1}/shares/verify", json={"key": "00" * 33}), 400, "not initialized")


def test_verification_during_an_attempt_leaves_it_untouched(client, lead, shares):
    nonce = client.put(f"{V1}/generate-share/attempt", headers=lead).get_json()["nonce"]
    client.put(f"{V1}/generate-share/update", json={"key": shares[0], "nonce": nonce})
    before = client.get(f"{V1}/generate-share/attempt", headers=lead).get_json()
    assert verify(client, shares[1])["valid"] is True
    assert verify(client, shares[0])["valid"] is True  # also a share already submitted
    assert verify(client, "ff" * 33)["valid"] is False
    assert client.get(f"{V1}/generate-share/attempt", headers=lead).get_json() == before
    client.put(f"{V1}/generate-share/update", json={"key": shares[1], "nonce": nonce})
    last = client.put(f"{V1}/generate-share/update", json={"key": shares[2], "nonce": nonce}).get_json()
    assert last["complete"] is True


def test_verified_at_survives_a_restart_and_since_counts_it(tmp_path):
    data = tmp_path / "data"
    first = create_app({"DATA_DIR": str(data)})
    try:
        client = first.test_client()
        keys = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).get_json()["keys"]
        when = verify(client, keys[1])["verified_at"]
    finally:
        first.extensions["generate_share_store"].close()
    second = create_app({"DATA_DIR": str(data)})
    try:
        client = second.test_client()
        registry = client.get(f"{V1}/shares").get_json()
        [record] = [s for s in registry["shares"] if s["verified_at"]]
        assert record["index"] == bytes.fromhex(keys[1])[-1] and record["verified_at"] == when
        assert client.get(f"{V1}/shares?since=2000-01-01T00:00:00Z").get_json()["verified"] == 1
        assert client.get(f"{V1}/shares?since=2999-01-01T00:00:00%2B02:00").get_json()["verified"] == 0
        body = client.get(f"{V1}/shares?since=2000-01-01T02:00:00%2B02:00").get_json()
        assert body["since"] == "2000-01-01T00:00:00Z" and body["verified"] == 1
        assert client.get(f"{V1}/shares").get_json()["since"] is None
        assert_error(client.get(f"{V1}/shares?since=yesterday"), 400, "since must be an RFC 3339 time")
        assert_error(client.get(f"{V1}/shares?since=2026-01-01T00:00:00"), 400, "with a zone")
    finally:
        second.extensions["generate_share_store"].close()


def test_each_check_is_in_the_audit_trail_by_index_only(client, shares, folder):
    verify(client, shares[0])
    verify(client, "ff" * 33)
    lines = [json.loads(line) for line in (folder / audit.AUDIT_FILE).read_text().splitlines()]
    ok, failed = lines[-2:]
    assert ok["event"] == "share_verified" and ok["index"] == bytes.fromhex(shares[0])[-1]
    assert failed["event"] == "share_verify_failed" and failed["index"] == 255
    assert set(ok) == {"event", "index", "seq", "time", "request_id", "client", "prev", "format"}
    assert reading.verify(folder).ok


def test_the_data_folder_holds_no_share_material(client, lead, shares, folder, keyring):
    new = generate(client, lead, shares[:3])["key"]
    for key in [*shares, new]:
        verify(client, key)
    secrets = [bytes.fromhex(k) for k in [*shares, new]]
    for file in folder.iterdir():
        content = file.read_bytes()
        for share in secrets:
            for form in (share, share.hex().encode(), share[:-1].hex().encode(), base64.b64encode(share)):
                assert form not in content, file.name
            assert share[:16] not in content and share[:8].hex().encode() not in content


def test_adopted_indices_that_were_only_named_are_not_verifiable(client):
    from test_adopt import ROOMY, adopt

    case = ROOMY[0]
    adopt(client, case["shares_hex"][:4], 3, known_indices=[5])
    registry = {s["index"]: s for s in client.get(f"{V1}/shares").get_json()["shares"]}
    assert [registry[x]["verifiable"] for x in (1, 2, 3, 4, 5)] == [True, True, True, True, False]
    assert verify(client, case["shares_hex"][2])["origin"] == "adopted"
    # x = 5: named, never seen: not "not valid", but "cannot be checked".
    assert verify(client, case["shares_hex"][4]) == {
        "valid": False,
        "reason": "this x (5) is recorded, but its share never reached the service, so it cannot be checked",
    }
    assert client.get(f"{V1}/shares").get_json()["verifiable"] == 4
