"""The HTTP contract, in process: every state rule and every class of bad input."""

import base64
import json
import uuid

import pytest

from app import create_app
from helpers import assert_error, same_key

# Open mode: the HTTP contract of open mode, the seed's; tests/test_token.py holds token mode's.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"


def status(client):
    r = client.get(f"{V1}/generate-share/attempt")
    assert r.status_code == 200
    return r.get_json()


def start(client, **body):
    r = client.put(f"{V1}/generate-share/attempt", json=body or None)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def submit(client, key, nonce=None):
    body = {"key": key} if nonce is None else {"key": key, "nonce": nonce}
    return client.put(f"{V1}/generate-share/update", json=body)


# -- before init ------------------------------------------------------------


def test_before_init(client):
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}
    assert client.get(f"{V1}/health").get_json()["initialized"] is False
    for method, path in [
        ("get", "/generate-share/attempt"),
        ("put", "/generate-share/attempt"),
        ("put", "/generate-share/update"),
        ("get", "/shares"),
    ]:
        r = getattr(client, method)(V1 + path, json={"key": "00" * 33})
        assert_error(r, 400, "not initialized")
    # Cancelling nothing is not an error.
    assert client.delete(f"{V1}/generate-share/attempt").status_code == 204


# -- init -------------------------------------------------------------------


def test_init_returns_shares_and_records_every_x(client):
    r = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"keys", "keys_base64", "pgp_fingerprints"}
    assert body["pgp_fingerprints"] == []
    keys = [bytes.fromhex(k) for k in body["keys"]]
    assert all(len(k) == 33 for k in keys)
    assert [base64.b64decode(k) for k in body["keys_base64"]] == keys
    xs = [k[-1] for k in keys]
    assert len(set(xs)) == 5 and all(1 <= x <= 255 for x in xs)
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["threshold"] == 3 and registry["issued"] == 5
    assert sorted(s["index"] for s in registry["shares"]) == sorted(xs)
    assert {s["origin"] for s in registry["shares"]} == {"init"}
    assert all(s["issued_at"].endswith("Z") for s in registry["shares"])
    assert client.get(f"{V1}/init").get_json() == {"initialized": True}


def test_a_second_init_is_refused_and_changes_nothing(client, shares):
    before = client.get(f"{V1}/shares").get_json()
    r = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})
    assert_error(r, 400, "already initialized")
    after = client.get(f"{V1}/shares").get_json()
    assert after.pop("audit_head")["seq"] == before.pop("audit_head")["seq"] + 1  # the refusal
    assert after == before


def test_init_ignores_unknown_fields_and_nulls_as_hvac_sends_them(client):
    r = client.put(
        f"{V1}/init",
        json={
            "secret_shares": 3,
            "secret_threshold": 2,
            "root_token_pgp_key": None,
            "pgp_keys": None,
            "x": [1],
        },
    )
    assert r.status_code == 200
    assert len(r.get_json()["keys"]) == 3


