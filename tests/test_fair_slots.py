"""Attacks that once took the service from everyone else, against the real gunicorn of ``make run``.

Each test runs one attack from 127.0.0.1 (or a few loopback addresses) and
meanwhile probes ``GET /v1/sys/health`` on a new connection, from another
loopback address unless said otherwise: every probe must be answered whole
before its socket's timeout (PATIENCE). That tells an answer from a hang, not
a fast answer from a slow one: each attack, had it worked, would hold the
probe for at least the request deadline (10 s), or refuse it. The slowest
probe is printed, for a reader (speed is measured by make bench).
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests
from test_deploy import TLSServer, make_cert

from app import slots
from helpers import read_http_reply
from server import ROOT, Server

# Open mode: attacks on the worker, the same in both modes, with open ceremonies beside them.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"
UNINITIALIZED = 501
#: What a probe waits before it counts as unanswered: half the request deadline an attack would hold it.
PATIENCE = 5.0
HEALTH = b"GET /v1/sys/health HTTP/1.1\r\nHost: test\r\n\r\n"


def connect(server: Server, source: str = "127.0.0.1", *, rcvbuf: int = 0, timeout: float = PATIENCE):
    """Open a connection to ``server`` from the loopback address ``source`` (over TLS if it serves TLS)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", server.port))
    if isinstance(server, TLSServer):
        context = ssl.create_default_context(cafile=str(server.cert))
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def probe(server: Server, source: str = "127.0.0.2") -> tuple[int, float]:
    """GET health on a new connection from ``source``; return the status and the seconds it took."""
    start = time.monotonic()
    try:
        with connect(server, source) as sock:
            sock.sendall(HEALTH)
            status, _, _ = read_http_reply(sock)
    except (OSError, AssertionError):
        return 0, time.monotonic() - start  # refused, reset or timed out: unanswered
    return status, time.monotonic() - start


def probes(server: Server, seconds: float, source: str = "127.0.0.2", status: int = UNINITIALIZED) -> float:
    """Probe every half second for ``seconds``; assert each is answered; return the slowest's seconds."""
    slowest, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        got, took = probe(server, source)
        assert got == status, f"a probe got {got or 'no answer'} after {took:.1f} s"
        slowest = max(slowest, took)
        time.sleep(0.5)  # the probes' pace, not a synchronisation
    return slowest


