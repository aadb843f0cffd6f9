"""Slow, idle and unfinished clients against the real gunicorn of ``make run``: nobody else waits."""

import json
import socket
import time
from contextlib import ExitStack

import pytest
import requests

from server import Server

V1 = "/v1/sys"
UNINITIALIZED = 501  # what health answers before init, as Vault's does
#: What a client waits for an answer before the test calls the service frozen.
PATIENCE = 20
#: Half the request deadline (10 s): an attack that held a thread or a slot would
#: hold the next request at least that long, so an answer sooner tells an answer
#: from a wait behind the attack. Not a speed check (that is make bench).
HELD = 5.0


@pytest.fixture
def server(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s


@pytest.fixture
def quick_server(tmp_path):
    """The service with a 1 s request deadline, so a test sees it pass without waiting 10 s."""
    env = {"GENERATE_SHARE_REQUEST_DEADLINE": "1"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s


class Conn:
    """A raw client socket that reads whole HTTP/1.1 replies, one after another."""

    def __init__(self, server: Server, timeout: float = PATIENCE):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def reply(self) -> tuple[int, dict, bytes]:
        """Read one reply: its status, its headers (lower-case names) and its body."""
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"the server closed the connection; read so far: {self.buf[:200]!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._fill(), "the server closed the connection inside a body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self) -> bool:
        """Whether the server closes the connection (before the socket's timeout) with nothing more."""
        try:
            return not self._fill()
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def _request(method: str, path: str, body: bytes = b"", **headers) -> bytes:
    """Build the bytes of one HTTP/1.1 request with a Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _timed(call):
    """Run ``call`` and return its result and the seconds it took; a client timeout counts as frozen."""
    start = time.monotonic()
    try:
        result = call()
    except requests.RequestException as e:
        pytest.fail(f"no answer within {PATIENCE} s: the service is frozen ({type(e).__name__})")
    return result, time.monotonic() - start


def _ceremony(server: Server) -> None:
    """Init with 5 shares (threshold 3), start an attempt with the root token and submit 3 shares."""
    init = requests.put(
        server.url + f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}, timeout=PATIENCE
    )
    assert init.status_code == 200, init.text
    lead = {"X-Vault-Token": init.json()["root_token"]}
    start = requests.put(server.url + f"{V1}/generate-share/attempt", headers=lead, timeout=PATIENCE)
    assert start.status_code == 200, start.text
    nonce = start.json()["nonce"]
    for key in init.json()["keys"][:3]:
        r = requests.put(
            server.url + f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}, timeout=PATIENCE
        )
        assert r.status_code == 200, r.text
    assert r.json()["complete"] is True


def test_one_byte_and_idle_sockets_do_not_hold_the_service(server):
    with ExitStack() as held:
        for _ in range(64):
            trickler = held.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            trickler.sendall(b"G")
        for _ in range(64):
            held.enter_context(socket.create_connection(("127.0.0.1", server.port)))
        health, seconds = _timed(lambda: requests.get(server.url + f"{V1}/health", timeout=PATIENCE))
        assert health.status_code == UNINITIALIZED
        assert seconds < HELD, f"a GET took {seconds:.1f} s behind 128 slow sockets"
        _, seconds = _timed(lambda: _ceremony(server))
        assert seconds < 2 * HELD, f"a ceremony took {seconds:.1f} s behind 128 slow sockets"


def test_clients_that_never_close_after_the_reply_do_not_hold_the_service(server):
    with ExitStack() as held:
        for _ in range(16):
            # A whole request that asks to close, then neither reading nor closing.
            c = Conn(server)
            held.callback(c.close)
            c.send(_request("GET", f"{V1}/health", Connection="close"))
        health, seconds = _timed(lambda: requests.get(server.url + f"{V1}/health", timeout=PATIENCE))
        assert health.status_code == UNINITIALIZED
        assert seconds < HELD, f"a GET took {seconds:.1f} s behind 16 clients that do not close"


def test_bodies_that_trickle_in_are_served_once_whole_and_hold_nobody_meanwhile(server):
    body = json.dumps({"secret_shares": 5, "secret_threshold": 3}).encode()
    waiting = [Conn(server) for _ in range(16)]
    try:
        for c in waiting:
            c.send(_request("PUT", f"{V1}/init", body)[: -len(body)])  # the head, not the body
        health, seconds = _timed(lambda: requests.get(server.url + f"{V1}/health", timeout=PATIENCE))
        assert health.status_code == UNINITIALIZED and health.json()["initialized"] is False
        assert seconds < HELD, f"a GET took {seconds:.1f} s behind 16 unfinished bodies"
        for c in waiting:
            c.send(body[:7])
            c.send(body[7:])
        statuses = sorted(c.reply()[0] for c in waiting)
    finally:
        for c in waiting:
            c.close()
    # The first whole body initializes; every later one is refused as a repeat.
    assert statuses == [200] + [400] * 15
    assert server.get(f"{V1}/health").json()["initialized"] is True


def test_a_chunked_body_sent_in_pieces_is_served(server):
    c = Conn(server)
    try:
        c.send(b"PUT /v1/sys/init HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send(b"13\r\n" + b'{"secret_shares": 5' + b"\r\n")
        c.send(b"18\r\n" + b', "secret_threshold": 3}' + b"\r\n")
        c.send(b"0\r\n\r\n")
        status, _, reply = c.reply()
    finally:
        c.close()
    assert status == 200, reply
    assert len(json.loads(reply)["keys"]) == 5


def test_chunked_from_requests_and_keep_alive_on_a_session(server):
    with requests.Session() as session:
        first = session.get(server.url + f"{V1}/health", timeout=PATIENCE)
        chunks = iter([b'{"secret_shares": 4,', b' "secret_threshold": 2}'])
        second = session.put(server.url + f"{V1}/init", data=chunks, timeout=PATIENCE)
        third = session.get(server.url + f"{V1}/health", timeout=PATIENCE)
    assert first.status_code == UNINITIALIZED and first.json()["initialized"] is False
    assert second.status_code == 200, second.text
    assert third.json()["initialized"] is True
    assert first.headers["Connection"] == "keep-alive"


def test_kept_alive_and_pipelined_requests_share_one_connection(server):
    c = Conn(server)
    try:
        c.send(_request("GET", f"{V1}/health"))
        assert c.reply()[0] == UNINITIALIZED
        c.send(_request("GET", f"{V1}/health"))
        assert c.reply()[0] == UNINITIALIZED
        c.send(_request("GET", f"{V1}/health") + _request("GET", f"{V1}/nothing"))
        assert c.reply()[0] == UNINITIALIZED
        assert c.reply()[0] == 404
    finally:
        c.close()


def test_100_continue_is_answered_before_the_body_and_once(server):
    body = json.dumps({"secret_shares": 5, "secret_threshold": 3}).encode()
    c = Conn(server, timeout=5)
    try:
        c.send(_request("PUT", f"{V1}/init", body, Expect="100-continue")[: -len(body)])
        assert c.reply()[0] == 100
        c.send(body)
        status, _, reply = c.reply()
        assert status == 200, reply
        c.send(_request("GET", f"{V1}/health"))
        assert c.reply()[0] == 200  # not a second 100
    finally:
        c.close()


def test_a_request_that_never_completes_is_answered_408_and_closed_without_holding_others(quick_server):
    unfinished, idle = Conn(quick_server, timeout=PATIENCE), Conn(quick_server, timeout=PATIENCE)
    try:
        unfinished.send(b"GET /v1/sys/health HTTP/1.1\r\nHost: te")
        health, seconds = _timed(lambda: quick_server.get(f"{V1}/health"))
        assert health.status_code == UNINITIALIZED and seconds < 2
        start = time.monotonic()
        status, headers, body = unfinished.reply()
        assert status == 408
        assert headers["connection"] == "close" and headers["content-type"] == "application/json"
        assert "within 1 seconds" in json.loads(body)["errors"][0]
        assert unfinished.closed()
        assert idle.closed()  # a connection that never sent a byte is closed without a word
        assert time.monotonic() - start < 5
    finally:
        unfinished.close()
        idle.close()


def test_a_kept_alive_connection_gets_the_deadline_for_its_next_request(quick_server):
    c = Conn(quick_server)
    try:
        c.send(_request("GET", f"{V1}/health"))
        assert c.reply()[0] == UNINITIALIZED
        c.send(b"GET /v1/sys/health HTTP/1.1\r\n")
        assert c.reply()[0] == 408
        assert c.closed()
    finally:
        c.close()


def test_a_body_declared_past_the_limit_is_answered_413_without_waiting_for_it(server):
    c = Conn(server, timeout=5)
    try:
        c.send(b"PUT /v1/sys/init HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n{")
        status, headers, body = c.reply()
        assert status == 413, body
        assert "65536 bytes" in json.loads(body)["errors"][0]
        assert headers["connection"] == "close"
        assert c.closed()
    finally:
        c.close()


def test_a_chunked_body_past_the_limit_is_answered_413(server):
    c = Conn(server, timeout=5)
    try:
        c.send(b"PUT /v1/sys/init HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send((b"4000\r\n" + b" " * 0x4000 + b"\r\n") * 6)  # 96 KiB, and no last chunk
        status, _, body = c.reply()
        assert status == 413, body
        assert c.closed()
    finally:
        c.close()
    assert server.get(f"{V1}/health").json()["initialized"] is False


def test_a_head_past_32_kib_is_answered_431(server):
    c = Conn(server, timeout=5)
    try:
        c.send(b"GET /v1/sys/health HTTP/1.1\r\nHost: test\r\n" + b"X-Pad: " + b"a" * 40000)
        status, headers, body = c.reply()
        assert status == 431
        assert "32768 bytes" in json.loads(body)["errors"][0]
        assert c.closed()
    finally:
        c.close()