def test_init_of_255_shares_uses_every_x_and_leaves_no_room(client):
    r = client.post(f"{V1}/init", json={"secret_shares": 255, "secret_threshold": 2})
    assert sorted(bytes.fromhex(k)[-1] for k in r.get_json()["keys"]) == list(range(1, 256))
    assert_error(client.put(f"{V1}/generate-share/attempt"), 400, "share limit of 255 was reached")
    assert status(client)["started"] is False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
        (b'{"secret_shares": NaN, "secret_threshold": 2}', "not valid JSON"),
        (b'{"secret_shares": 1' + b"0" * 5000 + b', "secret_threshold": 2}', "not valid JSON"),
        (b"[" * 30000 + b"]" * 30000, "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"{}", "secret_shares is required"),
        (b'{"secret_shares": 5}', "secret_threshold is required"),
        (b'{"secret_shares": "5", "secret_threshold": 3}', "secret_shares must be a JSON integer"),
        (b'{"secret_shares": 5.0, "secret_threshold": 3}', "secret_shares must be a JSON integer"),
        (b'{"secret_shares": true, "secret_threshold": 3}', "secret_shares must be a JSON integer"),
        (b'{"secret_shares": 5, "secret_threshold": [3]}', "secret_threshold must be a JSON integer"),
        (b'{"secret_shares": 1, "secret_threshold": 1}', "from 2 to 255"),
        (b'{"secret_shares": 5, "secret_threshold": 1}', "no shares to regenerate"),
        (b'{"secret_shares": 256, "secret_threshold": 3}', "secret_shares must be from 2 to 255"),
        (b'{"secret_shares": -5, "secret_threshold": 3}', "secret_shares must be from 2 to 255"),
        (b'{"secret_shares": 3, "secret_threshold": 5}', "must not exceed secret_shares (3)"),
        (b'{"secret_shares": 3, "secret_threshold": 2, "pgp_keys": "abc"}', "pgp_keys must be a JSON list"),
        (b'{"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["YQ=="]}', "exactly secret_shares (3)"),
        (
            b'{"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["%%", "YQ=="]}',
            "base64-encoded OpenPGP",
        ),
        (b'{"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [1, "YQ=="]}', "base64-encoded OpenPGP"),
        (b'{"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["YQ==", null]}', "pgp_keys[1]: each"),
        (b'{"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["YWJj", "YWJj"]}', "pgp_keys[0]"),
    ],
)
def test_bad_init_bodies_are_refused_and_change_nothing(client, body, fragment):
    folder = client.application.extensions["generate_share_store"].path
    before = sorted(p.name for p in folder.iterdir())
    state = (folder / "state.json").read_bytes()
    r = client.put(f"{V1}/init", data=body, content_type="application/json")
    assert_error(r, 400, fragment)
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}
    # Only the refusal's trail line and head move; no other file appears, and
    # the state file is byte for byte what it was.
    assert (
        sorted(p.name for p in folder.iterdir())
        == before
        == ["audit.head", "audit.log", "lock", "state.json"]
    )
    assert (folder / "state.json").read_bytes() == state


# -- the attempt ------------------------------------------------------------


def test_no_attempt_status(client, shares):
    assert status(client) == {
        "started": False,
        "nonce": "",
        "progress": 0,
        "required": 3,
        "pgp_fingerprint": "",
        "pgp_subkey_fingerprint": "",
        "complete": False,
        "key": "",
        "key_base64": "",
    }


def test_start_gives_a_uuid4_nonce_and_only_one_attempt_runs(client, shares):
    body = start(client)
    assert uuid.UUID(body["nonce"]).version == 4
    assert body["started"] is True and body["progress"] == 0 and body["required"] == 3
    assert_error(client.put(f"{V1}/generate-share/attempt"), 400, "share generation already in progress")
    assert status(client)["nonce"] == body["nonce"]


def test_cancel_discards_progress_and_answers_204_with_no_body(client, shares):
    nonce = start(client)["nonce"]
    assert submit(client, shares[0], nonce).get_json()["progress"] == 1
    r = client.delete(f"{V1}/generate-share/attempt")
    assert r.status_code == 204 and r.data == b""
    assert r.headers["Cache-Control"] == "no-store"
    assert status(client)["started"] is False
    again = start(client)
    assert again["nonce"] != nonce and again["progress"] == 0


def test_a_full_ceremony_issues_a_share_of_the_same_key_at_a_fresh_x(client, shares):
    nonce = start(client)["nonce"]
    for i, key in enumerate(shares[:2], start=1):
        r = submit(client, key, nonce)
        assert r.status_code == 200
        assert r.get_json() | {"nonce": "-"} == {
            "started": True,
            "nonce": "-",
            "progress": i,
            "required": 3,
            "pgp_fingerprint": "",
            "pgp_subkey_fingerprint": "",
            "complete": False,
            "key": "",
            "key_base64": "",
        }
    r = submit(client, base64.b64encode(bytes.fromhex(shares[2])).decode(), nonce)  # base64 works too
    body = r.get_json()
    assert r.status_code == 200
    assert body["complete"] is True and body["nonce"] == nonce and body["progress"] == 3
    new = bytes.fromhex(body["key"])
    assert base64.b64decode(body["key_base64"]) == new and len(new) == 33
    old_xs = {bytes.fromhex(s)[-1] for s in shares}
    assert new[-1] not in old_xs
    assert same_key(body["key"], shares, 3)
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["issued"] == 6
    [record] = [s for s in registry["shares"] if s["origin"] == "generate-share"]
    assert record["index"] == new[-1] and record["pgp_fingerprint"] == ""
    assert status(client)["started"] is False
    # The new share is as good as an old one in the next ceremony.
    nonce = start(client)["nonce"]
    for key in (body["key"], shares[3]):
        submit(client, key, nonce)
    last = submit(client, shares[4], nonce).get_json()
    assert last["complete"] is True and same_key(last["key"], shares, 3)
    assert bytes.fromhex(last["key"])[-1] not in old_xs | {new[-1]}


