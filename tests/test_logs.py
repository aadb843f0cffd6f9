"""No share, key or new share ever reaches a log record, at any level."""

import base64
import logging

import pytest

V1 = "/v1/sys"


@pytest.fixture
def every_record(caplog):
    """Capture every record of every logger at DEBUG, the service's own included."""
    app_logger = logging.getLogger("app")
    app_logger.addHandler(caplog.handler)
    level = app_logger.level
    app_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    app_logger.removeHandler(caplog.handler)
    app_logger.setLevel(level)


def test_a_whole_ceremony_with_errors_logs_no_key_material(client, keyring, every_record):
    keys = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).get_json()["keys"]
    pgp_key = base64.b64encode(keyring.public_binary(keyring.RSA)).decode()
    nonce = client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).get_json()["nonce"]
    wrong = bytearray.fromhex(keys[2])
    wrong[3] ^= 1
    # A duplicate, a short share, then a failed reconstruction.
    for key in (keys[0], keys[0], keys[1][:-2], keys[1], wrong.hex()):
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    client.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": "wrong"})
    for key in keys[:3]:
        last = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).get_json()
    assert last["complete"] is True
    new = keyring.decrypt(base64.b64decode(last["key_base64"]))
    for key in (keys[0], new.hex(), wrong.hex()):
        client.put(f"{V1}/shares/verify", json={"key": key})
    text = every_record.text + "".join(str(r.__dict__) for r in every_record.records)
    assert "request" in text  # the access log was captured
    for secret in [*keys, new.hex(), wrong.hex()]:
        raw = bytes.fromhex(secret)
        for form in (secret, secret[:-2], secret.upper(), base64.b64encode(raw).decode(), repr(raw)[2:-1]):
            assert form not in text
