"""Token mode (issue 13): the operator token, the required nonce, the one-time pad, token reset.

Flask's test client for the rules, and the real gunicorn (tests/server.py)
with hvac for the ceremony end to end. Open mode is the rest of the suite,
unchanged; here only what tells the two modes apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from click.testing import CliRunner

from app import create_app, reading, shamir
from app.cli import cli
from app.errors import StartupError
from helpers import assert_error, same_key
from server import Server

V1 = "/v1/sys"
ATTEMPT = f"{V1}/generate-share/attempt"
UPDATE = f"{V1}/generate-share/update"
ADOPT = f"{V1}/adopt/attempt"
ADOPT_UPDATE = f"{V1}/adopt/update"
INIT = {"secret_shares": 5, "secret_threshold": 3}
# Vault's own split of a 32-byte key, 3 of 5 (x = 1 to 5).
VAULT = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"][0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def xor(a: bytes, b: bytes) -> bytes:
    assert len(a) == len(b)
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def vault(token: str) -> dict:
    return {"X-Vault-Token": token}


@pytest.fixture
def app(tmp_path):
    """An app in token mode over a fresh data folder."""
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": "token"})
    yield app
    app.extensions["generate_share_store"].close()


@pytest.fixture
def lead(client) -> tuple[str, list[str]]:
    """Initialize 3 of 5 in token mode; return the operator token and the shares (hex)."""
    r = client.put(f"{V1}/init", json=INIT)
    assert r.status_code == 200
    body = r.get_json()
    return body["root_token"], body["keys"]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# -- the mode itself ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["closed", "", "TOKENS", 1, None])
def test_an_unknown_mode_is_refused_at_start_naming_the_variable(tmp_path, value):
    with pytest.raises(StartupError, match="GENERATE_SHARE_CEREMONY_AUTH must be token"):
        create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": value})


def test_health_names_the_service_and_the_mode(client, tmp_path):
    body = client.get(f"{V1}/health").get_json()
    assert body["service"] == "generate-share" and body["ceremony_auth"] == "token"
    other = create_app({"DATA_DIR": str(tmp_path / "open"), "CEREMONY_AUTH": "open"})
    try:
        assert other.test_client().get(f"{V1}/health").get_json()["ceremony_auth"] == "open"
    finally:
        other.extensions["generate_share_store"].close()


# -- the operator token --------------------------------------------------------------


def test_init_returns_a_token_of_256_bits_and_keeps_only_its_hash(client, lead, folder):
    token, _ = lead
    assert token.startswith("gs.") and len(base64.urlsafe_b64decode(token[3:] + "=")) == 32
    state = json.loads((folder / "state.json").read_text())
    assert state["state"]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for content in files(folder).values():
        assert token.encode() not in content
    # Another init's token is another token.
    assert client.put(f"{V1}/init", json=INIT).status_code == 400


def test_start_and_cancel_need_the_token_and_a_refusal_changes_nothing(client, lead, folder):
    token, _ = lead
    state = (folder / "state.json").read_bytes()
    for headers in ({}, vault("gs." + "A" * 43)):
        assert_error(client.put(ATTEMPT, headers=headers), 403, "permission denied: ")
        assert_error(client.post(ATTEMPT, json={}, headers=headers), 403, "permission denied: ")
        assert client.get(ATTEMPT).get_json()["started"] is False
    started = client.put(ATTEMPT, headers=vault(token)).get_json()
    assert started["started"] is True
    for headers in ({}, vault("gs." + "A" * 43)):
        text = assert_error(client.delete(ATTEMPT, headers=headers), 403, "permission denied: ")
        assert "X-Vault-Token" in text or "root_token" in text  # says what is expected
        now = client.get(ATTEMPT, headers=vault(token)).get_json()  # the lead's GET shows the nonce
        assert now["started"] is True and now["nonce"] == started["nonce"]
    assert (folder / "state.json").read_bytes() == state
    assert client.delete(ATTEMPT, headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert client.get(ATTEMPT).get_json()["started"] is False
    assert "permission denied" in (folder / "audit.log").read_text()  # the refusals were recorded


def test_a_bad_body_from_a_stranger_is_refused_for_the_token_first(client, lead):
    assert_error(client.put(ATTEMPT, data="{not json"), 403, "permission denied: ")


def test_updates_registry_health_and_custody_need_no_token(client, lead):
    token, keys = lead
    nonce = client.put(ATTEMPT, headers=vault(token)).get_json()["nonce"]
    r = client.put(UPDATE, json={"key": keys[0], "nonce": nonce})
    assert r.status_code == 200 and r.get_json()["progress"] == 1
    assert client.get(f"{V1}/shares").status_code == 200
    assert client.get(f"{V1}/health").status_code == 200
    assert client.put(f"{V1}/shares/verify", json={"key": keys[1]}).get_json()["valid"] is True


WRONG = "gs." + "B" * 43


def _headers_cases(token: str) -> list[tuple[dict, int]]:
    """Header forms that must be refused: (headers, status)."""
    return [
        ({"X-Vault-Token": ""}, 403),
        ({"X-Vault-Token": "   "}, 403),
        ({"X-Vault-Token": "Z" * 10_240}, 403),
        ({"Authorization": "Bearer " + "Z" * 10_240}, 403),
        ({"X-Vault-Token": "gs.tökén-ünïcødé"}, 403),
        ({"X-Vault-Token": token + "é"}, 403),
        ({"Authorization": "Bearer"}, 403),
        ({"Authorization": "Bearer   "}, 403),
        ({"Authorization": ""}, 403),
        ({"Authorization": "Basic " + b64(b"lead:" + token.encode())}, 403),
        ({"Authorization": token}, 403),
        ({"Authorization": f"bearer {WRONG}"}, 403),
        ({"Authorization": f"Bearer {token} extra"}, 403),
        ({"X-Vault-Token": token, "Authorization": f"Bearer {WRONG}"}, 403),
        ({"X-Vault-Token": WRONG, "Authorization": f"Bearer {token}"}, 403),
        ({"X-Vault-Token": f"{token},{token}"}, 403),
        ({"X-Vault-Token": "\x7f" + token}, 403),
    ]


def test_every_malformed_or_wrong_token_header_is_refused_without_echo(client, lead, folder):
    token, _ = lead
    for headers, status in _headers_cases(token):
        for method in (client.put, client.delete):
            r = method(ATTEMPT, headers=headers)
            text = assert_error(r, status, "permission denied: ")
            for value in headers.values():
                for part in value.split():
                    if len(part) > 8:
                        assert part not in text
            assert token not in text
        assert client.get(ATTEMPT).get_json()["started"] is False, headers
    trail = (folder / "audit.log").read_text()
    assert token not in trail and WRONG not in trail and "Z" * 100 not in trail


@pytest.mark.parametrize(
    "form",
    [
        lambda t: {"X-Vault-Token": t},
        lambda t: {"X-Vault-Token": f"  {t}  "},
        lambda t: {"Authorization": f"Bearer {t}"},
        lambda t: {"Authorization": f"bearer {t}"},  # HTTP's scheme names ignore case
        lambda t: {"Authorization": f"BEARER   {t}"},
        lambda t: {"X-Vault-Token": t, "Authorization": f"Bearer {t}"},  # both, agreeing
    ],
)
def test_each_accepted_token_form_starts_and_cancels(client, lead, form):
    token, _ = lead
    assert client.put(ATTEMPT, headers=form(token)).status_code == 200
    assert client.delete(ATTEMPT, headers=form(token)).status_code == 204
    assert client.get(ATTEMPT).get_json()["started"] is False


def test_a_data_folder_from_before_tokens_has_none_until_a_reset(tmp_path):
    data = tmp_path / "data"
    old = create_app({"DATA_DIR": str(data), "CEREMONY_AUTH": "open"})
    keys = old.test_client().put(f"{V1}/init", json=INIT).get_json()["keys"]
    old.extensions["generate_share_store"].close()
    # A state file of the format before tokens: no token_hash at all.
    doc = json.loads((data / "state.json").read_text())
    del doc["state"]["token_hash"]
    (data / "state.json").write_text(json.dumps(doc))
    app = create_app({"DATA_DIR": str(data), "CEREMONY_AUTH": "token"})
    try:
        client = app.test_client()
        assert_error(client.put(ATTEMPT, headers=vault(WRONG)), 403, "generate-share token reset DATA_DIR")
        assert client.put(f"{V1}/shares/verify", json={"key": keys[0]}).get_json()["valid"] is True
    finally:
        app.extensions["generate_share_store"].close()
    token = _reset(data)
    app = create_app({"DATA_DIR": str(data), "CEREMONY_AUTH": "token"})
    try:
        assert app.test_client().put(ATTEMPT, headers=vault(token)).status_code == 200
    finally:
        app.extensions["generate_share_store"].close()


# -- the nonce ------------------------------------------------------------------------


def test_every_update_needs_the_nonce_and_a_wrong_one_counts_nothing(client, lead):
    token, keys = lead
    nonce = client.put(ATTEMPT, headers=vault(token)).get_json()["nonce"]
    assert client.put(UPDATE, json={"key": keys[0], "nonce": nonce}).get_json()["progress"] == 1
    other = "00000000-0000-4000-8000-000000000000"
    for body in ({"key": keys[1]}, {"key": keys[1], "nonce": ""}, {"key": keys[1], "nonce": other}):
        text = assert_error(client.put(UPDATE, json=body), 400, "nonce")
        assert nonce not in text  # the holder must use the announced nonce, not copy one
        assert client.get(ATTEMPT).get_json()["progress"] == 1
    assert client.put(UPDATE, json={"key": keys[1], "nonce": nonce}).get_json()["progress"] == 2


def test_an_open_server_still_takes_updates_without_a_nonce(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": "open"})
    try:
        client = app.test_client()
        body = client.put(f"{V1}/init", json=INIT).get_json()
        assert "root_token" not in body
        started = client.put(ATTEMPT).get_json()
        assert "otp" not in started and "otp_length" not in started
        for key in body["keys"][:3]:
            last = client.put(UPDATE, json={"key": key}).get_json()
        assert last["complete"] is True and same_key(last["key"], body["keys"], 3)  # in clear, as the seed
    finally:
        app.extensions["generate_share_store"].close()


# -- the one-time pad ---------------------------------------------------------------------


def test_the_new_share_comes_xored_with_the_pad_only_the_start_reply_shows(client, lead, folder):
    token, keys = lead
    started = client.put(ATTEMPT, headers=vault(token)).get_json()
    pad = base64.b64decode(started["otp"])
    assert len(pad) == 33 and started["otp_length"] == 33
    status = client.get(ATTEMPT).get_json()
    assert "otp" not in status and status["otp_length"] == 33
    replies = [client.put(UPDATE, json={"key": k, "nonce": started["nonce"]}).get_json() for k in keys[:3]]
    assert all("otp" not in r for r in replies)
    last = replies[-1]
    assert last["complete"] is True and last["otp_length"] == 33
    masked = bytes.fromhex(last["key"])
    assert base64.b64decode(last["key_base64"]) == masked
    new = xor(masked, pad)
    # The pad undoes the mask: the result is a new share at a fresh x of the same key.
    assert new[-1] not in {bytes.fromhex(k)[-1] for k in keys}
    assert same_key(new.hex(), keys, 3)
    old = [bytes.fromhex(k) for k in keys]
    assert shamir.combine([new, old[3], old[4]]) == shamir.combine(old[:3])
    # Without the pad the last holder and the logs hold nothing usable. The
    # masked x is x XOR a pad byte: it may be 0 or an x already in use, which
    # combine refuses; either way no key comes of it.
    try:
        unmasked_guess = shamir.combine([masked, old[3], old[4]])
    except shamir.ShamirError:
        unmasked_guess = None
    assert unmasked_guess != shamir.combine(old[:3])
    for content in files(folder).values():
        assert started["otp"].encode() not in content and pad.hex().encode() not in content
    assert client.get(ATTEMPT).get_json()["otp_length"] == 0  # the attempt ended


def test_a_cancelled_attempt_forgets_its_pad_and_a_new_one_gets_another(client, lead):
    token, _ = lead
    first = client.put(ATTEMPT, headers=vault(token)).get_json()["otp"]
    assert client.delete(ATTEMPT, headers=vault(token)).status_code == 204
    second = client.put(ATTEMPT, headers=vault(token)).get_json()["otp"]
    assert first != second


def test_with_a_pgp_key_there_is_no_pad(client, lead, keyring):
    token, keys = lead
    pgp_key = b64(keyring.public_binary(keyring.ECC))
    started = client.put(ATTEMPT, json={"pgp_key": pgp_key}, headers=vault(token)).get_json()
    assert "otp" not in started and started["otp_length"] == 0
    for key in keys[:3]:
        last = client.put(UPDATE, json={"key": key, "nonce": started["nonce"]}).get_json()
    new = keyring.decrypt(base64.b64decode(last["key_base64"]))
    assert same_key(new.hex(), keys, 3)


# -- adoption --------------------------------------------------------------------------


def test_adoption_returns_the_token_that_cancels_it_and_steers_afterwards(client):
    started = client.put(ADOPT, json={"secret_threshold": 3}).get_json()
    token = started["root_token"]
    assert token.startswith("gs.")
    assert "root_token" not in client.get(ADOPT).get_json()
    for headers in ({}, vault(WRONG), vault("")):
        assert_error(client.delete(ADOPT, headers=headers), 403, "permission denied: ")
        assert client.get(ADOPT).get_json()["started"] is True
    assert client.delete(ADOPT, headers=vault(token)).status_code == 204
    # A second adoption gets its own token; the first one no longer counts.
    started = client.put(ADOPT, json={"secret_threshold": 3}).get_json()
    token, nonce = started["root_token"], started["nonce"]
    assert_error(client.put(ADOPT_UPDATE, json={"key": VAULT["shares_hex"][0]}), 400, "nonce")
    for share in VAULT["shares_hex"][:4]:
        last = client.put(ADOPT_UPDATE, json={"key": share, "nonce": nonce}).get_json()
    assert last["complete"] is True and "root_token" not in last
    # The adoption's token is now the operator token; the pad is as long as Vault's shares.
    assert_error(client.put(ATTEMPT), 403, "permission denied: ")
    started = client.put(ATTEMPT, headers=vault(token)).get_json()
    pad = base64.b64decode(started["otp"])
    assert len(pad) == len(bytes.fromhex(VAULT["shares_hex"][0]))
    for share in VAULT["shares_hex"][:3]:
        last = client.put(UPDATE, json={"key": share, "nonce": started["nonce"]}).get_json()
    new = xor(bytes.fromhex(last["key"]), pad)
    assert same_key(new.hex(), VAULT["shares_hex"], 3)


# -- token reset --------------------------------------------------------------------------


def _reset(data: Path) -> str:
    result = CliRunner().invoke(cli, ["--format", "json", "token", "reset", str(data)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["root_token"]


def test_token_reset_replaces_the_token_offline_and_records_it(tmp_path):
    data = tmp_path / "data"
    app = create_app({"DATA_DIR": str(data), "CEREMONY_AUTH": "token"})
    old = app.test_client().put(f"{V1}/init", json=INIT).get_json()["root_token"]
    # While the service holds the folder, the reset refuses and changes nothing.
    before = files(data)
    result = CliRunner().invoke(cli, ["token", "reset", str(data)])
    assert result.exit_code == 1 and "stop it first" in result.output
    assert files(data) == before
    app.extensions["generate_share_store"].close()
    result = CliRunner().invoke(cli, ["token", "reset", str(data)])
    assert result.exit_code == 0 and "shown this once" in result.output
    [new] = [w for w in result.output.split() if w.startswith("gs.")]
    assert new != old
    trail = (data / "audit.log").read_text()
    assert json.loads(trail.splitlines()[-1])["event"] == "root_token_reset"
    for content in files(data).values():
        assert new.encode() not in content
    assert reading.verify(data).ok
    app = create_app({"DATA_DIR": str(data), "CEREMONY_AUTH": "token"})
    try:
        client = app.test_client()
        assert_error(client.put(ATTEMPT, headers=vault(old)), 403, "permission denied: ")
        assert client.put(ATTEMPT, headers=vault(new)).status_code == 200
    finally:
        app.extensions["generate_share_store"].close()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_token_reset_needs_an_initialized_folder(tmp_path, make):
    data = tmp_path / "data"
    if make == "empty":
        data.mkdir(mode=0o700)
    result = CliRunner().invoke(cli, ["token", "reset", str(data)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("no data folder" if make == "missing" else "no operator token to reset") in result.output
    assert data.exists() == (make == "empty")


# -- through gunicorn, with hvac ----------------------------------------------------------


def test_hvac_runs_a_whole_ceremony_in_the_default_mode(tmp_path):
    env = {"GENERATE_SHARE_CEREMONY_AUTH": None}  # the real default
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as server:
        health = server.get(f"{V1}/health").json()
        assert health["service"] == "generate-share" and health["ceremony_auth"] == "token"
        client = hvac.Client(url=server.url)
        reply = client.sys.initialize(secret_shares=5, secret_threshold=3)
        keys, token = reply["keys"], reply["root_token"]
        stranger = hvac.Client(url=server.url)
        with pytest.raises(hvac.exceptions.Forbidden):
            stranger.adapter.put(ATTEMPT)
        stranger.token = WRONG
        with pytest.raises(hvac.exceptions.Forbidden):
            stranger.adapter.put(ATTEMPT)
        client.token = token
        started = client.adapter.put(ATTEMPT)
        pad = base64.b64decode(started["otp"])
        with pytest.raises(hvac.exceptions.Forbidden):
            stranger.adapter.delete(ATTEMPT)
        with pytest.raises(hvac.exceptions.InvalidRequest):
            client.adapter.put(UPDATE, json={"key": keys[0]})  # no nonce
        assert client.adapter.get(ATTEMPT)["progress"] == 0
        for key in keys[:3]:
            # Holders need no token; hvac sends it anyway and it is ignored there.
            last = stranger.adapter.put(UPDATE, json={"key": key, "nonce": started["nonce"]})
        assert last["complete"] is True
        new = xor(bytes.fromhex(last["key"]), pad)
        assert same_key(new.hex(), keys, 3)
        started = client.adapter.put(ATTEMPT)
        assert client.adapter.delete(ATTEMPT).status_code == 204
        output = server.output()
    assert token not in output and started["otp"] not in output
    assert "Traceback" not in output


def _raw(server: Server, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_gunicorn_refuses_odd_token_headers_with_4xx_never_500_and_never_echoes(tmp_path):
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as server:
        token = server.put(f"{V1}/init", json=INIT).json()["root_token"]
        odd = [
            b"X-Vault-Token: " + "gs.tökén".encode(),  # UTF-8 bytes on the wire
            b"X-Vault-Token: \xff\xfe" + token.encode(),
            b"X-Vault-Token: " + b"Q" * 10_240,  # past gunicorn's header limit
            b"Authorization: Bearer " + b"Q" * 7_000,
            b"Authorization: Bearer",
            b"Authorization: bearer " + WRONG.encode(),
            b"X-Vault-Token: " + token.encode() + b"\r\nAuthorization: Bearer " + WRONG.encode(),
            b"X-Vault-Token: " + WRONG.encode() + b"\r\nX-Vault-Token: " + token.encode(),
        ]
        for header in odd:
            for method in (b"PUT", b"DELETE"):
                reply = _raw(
                    server,
                    method + b" " + ATTEMPT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n" + header + b"\r\n\r\n",
                )
                status = int(reply.split(b" ", 2)[1])
                # 431: gunicorn refuses a header past its 8190-byte limit before the app sees it.
                assert status in (400, 403, 431), (header[:40], reply[:200])
                assert (
                    b"QQQQQQQQ" not in reply and WRONG.encode() not in reply and token.encode() not in reply
                )
                assert "tökén".encode() not in reply
        assert server.get(ATTEMPT).json()["started"] is False
        output = server.output()
    assert "Traceback" not in output and token not in output and WRONG not in output
