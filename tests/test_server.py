"""The real thing: gunicorn with gunicorn.conf.py on a free port, over HTTP."""

import base64
import threading

import hvac
import hvac.exceptions
import pytest
import requests

from app import shamir
from server import Server

# Open mode: the seed's ceremonies through gunicorn; tests/test_token.py runs token mode through it.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"


@pytest.fixture
def server(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s


def init(server, shares=5, threshold=3, **extra):
    body = {"secret_shares": shares, "secret_threshold": threshold, **extra}
    r = server.put(f"{V1}/init", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_pgp_ceremony_over_http(server, keyring):
    keys = init(server)["keys"]
    pgp_key = base64.b64encode(keyring.public_binary(keyring.RSA)).decode()
    started = server.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}).json()
    assert started["pgp_fingerprint"] == keyring.fingerprint(keyring.RSA)
    for key in keys[:3]:
        r = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": started["nonce"]})
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["complete"] is True and body["pgp_fingerprint"] == keyring.fingerprint(keyring.RSA)
    message = base64.b64decode(body["key_base64"])
    assert bytes.fromhex(body["key"]) == message
    new = keyring.decrypt(message)
    old = [bytes.fromhex(k) for k in keys]
    assert shamir.combine([new, old[3], old[4]]) == shamir.combine(old[:3])
    assert server.output().count(new.hex()) == 0


def test_a_restart_after_kill_9_keeps_the_registry_and_forgets_the_attempt(tmp_path):
    data = tmp_path / "data"
    with Server(data, tmp_path / "1.log") as first:
        keys = init(first)["keys"]
        nonce = first.put(f"{V1}/generate-share/attempt").json()["nonce"]
        for key in keys[:3]:
            r = first.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
        issued = first.get(f"{V1}/shares").json()
        assert issued["issued"] == 6
        second_nonce = first.put(f"{V1}/generate-share/attempt").json()["nonce"]
        first.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": second_nonce})
        first.kill()
    with Server(data, tmp_path / "2.log") as second:
        after = second.get(f"{V1}/shares").json()
        # Two more lines: the second attempt's start and its one accepted share.
        assert after.pop("audit_head")["seq"] == issued.pop("audit_head")["seq"] + 2
        assert after == issued
        assert second.get(f"{V1}/generate-share/attempt").json()["started"] is False
        # The new share made before the crash still works, and its x is never reissued.
        new = r.json()["key"]
        nonce = second.put(f"{V1}/generate-share/attempt").json()["nonce"]
        for key in (new, keys[3], keys[4]):
            last = second.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).json()
        assert last["complete"] is True
        assert bytes.fromhex(last["key"])[-1] not in {s["index"] for s in issued["shares"]}


def test_a_second_process_on_the_same_folder_fails_to_start(server, tmp_path):
    other = Server(server.data_dir, tmp_path / "other.log")
    other.spawn()
    assert other.wait() != 0
    assert "already served by another process" in other.output()
    assert "one worker" in other.output()
    assert server.get(f"{V1}/health").status_code == 501  # still answering: not initialized, as Vault says


def test_more_than_one_worker_is_refused(tmp_path):
    many = Server(tmp_path / "data", tmp_path / "w4.log", args=["-w", "4"])
    many.spawn()
    assert many.wait() != 0
    assert "refusing to start with 4 workers" in many.output()


def test_concurrent_updates_count_each_share_once_and_complete_once(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env={"GENERATE_SHARE_THREADS": "16"}) as server:
        keys = init(server, shares=10, threshold=7)["keys"]
        nonce = server.put(f"{V1}/generate-share/attempt").json()["nonce"]
        replies = []
        barrier = threading.Barrier(40)

        def submit(key):
            session = requests.Session()
            barrier.wait()
            r = session.put(
                f"{server.url}{V1}/generate-share/update", json={"key": key, "nonce": nonce}, timeout=30
            )
            replies.append((r.status_code, r.json()))

        threads = [threading.Thread(target=submit, args=(keys[i % 10],)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {code for code, _ in replies} <= {200, 400}
        complete = [body for code, body in replies if code == 200 and body["complete"]]
        assert len(complete) == 1
        progresses = sorted(body["progress"] for code, body in replies if code == 200)
        assert progresses == list(range(1, 8))
        old = [bytes.fromhex(k) for k in keys]
        new = bytes.fromhex(complete[0]["key"])
        assert shamir.combine([new, *old[:6]]) == shamir.combine(old[:7])
        assert server.get(f"{V1}/shares").json()["issued"] == 11


def test_hvac_works_unchanged(server):
    client = hvac.Client(url=server.url)
    assert client.sys.is_initialized() is False
    result = client.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(result["keys"]) == 5 and len(result["keys_base64"]) == 5
    assert client.sys.is_initialized() is True
    with pytest.raises(hvac.exceptions.InvalidRequest, match="already initialized"):
        client.sys.initialize(secret_shares=5, secret_threshold=3)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no share generation attempt is in progress"):
        client.adapter.put(f"{V1}/generate-share/update", json={"key": result["keys"][0]})
    status = client.adapter.put(f"{V1}/generate-share/attempt")
    assert status["started"] is True


def test_the_server_log_never_shows_key_material(server):
    keys = init(server)["keys"]
    nonce = server.put(f"{V1}/generate-share/attempt").json()["nonce"]
    server.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": "wrong"})
    server.put(f"{V1}/generate-share/update", json={"key": keys[0][:-4], "nonce": nonce})
    for key in keys[:3]:
        last = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).json()
    server.stop()
    log = server.output()
    assert "Booting worker" in log
    for secret in [*keys, last["key"], last["key_base64"]]:
        assert secret not in log
        assert secret[:16] not in log
    for file in server.data_dir.iterdir():
        content = file.read_bytes()
        for secret in [*keys, last["key"]]:
            assert secret.encode() not in content and bytes.fromhex(secret) not in content