@pytest.fixture
def server(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s


@pytest.fixture(params=["http", "https"])
def either(request, tmp_path):
    """The server in plain HTTP, then in native TLS."""
    if request.param == "http":
        with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
            yield s
    else:
        cert, key = make_cert(tmp_path)
        with TLSServer(tmp_path / "data", tmp_path / "gunicorn.log", cert, key) as s:
            yield s


# -- framing tricks, trickled ------------------------------------------------------------

PUT = b"PUT /v1/sys/init HTTP/1.1\r\nHost: test\r\n"
TRICKS = {
    # A Content-Length in 22 digits: once handed to a thread at once, which then waited for the body.
    "leading zeros": (PUT + b"Content-Length: " + b"0" * 19 + b"100\r\n\r\n", b"x" * 100),
    # A chunk size in 17 hex digits: the same.
    "long chunk size": (PUT + b"Transfer-Encoding: chunked\r\n\r\n" + b"0" * 14 + b"100\r\n", b"x" * 256),
    # One-byte chunks, once handed off past the framing margin.
    "one-byte chunks": (PUT + b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\nx\r\n" * 1000),
    # A bare LF: gunicorn refuses it, the old framing waited.
    "bare LF": (b"GET /v1/sys/health HTTP/1.1\nHost: test\n", b"X-A: b\n" * 100),
}
TRICKLE_SECONDS = 3.0
ATTACK_SECONDS = 20.0


def trickle(server: Server, opening: bytes, rest: bytes, stop: threading.Event, opened: list) -> None:
    """Send ``opening``, then a byte of ``rest`` every few seconds; begin again after the server closes."""
    while not stop.is_set():
        try:
            sock = connect(server)
        except OSError:
            continue
        opened.append(1)
        with contextlib.closing(sock):
            try:
                sock.sendall(opening)
                for i in range(len(rest)):
                    if stop.is_set() or select.select([sock], [], [], TRICKLE_SECONDS)[0]:
                        break  # answered (a 400 or a 408) or closed: start again
                    sock.sendall(rest[i : i + 1])
            except OSError:
                pass
        stop.wait(TRICKLE_SECONDS)  # the attacker's pace: a byte, or a new connection, every few seconds


@pytest.mark.soak
def test_framing_tricks_trickled_for_20_s_hold_no_thread(either):
    stop, opened = threading.Event(), []
    attackers = [
        threading.Thread(target=trickle, args=(either, opening, rest, stop, opened), daemon=True)
        for opening, rest in TRICKS.values()
        for _ in range(8)
    ]
    for t in attackers:
        t.start()
    try:
        time.sleep(1)  # let every attacker connect and send its opening before probing
        slowest = probes(either, ATTACK_SECONDS)
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=10)
    assert len(opened) >= len(attackers)
    print(f"slowest probe behind {len(attackers)} tricklers ({either.url[:5]}): {slowest:.2f} s")


# -- slots --------------------------------------------------------------------------------


def _complete_and_begin_again(held: list) -> int:
    """Complete each held connection's GET, read the reply, begin the next; return how many were refused."""
    for sock in held:
        with contextlib.suppress(OSError):
            sock.sendall(HEALTH[1:] + b"G")
    refused = 0
    for i, sock in enumerate(held):
        try:
            status, _, _ = read_http_reply(sock)
        except (OSError, AssertionError):
            status = 0  # the 503 and the close, or a reset that cut the 503 short
        if status != UNINITIALIZED:
            refused += 1
            sock.close()
            held[i] = connect(HELD_SERVER[0], timeout=2)
            with contextlib.suppress(OSError):
                held[i].sendall(b"G")
    return refused


HELD_SERVER: list = []


def test_one_address_holding_1100_kept_alive_connections_leaves_room_for_another(server):
    HELD_SERVER[:] = [server]
    held: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = connect(server, timeout=2)
            sock.sendall(b"G")
            held.append(sock)
        for _ in range(2):
            # Every held connection completes a tiny GET and begins the next, as a client
            # that never misses a deadline would; the refused ones are opened again.
            refused = _complete_and_begin_again(held)
            assert refused >= 1100 - 256  # the cap, not luck, makes the room
            probes(server, 1.0)
    finally:
        for sock in held:
            sock.close()


def test_32_slow_readers_hold_no_thread(server):
    readers = []
    try:
        for _ in range(32):
            sock = connect(server, rcvbuf=1024)
            sock.sendall(b"GET /v1/sys/openapi.json HTTP/1.1\r\nHost: test\r\n\r\n" * 20)
            readers.append(sock)
        slowest = probes(server, 4.5)
    finally:
        for sock in readers:
            sock.close()
    print(f"slowest probe behind 32 slow readers: {slowest:.2f} s")


# -- descriptors --------------------------------------------------------------------------


def test_a_512_descriptor_limit_and_600_connections_keep_the_worker_and_its_attempt(tmp_path):
    limited = Server(tmp_path / "data", tmp_path / "gunicorn.log", prefix=["prlimit", "--nofile=512:512"])
    with limited as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3})
        assert init.status_code == 200, init.text
        nonce = server.put(f"{V1}/generate-share/attempt").json()["nonce"]
        update = {"key": init.json()["keys"][0], "nonce": nonce}
        assert server.put(f"{V1}/generate-share/update", json=update).json()["progress"] == 1
        flood = []
        try:
            for i in range(600):
                # 200 from each of three addresses: under the per-address cap, over the descriptors.
                sock = connect(server, f"127.0.0.{2 + i % 3}", timeout=2)
                with contextlib.suppress(OSError):
                    sock.sendall(b"G")
                flood.append(sock)
            time.sleep(2)  # the flood held for a while, as an attacker would
            assert server.proc.poll() is None
        finally:
            for sock in flood:
                sock.close()
        attempt = requests.get(server.url + f"{V1}/generate-share/attempt", timeout=30).json()
        log = server.output()
    assert attempt["started"] is True and attempt["progress"] == 1 and attempt["nonce"] == nonce
    assert log.count("Booting worker") == 1, log[-2000:]
    assert "Errno 24" not in log
    assert re.search(r"at most 384 connections \(descriptor limit 512, 256 per address\)", log), log[-2000:]


def test_the_systemd_unit_leaves_descriptors_for_every_connection():
    unit = (ROOT / "deploy" / "generate-share.service").read_text()
    limit = int(re.search(r"(?m)^LimitNOFILE=(\d+)$", unit)[1])
    conf = (ROOT / "gunicorn.conf.py").read_text()
    connections = int(re.search(r"(?m)^worker_connections = (\d+)$", conf)[1])
    needed = connections + slots.DESCRIPTORS_RESERVED + slots.DESCRIPTORS_PER_THREAD * 1024  # threads at most
    assert limit >= needed


def test_out_of_descriptors_in_accept_pauses_accepting_and_goes_on(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3})
        nonce = server.put(f"{V1}/generate-share/attempt").json()["nonce"]
        assert init.status_code == 200
        worker = re.findall(r"Booting worker with pid: (\d+)", server.output())[-1]
        # Sized at start for 1,000 connections; now the worker may hold 200 descriptors in all.
        subprocess.run(["prlimit", f"--pid={worker}", "--nofile=200:200"], check=True)
        flood = []
        try:
            for i in range(300):
                flood.append(connect(server, f"127.0.0.{2 + i % 3}", timeout=2))
            deadline = time.monotonic() + 30
            while "out of descriptors (EMFILE)" not in server.output():
                assert time.monotonic() < deadline, server.output()[-2000:]
                time.sleep(0.1)  # polling the log, bounded by the deadline
        finally:
            for sock in flood:
                sock.close()
        attempt = requests.get(server.url + f"{V1}/generate-share/attempt", timeout=30).json()
        log = server.output()
    assert attempt["started"] is True and attempt["nonce"] == nonce
    assert log.count("Booting worker") == 1 and "Errno 24" not in log
