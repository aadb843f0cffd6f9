"""Someone who only reaches the port cannot spoil, steer or flood a ceremony (issue 22, items 1 to 5).

Against the real gunicorn (tests/server.py) in token mode. Strangers are
told apart by their source address: all of 127/8 is loopback on Linux, and
http.client binds one per client.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import secrets
import threading
import time
from pathlib import Path

import pytest
from receiver import Receiver

from app import audit, shamir
from server import Server, free_port

V1 = "/v1/sys"
ATTEMPT = f"{V1}/generate-share/attempt"
UPDATE = f"{V1}/generate-share/update"
ADOPT = f"{V1}/adopt/attempt"
ADOPT_UPDATE = f"{V1}/adopt/update"
VERIFY = f"{V1}/shares/verify"
TOKEN_MODE = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}


OPEN: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients():
    """Close every client a test opened."""
    yield
    while OPEN:
        OPEN.pop().close()


class Client:
    """A keep-alive HTTP client bound to one loopback source address."""

    def __init__(self, server: Server, source: str = "127.0.0.1"):
        OPEN.append(self)
        self._conn = http.client.HTTPConnection(
            "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
        )

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        """Send one request; return (status, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token is not None:
            headers["X-Vault-Token"] = token
        self._conn.request(method, path, body=data, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self._conn.close()


def trail(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / audit.AUDIT_FILE).read_bytes().splitlines()]


def garbage_at(x: int, length: int = 33) -> str:
    return (secrets.token_bytes(length - 1) + bytes([x])).hex()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(p ^ q for p, q in zip(a, b, strict=True))


@pytest.fixture
def served(tmp_path):
    data = tmp_path / "data"
    with Server(data, tmp_path / "g.log", env=TOKEN_MODE) as server:
        yield server, data


# -- 1 and 2: the nonce is a secret; a share is checked before it counts ------------------------------


def test_a_strangers_garbage_at_recorded_x_never_counts_and_the_real_ceremony_completes(served):
    server, data = served
    lead, stranger = Client(server), Client(server, "127.0.0.9")
    status, init = lead.call("PUT", f"{V1}/init", {"secret_shares": 5, "secret_threshold": 3})
    assert status == 200, init
    token, keys = init["root_token"], init["keys"]
    status, started = lead.call("PUT", ATTEMPT, {}, token=token)
    assert status == 200, started
    nonce = started["nonce"]
    # What a stranger reads: every x, but no nonce.
    _, shown = stranger.call("GET", ATTEMPT)
    assert shown["started"] is True and shown["nonce"] == ""
    assert lead.call("GET", ATTEMPT, token=token)[1]["nonce"] == nonce  # the lead sees it
    assert stranger.call("GET", ATTEMPT, token="gs." + "A" * 43)[0] == 403  # a wrong token gets nothing
    _, registry = stranger.call("GET", f"{V1}/shares")
    xs = [r["index"] for r in registry["shares"]]
    assert len(xs) == 5
    guessed = "00000000-0000-4000-8000-000000000000"
    for x in xs:
        for sent in (None, guessed, nonce):  # without the nonce, with a guess, and with the real one
            status, body = stranger.call("PUT", UPDATE, {"key": garbage_at(x), "nonce": sent})
            assert status == 400, body
            assert nonce not in json.dumps(body)
            if sent == nonce:
                assert body["errors"] == [
                    f"this share is not the one the service recorded at x = {x}; it was not counted and "
                    "no holder's share was spent: check that you copied your whole share (PUT "
                    "/v1/sys/shares/verify checks it alone) and send it again"
                ]
    assert lead.call("GET", ATTEMPT, token=token)[1]["progress"] == 0
    # The real holders complete it: nothing of theirs was spent.
    for i, key in enumerate(keys[:3]):
        status, reply = Client(server, f"127.0.0.{20 + i}").call("PUT", UPDATE, {"key": key, "nonce": nonce})
        assert status == 200, reply
        assert "warnings" not in reply  # every x was recorded: every share was checked
    assert reply["complete"] is True
    new_share = xor(bytes.fromhex(reply["key"]), base64.b64decode(started["otp"]))
    assert stranger.call("PUT", VERIFY, {"key": new_share.hex()})[1]["valid"] is True
    lines = trail(data)
    issued = [e for e in lines if e["event"] == "share_issued"]
    assert len(issued) == 1 and issued[0]["unchecked"] == []
    accepted = [e for e in lines if e["event"] == "share_accepted"]
    assert [e["checked"] for e in accepted] == [True, True]
    # In token mode the nonce is a secret: no trail line (and so no webhook) carries it.
    assert nonce.encode() not in (data / audit.AUDIT_FILE).read_bytes()
    assert all("nonce" not in e for e in lines) and issued[0]["ceremony"] == accepted[0]["ceremony"]


def test_a_share_at_an_x_never_recorded_is_taken_and_the_reply_and_the_trail_say_so(tmp_path):
    data = tmp_path / "data"
    secret = secrets.token_bytes(32)
    real = shamir.split(secret, 4, 2)
    with Server(data, tmp_path / "g.log", env=TOKEN_MODE) as server:
        lead = Client(server)
        # An adoption that knows of an x it never sees: that x has no custody digest.
        status, started = lead.call(
            "PUT", ADOPT, {"secret_threshold": 2, "required": 3, "known_indices": [real[3][-1]]}
        )
        assert status == 200, started
        for share in real[:3]:
            status, reply = lead.call("PUT", ADOPT_UPDATE, {"key": share.hex(), "nonce": started["nonce"]})
            assert status == 200, reply
        assert reply["complete"] is True
        token = started["root_token"]
        status, attempt = lead.call("PUT", ATTEMPT, {}, token=token)
        assert status == 200, attempt
        unrecorded = real[3][-1]
        status, reply = lead.call("PUT", UPDATE, {"key": real[3].hex(), "nonce": attempt["nonce"]})
        assert status == 200, reply
        assert reply["progress"] == 1
        assert reply["warnings"] == [
            f"taken unchecked at x = {unrecorded}: the service holds no custody digest there (no share was "
            "recorded at that x, or an adopted share never reached it), so a wrong share there is "
            "found only when the quorum completes"
        ]
        status, reply = lead.call("PUT", UPDATE, {"key": real[0].hex(), "nonce": attempt["nonce"]})
        assert status == 200 and reply["complete"] is True, reply
        assert "warnings" in reply
    lines = trail(data)
    accepted = [e for e in lines if e["event"] == "share_accepted" and "checked" in e]
    assert accepted[-1]["checked"] is False and accepted[-1]["index"] == unrecorded
    assert [e for e in lines if e["event"] == "share_issued"][0]["unchecked"] == [unrecorded]


# -- 3: an adoption cannot be spoiled or hijacked ----------------------------------------------------


def test_a_stranger_cannot_complete_or_poison_an_adoption(served):
    server, data = served
    lead, stranger = Client(server), Client(server, "127.0.0.9")
    status, started = lead.call("PUT", ADOPT, {"secret_threshold": 2, "required": 3})
    assert status == 200, started
    nonce = started["nonce"]
    _, shown = stranger.call("GET", ADOPT)
    assert shown["started"] is True and shown["nonce"] == ""
    guessed = "00000000-0000-4000-8000-000000000000"
    # Poison: a 2-byte first share would fix the length; a hijack: consistent shares of their own key.
    own = shamir.split(secrets.token_bytes(16), 3, 2)
    for sent in (None, guessed):
        assert stranger.call("PUT", ADOPT_UPDATE, {"key": "0101", "nonce": sent})[0] == 400
        for share in own:
            status, body = stranger.call("PUT", ADOPT_UPDATE, {"key": share.hex(), "nonce": sent})
            assert status == 400 and body["errors"][0].startswith("nonce "), body
    assert lead.call("GET", ADOPT, token=started["root_token"])[1]["progress"] == 0
    real = shamir.split(secrets.token_bytes(32), 5, 2)
    for share in real[:3]:
        status, reply = lead.call("PUT", ADOPT_UPDATE, {"key": share.hex(), "nonce": nonce})
        assert status == 200, reply
    assert reply["complete"] is True and reply["indices"] == sorted(s[-1] for s in real[:3])
    # The service holds the holders' key: their shares pass the custody check, the stranger's do not.
    assert stranger.call("PUT", VERIFY, {"key": real[0].hex()})[1]["valid"] is True
    assert nonce.encode() not in (data / audit.AUDIT_FILE).read_bytes()


# -- 4: what strangers make the service write is coalesced ------------------------------------------


def test_ten_seconds_of_failed_custody_checks_from_80_addresses_grow_the_trail_little(tmp_path):
    data = tmp_path / "data"
    # The production limit of writes per client, as a real deployment has it.
    env = {**TOKEN_MODE, "GENERATE_SHARE_RATE_LIMIT": None}
    with Server(data, tmp_path / "g.log", env=env) as server:
        status, init = Client(server).call("PUT", f"{V1}/init", {"secret_shares": 5, "secret_threshold": 3})
        assert status == 200, init
        xs = [bytes.fromhex(k)[-1] for k in init["keys"]]
        before = (data / audit.AUDIT_FILE).stat().st_size
        seen_before = len(trail(data))
        stop = threading.Event()
        failed = [0] * 80
        sent = [0] * 80

        def flood(n: int) -> None:
            client = Client(server, f"127.0.0.{n + 2}")
            while not stop.is_set():
                status, body = client.call("PUT", VERIFY, {"key": garbage_at(xs[n % 5])})
                sent[n] += 1
                failed[n] += status == 200 and body["valid"] is False
            client.close()

        workers = [threading.Thread(target=flood, args=(n,)) for n in range(80)]
        for t in workers:
            t.start()
        time.sleep(10)  # the load lasts 10 s: a duration, not a synchronisation
        stop.set()
        for t in workers:
            t.join(60)
    grown = (data / audit.AUDIT_FILE).stat().st_size - before
    lines = trail(data)[seen_before:]
    checks = [e for e in lines if e["event"] == "share_verify_failed"]
    assert sum(sent) >= 500, "the flood was too small to show anything"
    assert grown < 300 * 1024, f"{grown} bytes for {sum(sent)} requests"
    # Every failed check is counted, and stands in a line of a few a second per client at most.
    assert sum(e.get("count", 1) for e in checks) == sum(failed)
    assert len(checks) < sum(failed) / 2 and len(checks) <= 20 * 12
    assert {e["client"] for e in checks} <= {f"127.0.0.{n + 2}" for n in range(80)} | {"*"}


# -- 5: webhooks ---------------------------------------------------------------------------------------


def test_a_start_is_delivered_within_seconds_behind_a_backlog_of_strangers_events(tmp_path):
    data = tmp_path / "data"
    receiver = Receiver().start()
    receiver.delay = 0.2  # each event takes a fifth of a second, like a receiver far away
    env = {
        **TOKEN_MODE,
        "GENERATE_SHARE_NOTIFY_URL": receiver.url,
        "GENERATE_SHARE_NOTIFY_SECRET": "s" * 32,
    }
    try:
        with Server(data, tmp_path / "g.log", env=env) as server:
            lead = Client(server)
            status, init = lead.call("PUT", f"{V1}/init", {"secret_shares": 5, "secret_threshold": 3})
            assert status == 200, init
            stop = threading.Event()

            def flood(n: int) -> None:
                client = Client(server, f"127.0.0.{n + 2}")
                while not stop.is_set():
                    try:
                        client.call("PUT", UPDATE, {"key": f"not a share {n} {time.monotonic()}"})
                    except (OSError, http.client.HTTPException):
                        client = Client(server, f"127.0.0.{n + 2}")  # the server closed it: a new one

            workers = [threading.Thread(target=flood, args=(n,)) for n in range(80)]
            for t in workers:
                t.start()
            receiver.wait(lambda r: len(trail(data)) - len(r.got) > 40, "a backlog of 40 lines")
            stop.set()
            for t in workers:
                t.join(60)
            waiting = len(trail(data)) - len(receiver.got)
            # A new connection: the server closes one idle for the length of the flood.
            status, started = Client(server).call("PUT", ATTEMPT, {}, token=init["root_token"])
            assert status == 200, started
            seq = trail(data)[-1]["seq"]
            asked = time.monotonic()
            receiver.wait(lambda r: r.has_seq(seq), "the start event", timeout=10)
            took = time.monotonic() - asked
            # It overtook the backlog: lines before it had not arrived yet.
            assert not all(receiver.has_seq(s) for s in range(1, seq)), (waiting, took)
            assert [d["event"] for _, _, d in receiver.got if d["seq"] == seq] == ["attempt_started"]
    finally:
        receiver.stop()


class HugeReply(http.server.BaseHTTPRequestHandler):
    """Answers every POST 200 with a 400 MB body, made as it is sent (never held)."""

    protocol_version = "HTTP/1.1"
    size = 400 * 1024 * 1024
    posts = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with HugeReply.lock:
            HugeReply.posts += 1
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        block = bytes(1024 * 1024)
        try:
            for _ in range(self.size // len(block)):
                self.wfile.write(block)
        except OSError:
            pass  # the service stopped reading: what it should do
        self.close_connection = True

    def log_message(self, *args):
        pass


def worker_rss(server: Server) -> int:
    """Return the gunicorn worker's resident memory in bytes."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    (worker,) = children
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_400_mb_webhook_reply_leaves_the_workers_memory_where_it_was(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    huge = http.server.ThreadingHTTPServer(("127.0.0.1", port), HugeReply)
    huge.daemon_threads = True
    threading.Thread(target=huge.serve_forever, daemon=True).start()
    env = {
        **TOKEN_MODE,
        "GENERATE_SHARE_NOTIFY_URL": f"http://127.0.0.1:{port}/hook",
        "GENERATE_SHARE_NOTIFY_SECRET": "s" * 32,
    }
    try:
        with Server(data, tmp_path / "g.log", env=env) as server:
            lead = Client(server)
            assert lead.call("GET", f"{V1}/health?uninitcode=200")[0] == 200
            baseline = worker_rss(server)
            status, _ = lead.call("PUT", f"{V1}/init", {"secret_shares": 5, "secret_threshold": 3})
            assert status == 200
            for n in range(3):
                lead.call("PUT", UPDATE, {"key": f"refused {n}"})
            deadline = time.monotonic() + 60
            while HugeReply.posts < 3 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the receiver's count, bounded by the deadline
                assert worker_rss(server) < baseline + 100 * 1024 * 1024
            assert HugeReply.posts >= 3, "the receiver was not asked three times"
            assert worker_rss(server) < baseline + 100 * 1024 * 1024
            # Each reply was a 2xx: delivery went on, one event after another.
            assert lead.call("GET", f"{V1}/health?uninitcode=200")[0] == 200
    finally:
        huge.shutdown()
        huge.server_close()
