"""PGP through the API: shares and new shares encrypted to real keys, decrypted by their holders."""

import base64
import gc
import json
import os

import pytest

from app import shamir
from helpers import assert_error

# Open mode: PGP ceremonies as the seed runs them (token mode's are in tests/test_token.py).
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_init_encrypts_each_share_to_its_holder(client, keyring):
    names = [keyring.RSA, keyring.ECC, keyring.ECC]
    pgp_keys = [
        b64(keyring.public_binary(keyring.RSA)),
        b64(keyring.public_armored(keyring.ECC)),  # armored, then base64: accepted too
        b64(keyring.public_binary(keyring.ECC)),
    ]
    r = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2, "pgp_keys": pgp_keys})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["pgp_fingerprints"] == [keyring.fingerprint(n) for n in names]
    messages = [base64.b64decode(k) for k in body["keys_base64"]]
    assert [bytes.fromhex(k) for k in body["keys"]] == messages
    assert all(not m.startswith(b"-----BEGIN") for m in messages)
    shares = [keyring.decrypt(m) for m in messages]
    assert all(len(s) == 33 for s in shares)
    assert shamir.combine(shares[:2]) == shamir.combine(shares[1:])
    registry = client.get(f"{V1}/shares").get_json()["shares"]
    assert {(s["index"], s["pgp_fingerprint"]) for s in registry} == {
        (s[-1], keyring.fingerprint(n)) for s, n in zip(shares, names, strict=True)
    }


@pytest.mark.parametrize("name", ["RSA", "ECC"])
@pytest.mark.parametrize("form", ["public_binary", "public_armored"])
def test_the_new_share_is_encrypted_to_the_attempts_key(client, shares, keyring, name, form):
    key_name = getattr(keyring, name)
    pgp_key = b64(getattr(keyring, form)(key_name))
    started = client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).get_json()
    assert started["pgp_fingerprint"] == keyring.fingerprint(key_name)
    assert (
        client.get(f"{V1}/generate-share/attempt").get_json()["pgp_fingerprint"] == started["pgp_fingerprint"]
    )
    for key in shares[:3]:
        r = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": started["nonce"]})
    body = r.get_json()
    assert body["complete"] is True and body["pgp_fingerprint"] == keyring.fingerprint(key_name)
    message = base64.b64decode(body["key_base64"])
    assert not message.startswith(b"-----BEGIN")
    new = keyring.decrypt(message)
    old = [bytes.fromhex(s) for s in shares]
    assert new[-1] not in {s[-1] for s in old}
    assert shamir.combine([new, old[3], old[4]]) == shamir.combine(old[:3])
    [record] = [s for s in client.get(f"{V1}/shares").get_json()["shares"] if s["origin"] == "generate-share"]
    assert record == record | {"index": new[-1], "pgp_fingerprint": keyring.fingerprint(key_name)}


@pytest.mark.parametrize(
    ("name", "export", "fragment"),
    [
        ("SIGN_ONLY", "public_binary", "encrypt"),
        ("EXPIRED", "public_binary", "expired"),
        ("REVOKED", "public_binary", "revoked"),
        ("ECC", "secret_armored", "secret"),
    ],
)
def test_unusable_keys_are_refused_and_start_nothing(client, shares, keyring, name, export, fragment):
    pgp_key = b64(getattr(keyring, export)(getattr(keyring, name)))
    text = assert_error(
        client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}), 400, "pgp_key: "
    )
    assert fragment in text.lower()
    assert client.get(f"{V1}/generate-share/attempt").get_json()["started"] is False


def test_two_keys_in_one_pgp_key_are_refused(client, shares, keyring):
    both = keyring.public_binary(keyring.RSA) + keyring.public_binary(keyring.ECC)
    assert_error(client.put(f"{V1}/generate-share/attempt", json={"pgp_key": b64(both)}), 400, "pgp_key: ")


def test_one_unusable_init_key_refuses_the_whole_init(client, keyring):
    pgp_keys = [b64(keyring.public_binary(keyring.RSA)), b64(keyring.public_binary(keyring.REVOKED))]
    assert_error(
        client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2, "pgp_keys": pgp_keys}),
        400,
        "pgp_keys[1]: ",
    )
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}


@pytest.fixture
def live_homes(monkeypatch):
    """Return a function that lists the GnuPG homes app.pgp made that still exist."""
    from app.pgp import runner

    made: list[str] = []
    real_mkdtemp = runner.tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        home = real_mkdtemp(*args, **kwargs)
        made.append(home)
        return home

    monkeypatch.setattr(runner.tempfile, "mkdtemp", mkdtemp)
    return lambda: [home for home in made if os.path.exists(home)]


def test_the_attempts_key_keeps_one_home_while_the_attempt_lasts(client, shares, keyring, live_homes):
    pgp_key = b64(keyring.public_binary(keyring.ECC))
    # Cancelled: the home goes with the attempt.
    assert client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).status_code == 200
    assert len(live_homes()) == 1
    assert client.delete(f"{V1}/generate-share/attempt").status_code == 204
    assert live_homes() == []
    # Completed: the home serves the encryption, then goes.
    nonce = client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).get_json()["nonce"]
    for key in shares[:2]:
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    assert len(live_homes()) == 1
    r = client.put(f"{V1}/generate-share/update", json={"key": shares[2], "nonce": nonce})
    assert r.get_json()["complete"] is True
    assert live_homes() == []
    # Refused because an attempt is in progress: the refused key's home goes too.
    client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key})
    assert client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).status_code == 400
    gc.collect()
    assert len(live_homes()) == 1


def test_init_leaves_no_home(client, keyring, live_homes):
    pgp_keys = [b64(keyring.public_binary(keyring.ECC)), b64(keyring.public_binary(keyring.RSA))]
    r = client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2, "pgp_keys": pgp_keys})
    assert r.status_code == 200
    assert live_homes() == []


def test_a_rotated_key_names_its_current_subkey_from_start_to_the_trail(client, shares, keyring, folder):
    name = keyring.ROTATED  # subkeys: superseded, current, revoked
    subkey = keyring.encryption_subkey(name)
    assert subkey not in (keyring.fingerprint(name), *keyring.subkey_fingerprints(name)[::2])
    pgp_key = b64(keyring.public_binary(name))
    started = client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).get_json()
    assert started["pgp_subkey_fingerprint"] == subkey
    for key in shares[:3]:
        r = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": started["nonce"]})
    body = r.get_json()
    assert body["complete"] is True and body["pgp_subkey_fingerprint"] == subkey
    new = keyring.decrypt(base64.b64decode(body["key_base64"]))
    assert shamir.combine([new, *map(bytes.fromhex, shares[3:])]) == shamir.combine(
        [bytes.fromhex(s) for s in shares[:3]]
    )
    lines = [json.loads(line) for line in (folder / "audit.log").read_bytes().splitlines()]
    for event in ("attempt_started", "share_issued"):
        [line] = [x for x in lines if x["event"] == event]
        assert (line["pgp_fingerprint"], line["pgp_subkey_fingerprint"]) == (
            keyring.fingerprint(name),
            subkey,
        )
