"""Webhook notifications against a real receiver, behind the real gunicorn (issue 14).

The receiver is an http.server in this process on a free loopback port. It
can accept, hang, answer any status or reset the connection; tests wait on
its condition with deadlines, never by sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from receiver import TRICKLE, Receiver
from test_deploy import make_cert

from app import create_app, delivery, reading
from app.audit import AUDIT_FILE
from app.errors import StartupError
from app.notify import EVENTS, cursor_name, sign
from server import Server

V1 = "/v1/sys"
SECRET = "receiver-secret-0123456789abcdef"


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def notify_env(*urls: str, **extra) -> dict:
    return {"GENERATE_SHARE_NOTIFY_URL": ",".join(urls), "GENERATE_SHARE_NOTIFY_SECRET": SECRET, **extra}


def trail_lines(data: Path) -> list[bytes]:
    return (data / AUDIT_FILE).read_bytes().splitlines()


def lead(init: dict) -> dict:
    """Return the lead's headers: init's root token as X-Vault-Token (token mode, the default)."""
    return {"X-Vault-Token": init["root_token"]}


def unmasked_index(start: dict, done: dict) -> int:
    """Return the new share's x: its last byte, under the attempt's pad (a bare share is masked)."""
    return bytes.fromhex(done["key"])[-1] ^ base64.b64decode(start["otp"])[-1]


def ceremony(
    server: Server, keys: list[str], headers: dict | None = None, timeout: float = 30
) -> tuple[dict, dict]:
    """Run one attempt to its end, each request within ``timeout``; return the start and last replies."""
    start = server.put(f"{V1}/generate-share/attempt", json={}, headers=headers or {}, timeout=timeout)
    assert start.status_code == 200, start.text
    nonce = start.json()["nonce"]
    for key in keys[:2]:
        done = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}, timeout=timeout)
        assert done.status_code == 200, done.text
    assert done.json()["complete"] is True
    return start.json(), done.json()


def secrets_in(reply: dict) -> set[str]:
    """Return every string a reply holds under a name of key material (keys, pad, token)."""
    found = set()
    for name, value in reply.items():
        if any(word in name for word in ("key", "otp", "token")):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and len(item) >= 8:
                    found.add(item)
    return found


def test_every_event_arrives_in_order_signed_and_without_secret_material(tmp_path, receiver):
    env = notify_env(receiver.url)
    with Server(tmp_path / "data", tmp_path / "g.log", env=env) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
        start, done = ceremony(server, init["keys"], lead(init))
        again = server.put(f"{V1}/generate-share/attempt", json={}, headers=lead(init)).json()
        assert server.delete(f"{V1}/generate-share/attempt", headers=lead(init)).status_code == 204
        bad = server.put(f"{V1}/generate-share/update", json={"key": "00", "nonce": again["nonce"]})
        assert bad.status_code == 400
        assert server.put(f"{V1}/shares/verify", json={"key": init["keys"][0]}).json()["valid"] is True
        lines = trail_lines(tmp_path / "data")
        receiver.wait(lambda r: r.has_seq(len(lines)), f"line {len(lines)}")

    assert receiver.events() == [(n, json.loads(line)["event"]) for n, line in enumerate(lines, start=1)]
    names = {event for _, event in receiver.events()}
    assert (
        {"init", "attempt_started", "share_issued", "attempt_cancelled", "share_verified"} <= names <= EVENTS
    )
    material = secrets_in(init) | secrets_in(start) | secrets_in(done) | secrets_in(again)
    assert init["root_token"] in material and done["key"] in material and start["otp"] in material
    for (headers, body, doc), line in zip(receiver.got, lines, strict=True):
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Generate-Share-Signature"], expected)
        assert headers["X-Generate-Share-Event"] == doc["event"]
        assert headers["X-Generate-Share-Seq"] == str(doc["seq"])
        # The fields without audit_head are the trail line byte for byte: a receiver can check the chain.
        fields = {k: v for k, v in doc.items() if k != "audit_head"}
        assert json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() == line
        assert doc["audit_head"] == {"seq": doc["seq"], "hash": hashlib.sha256(line).hexdigest()}
        text = body.decode()
        assert not [m for m in material if m in text], doc["event"]
        assert SECRET not in text
    issued = next(doc for _, _, doc in receiver.got if doc["event"] == "share_issued")
    assert issued["index"] == unmasked_index(start, done)


def test_only_the_chosen_events_are_sent(tmp_path, receiver):
    env = notify_env(receiver.url, GENERATE_SHARE_NOTIFY_EVENTS="share_issued, init")
    with Server(tmp_path / "data", tmp_path / "g.log", env=env) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
        ceremony(server, init["keys"], lead(init))
        ceremony(server, init["keys"], lead(init))
        receiver.wait(lambda r: len(r.got) == 3, "init and two share_issued")
    assert [event for _, event in receiver.events()] == ["init", "share_issued", "share_issued"]


def test_a_share_issued_while_the_receiver_is_down_arrives_after_a_restart(tmp_path):
    down = Receiver()  # its port is held and nothing listens on it yet: connections are refused
    data = tmp_path / "data"
    with Server(data, tmp_path / "g.log", env=notify_env(down.url)) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
        start, done = ceremony(server, init["keys"], lead(init))
        issued_at = len(trail_lines(data))
    assert json.loads(trail_lines(data)[issued_at - 1])["event"] == "share_issued"
    log = (tmp_path / "g.log").read_text()
    assert "notify: receiver 1 did not take event 1 (init)" in log
    assert down.url not in log  # a webhook URL may hold a secret: never logged
    assert down.got == []

    receiver = down.start()
    try:
        with Server(data, tmp_path / "g2.log", env=notify_env(receiver.url)):
            receiver.wait(lambda r: r.has_seq(issued_at), "the missed share_issued")
        issued = [doc for _, _, doc in receiver.got if doc["event"] == "share_issued"]
        assert [doc["index"] for doc in issued] == [unmasked_index(start, done)]
        seqs = [seq for seq, _ in receiver.events()]
        assert seqs == sorted(seqs) and seqs[:issued_at] == list(range(1, issued_at + 1))
        # The cursor was recorded at shutdown, in the data folder, and the folder still starts.
        cursor = data / cursor_name(receiver.url)
        assert oct(cursor.stat().st_mode & 0o777) == "0o600"
        assert f"seq={len(trail_lines(data))} ".encode() in cursor.read_bytes()
        assert reading.verify(data).ok
    finally:
        receiver.stop()


def test_a_hanging_receiver_does_not_slow_a_ceremony(tmp_path):
    # The client's timeout is the only clock: a delivery on the request path would
    # hold each write for the notifier's read timeout, and the client gives up first.
    patience = delivery.READ_TIMEOUT
    hanging = Receiver().start()
    hanging.mode = "hang"
    try:
        data = tmp_path / "data"
        with Server(data, tmp_path / "g.log", env=notify_env(hanging.url)) as server:
            body = {"secret_shares": 3, "secret_threshold": 2, "share_limit": 50}
            init = server.put(f"{V1}/init", json=body, timeout=patience).json()
            hanging.wait(lambda r: r.seen, "the first delivery")
            for _ in range(5):
                ceremony(server, init["keys"], lead(init), timeout=patience)
            assert server.get(f"{V1}/health", timeout=patience).status_code == 200
            lines = len(trail_lines(data))
            with hanging.cond:
                # Still hung: it took a request, answered none, and was never released.
                assert hanging.seen and hanging.got == [] and not hanging.release.is_set()
            events = [json.loads(line)["event"] for line in trail_lines(data)]
            assert events.count("share_issued") == 5  # all written and answered while it hung
            # Released, the receiver takes everything, in order.
            hanging.mode = "ok"
            hanging.release.set()
            hanging.wait(lambda r: r.has_seq(lines), "every event once released")
        assert [seq for seq, _ in hanging.events()] == list(range(1, lines + 1))
    finally:
        hanging.stop()


def test_misbehaving_receivers_are_retried_and_never_break_the_service(tmp_path, receiver):
    receiver.script = [302, 404, 500, "reset", 503]
    with Server(tmp_path / "data", tmp_path / "g.log", env=notify_env(receiver.url)) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
        ceremony(server, init["keys"], lead(init))
        lines = len(trail_lines(tmp_path / "data"))
        receiver.wait(lambda r: r.has_seq(lines), "every event after the failures")
        assert server.get(f"{V1}/health").status_code == 200
    assert [seq for seq, _ in receiver.events()] == list(range(1, lines + 1))
    assert ("GET", "/elsewhere") not in receiver.seen  # a redirect is a failure, never followed
    assert ("POST", "/elsewhere") not in receiver.seen
    log = (tmp_path / "g.log").read_text()
    for status in (302, 404, 500, 503):
        assert f"receiver 1 answered {status} to event 1 (init); retrying" in log
    assert "receiver 1 did not take event 1 (init): ConnectionError; retrying" in log


def test_a_reply_that_trickles_its_head_or_body_is_abandoned_at_the_deadline_and_retried(tmp_path, receiver):
    # Each trickled byte comes well within the read timeout: only the delivery's deadline ends it.
    receiver.script = ["trickle-head", "trickle-body"]
    with Server(tmp_path / "data", tmp_path / "g.log", env=notify_env(receiver.url)) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
        receiver.wait(lambda r: r.seen, "the first delivery")
        assert server.get(f"{V1}/health").status_code == 200  # while the head trickles
        ceremony(server, init["keys"], lead(init))
        lines = len(trail_lines(tmp_path / "data"))
        # The same event again, each time on a new connection: the trickling ones were dropped.
        receiver.wait(lambda r: r.has_seq(lines), "every event after two trickled replies", timeout=60)
        assert server.get(f"{V1}/health").status_code == 200
    assert [seq for seq, _ in receiver.events()] == list(range(1, lines + 1))
    assert receiver.seen.count(("POST", "/hook")) == lines + 2 and receiver.connections == 3
    log = (tmp_path / "g.log").read_text()
    assert log.count("receiver 1 did not take event 1 (init): DeliveryTimeout; retrying") == 2
    assert receiver.url not in log and f"127.0.0.1:{receiver.port}" not in log


def post_once(session, receiver: Receiver, seq: int, seconds: float = delivery.DELIVERY_SECONDS) -> int:
    """Deliver one small event to ``receiver`` through ``session``; return the status."""
    _, body = delivery.payload(json.dumps({"event": "init", "seq": seq}).encode())
    return delivery.post(session, receiver.url, body, {"Content-Type": "application/json"}, seconds)


@pytest.mark.parametrize("action", ["trickle-head", "trickle-body"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_one_deadline_covers_the_reply_and_a_whole_reply_keeps_its_connection(tmp_path, scheme, action):
    tls = make_cert(tmp_path) if scheme == "https" else None
    receiver = Receiver(tls=tls).start()
    # On a new connection, then on one kept alive since the last reply.
    receiver.script = [action, "ok", action]
    session = delivery.open_session()
    if tls:
        session.verify = str(tls[0])
    try:
        for seq in (1, 3):
            with pytest.raises(delivery.DeliveryTimeout):
                post_once(session, receiver, seq, seconds=4 * TRICKLE)
            assert post_once(session, receiver, seq + 1) == 204
        assert post_once(session, receiver, 5) == 204
        # Each trickling connection was dropped; one read whole was kept alive and reused.
        assert receiver.connections == 3
        assert receiver.events() == [(2, "init"), (4, "init"), (5, "init")]
    finally:
        session.close()
        receiver.stop()


def test_a_tls_handshake_that_trickles_is_abandoned_at_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            try:
                conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB, then a byte at a time
                while not stop.wait(TRICKLE):  # pacing a peer slow on purpose
                    conn.sendall(b"\x00")
            except OSError:
                pass  # the service gave up on it

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    session = delivery.open_session()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        with pytest.raises(delivery.DeliveryTimeout) as failed:
            delivery.post(session, url, b"{}", {}, seconds=4 * TRICKLE)
        assert url not in str(failed.value) and "127.0.0.1" not in str(failed.value)
    finally:
        stop.set()
        session.close()
        thread.join(delivery.DELIVERY_SECONDS)
        listener.close()


@pytest.mark.parametrize("dotted", delivery.URLLIB3_NAMES)
def test_each_urllib3_name_the_delivery_uses_exists(dotted):
    module, _, rest = dotted.rpartition(".")
    owner, _, name = module.rpartition(".")
    assert callable(getattr(getattr(importlib.import_module(owner), name), rest)), dotted


def test_notify_required_refuses_to_start_while_the_receiver_is_down(tmp_path):
    receiver = Receiver()  # not listening yet
    env = notify_env(receiver.url, GENERATE_SHARE_NOTIFY_REQUIRED="true")
    data = tmp_path / "data"
    try:
        with Server(data, tmp_path / "g.log", env=env) as server:
            adopt = server.put(f"{V1}/adopt/attempt", json={"secret_threshold": 2})
            assert adopt.status_code == 503, adopt.text
            assert "GENERATE_SHARE_NOTIFY_REQUIRED" in adopt.json()["errors"][0]
            assert server.get(f"{V1}/adopt/attempt").json()["started"] is False
            init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
            began = time.monotonic()
            start = server.put(f"{V1}/generate-share/attempt", json={}, headers=lead(init))
            refused_in = time.monotonic() - began
            assert start.status_code == 503, start.text
            assert "nothing started" in start.json()["errors"][0]
            assert server.get(f"{V1}/generate-share/attempt").json()["started"] is False
            assert server.get(f"{V1}/health").status_code == 200

            receiver.start()
            start = server.put(f"{V1}/generate-share/attempt", json={}, headers=lead(init))
            assert start.status_code == 200, start.text
            # Accepted before the reply left: no waiting needed here.
            with receiver.cond:
                started = [doc["seq"] for _, _, doc in receiver.got if doc["event"] == "attempt_started"]
            this_start = json.loads(trail_lines(data)[-1])
            assert this_start["event"] == "attempt_started" and started[-1] == this_start["seq"]
            nonce = start.json()["nonce"]
            for key in init["keys"][:2]:
                done = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
            assert done.json()["complete"] is True
            lines = trail_lines(data)
            receiver.wait(lambda r: r.has_seq(len(lines)), "every event")
        events = [json.loads(line)["event"] for line in lines]
        # The refused starts are in the trail, each with its cancellation, and reached the receiver.
        assert events[:3] == ["adoption_started", "adoption_cancelled", "init"]
        assert events[3:5] == ["attempt_started", "attempt_cancelled"]
        assert events[-1] == "share_issued" and events.count("share_issued") == 1
        assert [event for _, event in receiver.events()] == events
        print(f"\nNOTIFY_REQUIRED with the receiver down: refused in {refused_in * 1000:.0f} ms")
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"NOTIFY_URL": "ftp://secret-host.test/hook"}, "GENERATE_SHARE_NOTIFY_URL"),
        ({"NOTIFY_URL": "not a url"}, "GENERATE_SHARE_NOTIFY_URL"),
        ({"NOTIFY_URL": "http://:80/hook"}, "GENERATE_SHARE_NOTIFY_URL"),
        ({"NOTIFY_URL": "http://secret-host.test:99999/"}, "GENERATE_SHARE_NOTIFY_URL"),
        ({"NOTIFY_URL": ["http://secret-host.test/"]}, "GENERATE_SHARE_NOTIFY_URL"),
        ({"NOTIFY_URL": "http://secret-host.test/"}, "GENERATE_SHARE_NOTIFY_SECRET"),
        (
            {"NOTIFY_URL": "http://secret-host.test/", "NOTIFY_SECRET": "short"},
            "GENERATE_SHARE_NOTIFY_SECRET",
        ),
        (
            {"NOTIFY_URL": "http://secret-host.test/", "NOTIFY_SECRET": 12345678901234567},
            "GENERATE_SHARE_NOTIFY_SECRET",
        ),
        (
            {
                "NOTIFY_URL": "http://secret-host.test/",
                "NOTIFY_SECRET": SECRET,
                "NOTIFY_EVENTS": "share_issued,share_made",
            },
            "GENERATE_SHARE_NOTIFY_EVENTS",
        ),
        ({"NOTIFY_REQUIRED": True}, "GENERATE_SHARE_NOTIFY_REQUIRED"),
        ({"NOTIFY_REQUIRED": "yes"}, "GENERATE_SHARE_NOTIFY_REQUIRED"),
        (
            {
                "NOTIFY_URL": "http://secret-host.test/",
                "NOTIFY_SECRET": SECRET,
                "NOTIFY_EVENTS": "share_issued",
                "NOTIFY_REQUIRED": True,
            },
            "GENERATE_SHARE_NOTIFY_EVENTS",
        ),
    ],
)
def test_bad_notify_settings_are_refused_at_start_naming_the_variable(tmp_path, settings, named):
    data = tmp_path / "data"
    with pytest.raises(StartupError) as refused:
        create_app({"DATA_DIR": str(data), **settings})
    assert named in str(refused.value)
    assert "99999" not in str(refused.value) and "secret-host" not in str(refused.value)
    assert not data.exists()  # refused before the data folder is touched


def test_an_unknown_event_name_lists_the_real_ones(tmp_path):
    with pytest.raises(StartupError) as refused:
        create_app(
            {
                "DATA_DIR": str(tmp_path),
                "NOTIFY_URL": "http://h/",
                "NOTIFY_SECRET": SECRET,
                "NOTIFY_EVENTS": "x",
            }
        )
    assert all(name in str(refused.value) for name in EVENTS)


def test_a_bad_url_in_the_environment_stops_gunicorn_naming_the_variable(tmp_path):
    env = notify_env("http://127.0.0.1:1/ok,gopher://x")
    server = Server(tmp_path / "data", tmp_path / "g.log", env=env)
    server.spawn()
    assert server.wait() != 0
    assert "GENERATE_SHARE_NOTIFY_URL must be" in server.output()


def test_the_signature_is_githubs_scheme():
    body = b'{"event":"init"}'
    assert sign(b"It's a Secret to Everybody", body) == (
        "sha256=" + hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
    )