def test_no_nonce_is_accepted_unless_required(client, shares):
    start(client)
    assert submit(client, shares[0]).get_json()["progress"] == 1


def test_a_wrong_nonce_is_refused_naming_the_current_one(client, shares):
    nonce = start(client)["nonce"]
    submit(client, shares[0], nonce)
    text = assert_error(submit(client, shares[1], str(uuid.uuid4())), 400, "nonce does not match")
    assert nonce in text
    assert status(client)["progress"] == 1


def test_the_same_share_twice_is_refused(client, shares):
    nonce = start(client)["nonce"]
    submit(client, shares[0], nonce)
    as_b64 = base64.b64encode(bytes.fromhex(shares[0])).decode()
    assert_error(submit(client, as_b64, nonce), 400, "already submitted")
    assert status(client)["progress"] == 1


def test_another_share_with_a_used_x_is_refused(client, shares):
    nonce = start(client)["nonce"]
    submit(client, shares[0], nonce)
    forged = bytearray.fromhex(shares[0])
    forged[0] ^= 1
    assert_error(submit(client, forged.hex(), nonce), 400, f"x = {forged[-1]} was already submitted")
    assert status(client)["progress"] == 1


def test_a_wrong_share_at_a_recorded_x_is_refused_and_spends_nobodys_share(client, shares):
    nonce = start(client)["nonce"]
    tampered = bytearray.fromhex(shares[2])
    tampered[5] ^= 0x40
    submit(client, shares[0], nonce)
    submit(client, shares[1], nonce)
    text = assert_error(submit(client, tampered.hex(), nonce), 400, "it was not counted")
    assert f"not the one the service recorded at x = {tampered[-1]}" in text
    after = status(client)
    assert after["started"] is True and after["nonce"] == nonce and after["progress"] == 2
    assert client.get(f"{V1}/shares").get_json()["issued"] == 5
    # The two shares already in still count: the right third share finishes the attempt.
    assert submit(client, shares[2], nonce).get_json()["complete"] is True


def test_shares_of_another_deployment_do_not_reconstruct(client, shares, tmp_path):
    other = create_app({"DATA_DIR": str(tmp_path / "other")})
    try:
        body = {"secret_shares": 10, "secret_threshold": 2}
        foreign = other.test_client().put(f"{V1}/init", json=body).get_json()
    finally:
        other.extensions["generate_share_store"].close()
    # Two foreign shares at x this service never recorded (at a recorded x the
    # custody digest would refuse them at once, which is another test): of ten,
    # at most five fall on this service's five x.
    xs = {k[-2:] for k in shares}
    strangers = [k for k in foreign["keys"] if k[-2:] not in xs][:2]
    nonce = start(client)["nonce"]
    for key in strangers:
        assert submit(client, key, nonce).status_code == 200
    assert_error(submit(client, shares[0], nonce), 400, "did not reconstruct")


def test_the_bare_prefix_and_post_work_like_v1_and_put(client, shares):
    r = client.post("/sys/generate-share/attempt")
    nonce = r.get_json()["nonce"]
    for key in shares[:2]:
        assert client.post("/sys/generate-share/update", json={"key": key, "nonce": nonce}).status_code == 200
    r = client.put("/sys/generate-share/update", json={"key": shares[2], "nonce": nonce})
    assert r.get_json()["complete"] is True
    assert client.get("/sys/shares").get_json()["issued"] == 6
    assert client.get("/sys/init").get_json() == {"initialized": True}


def test_a_form_encoded_content_type_is_read_as_json_like_vault(client, shares):
    # curl -d sends application/x-www-form-urlencoded; Vault reads the JSON anyway.
    r = client.put(
        f"{V1}/generate-share/attempt", data=b"{}", content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 200 and r.get_json()["started"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "key is required"),
        ({"key": None}, "key is required"),
        ({"key": 5}, "key must be a string"),
        ({"key": ["00"]}, "key must be a string"),
        ({"key": ""}, "key must be one share"),
        ({"key": "a" * 2000}, "at most 1024 characters"),
        ({"key": "00" * 32}, "has 64 hex digits"),
        ({"key": "00" * 34}, "has 68 hex digits"),
        ({"key": "QUJD" * 12}, "decodes to 36 bytes"),
        ({"key": "not a share!"}, "neither hex nor standard base64"),
        ({"key": "00" * 33}, "last byte is its x"),
        ({"key": "SHARE", "nonce": 7}, "nonce must be a string"),
        ({"key": "SHARE", "nonce": "x" * 100}, "nonce must be the attempt's nonce"),
        ({"key": "SHARE", "nonce": "00000000-0000-4000-8000-000000000000"}, "nonce does not match"),
    ],
)
def test_bad_updates_are_refused_and_change_nothing(client, shares, body, fragment):
    nonce = start(client)["nonce"]
    submit(client, shares[0], nonce)
    before = status(client)
    if body.get("key") == "SHARE":
        body["key"] = shares[1]
    r = client.put(f"{V1}/generate-share/update", data=json.dumps(body), content_type="application/json")
    assert_error(r, 400, fragment)
    assert status(client) == before
    # The attempt still works afterwards.
    submit(client, shares[1], nonce)
    assert submit(client, shares[2], nonce).get_json()["complete"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"pgp_key": 5}, "pgp_key must be a base64-encoded OpenPGP public key"),
        ({"pgp_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----"}, "base64 -w0"),
        ({"pgp_key": "bm90IGEga2V5"}, "pgp_key:"),
    ],
)
def test_bad_attempt_bodies_are_refused_and_start_nothing(client, shares, body, fragment):
    assert_error(client.put(f"{V1}/generate-share/attempt", json=body), 400, fragment)
    assert status(client)["started"] is False


def test_an_empty_pgp_key_means_none(client, shares):
    assert start(client, pgp_key="")["pgp_fingerprint"] == ""


def test_a_required_nonce_must_be_sent(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "REQUIRE_NONCE": True})
    try:
        client = app.test_client()
        keys = client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2}).get_json()["keys"]
        nonce = start(client)["nonce"]
        text = assert_error(submit(client, keys[0]), 400, "nonce is required")
        assert nonce in text
        assert_error(submit(client, keys[0], ""), 400, "nonce is required")
        assert status(client)["progress"] == 0
        assert submit(client, keys[0], nonce).get_json()["progress"] == 1
    finally:
        app.extensions["generate_share_store"].close()


# -- HTTP-level errors ------------------------------------------------------


def test_unknown_paths_and_methods_answer_in_vaults_shape(client):
    assert_error(client.get("/v1/sys/nothing"), 404, "no such path: /v1/sys/nothing")
    text = assert_error(client.delete(f"{V1}/init"), 405, "DELETE is not allowed on /v1/sys/init")
    assert "GET" in text and "PUT" in text
    assert_error(client.patch(f"{V1}/generate-share/update"), 405, "use POST, PUT")


def test_an_oversized_body_is_413(client, shares):
    r = client.put(f"{V1}/generate-share/update", data=b'{"key": "' + b"a" * 70000 + b'"}')
    assert_error(r, 413, "larger than the limit of 65536 bytes")


def test_every_reply_is_json_and_not_cached(client, shares):
    for r in (
        client.get(f"{V1}/health"),
        client.get(f"{V1}/shares"),
        client.get(f"{V1}/generate-share/attempt"),
    ):
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_health(client, shares):
    body = client.get(f"{V1}/health").get_json()
    assert body["initialized"] is True and body["generate_share_in_progress"] is False
    assert body["version"] == "0.1.0"
    start(client)
    assert client.get(f"{V1}/health").get_json()["generate_share_in_progress"] is True


# -- the share limit ----------------------------------------------------------


def test_the_share_limit_stops_generation_and_is_reported(client):
    r = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2, "share_limit": 4})
    keys = r.get_json()["keys"]
    assert client.get(f"{V1}/shares").get_json()["share_limit"] == 4
    health = client.get(f"{V1}/health").get_json()
    assert health["share_limit"] == 4 and health["shares_issued"] == 3
    nonce = start(client)["nonce"]
    submit(client, keys[0], nonce)
    assert submit(client, keys[1], nonce).get_json()["complete"] is True
    text = assert_error(client.put(f"{V1}/generate-share/attempt"), 400, "share limit of 4 was reached")
    assert "cannot be raised" in text
    assert status(client)["started"] is False
    assert client.get(f"{V1}/health").get_json()["shares_issued"] == 4


def test_health_before_init_has_no_limit(client):
    body = client.get(f"{V1}/health").get_json()
    assert body["share_limit"] is None and body["shares_issued"] == 0


@pytest.mark.parametrize(
    ("limit", "fragment"),
    [
        (4, "share_limit (4) must be at least secret_shares (5)"),
        (256, "share_limit must be from secret_shares to 255"),
        ("9", "share_limit must be a JSON integer"),
    ],
)
def test_a_bad_share_limit_is_refused(client, limit, fragment):
    r = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3, "share_limit": limit})
    assert_error(r, 400, fragment)
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}


def test_the_share_limit_cannot_be_raised_through_the_api(client):
    client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2, "share_limit": 2})
    assert_error(
        client.put(f"{V1}/init", json={"secret_shares": 2, "secret_threshold": 2, "share_limit": 255}),
        400,
        "already initialized",
    )
    assert client.get(f"{V1}/shares").get_json()["share_limit"] == 2


def test_options_and_doubled_slashes_get_json_too(client):
    text = assert_error(client.options(f"{V1}/init"), 405, "OPTIONS is not allowed on /v1/sys/init")
    assert "GET" in text
    assert_error(client.get("/v1/sys//init"), 404, "no such path: /v1/sys//init")
    assert_error(client.get(f"{V1}/init/"), 404, "no such path")


# -- the registry's since -------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:59:59-23:59",  # past the year 9999 once in UTC
        "0001-01-01T00:00:00+23:59",  # before the year 1 once in UTC
        "9999-12-31T23:59:59-00:01",
    ],
)
def test_a_since_outside_the_years_1_to_9999_in_utc_is_a_400(client, shares, since):
    r = client.get(f"{V1}/shares", query_string={"since": since})
    assert_error(r, 400, "since must lie from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z")


@pytest.mark.parametrize(
    "since, canonical, verified",
    [
        ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00Z", 1),  # strftime("%Y") gives "999-..."
        ("0001-01-01T23:59:00+23:59", "0001-01-01T00:00:00Z", 1),
        ("0099-06-01T00:00:00Z", "0099-06-01T00:00:00Z", 1),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", 0),
        ("9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59Z", 0),
        ("2000-01-01T00:00:00.5Z", "2000-01-01T00:00:00Z", 1),
    ],
)
def test_since_reaches_the_registry_as_a_zero_padded_utc_time(client, shares, since, canonical, verified):
    assert client.put(f"{V1}/shares/verify", json={"key": shares[0]}).get_json()["valid"] is True
    body = client.get(f"{V1}/shares", query_string={"since": since}).get_json()
    assert (body["since"], body["verified"]) == (canonical, verified)


# -- the encryption subkey the holders compare ----------------------------------


@pytest.mark.parametrize("name", ["ECC", "RSA"])
def test_start_and_get_name_the_encryption_subkey(client, shares, keyring, name):
    key = getattr(keyring, name)
    started = start(client, pgp_key=base64.b64encode(keyring.public_binary(key)).decode())
    expected = keyring.encryption_subkey(key)
    assert expected != keyring.fingerprint(key)
    assert started["pgp_subkey_fingerprint"] == expected
    assert status(client)["pgp_subkey_fingerprint"] == expected
    assert status(client)["pgp_fingerprint"] == keyring.fingerprint(key)
