"""The replies the worker writes itself (app/answering.py): one access line each, and one count each.

A 408, a framing refusal, a 503 past an address's cap and gunicorn's own
refusal never reach the app's access hook; against the real gunicorn of
``make run``, each still writes exactly one line in the app's shape and
counts once in ``generate_share_requests_total``, and the line holds
nothing of the request but a capped method and path.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from app.answering import MAX_LOGGED_PATH, named
from helpers import read_http_reply as reply
from server import Server

V1 = "/v1/sys"
PATIENCE = 20
#: Bytes that a request carries and that must never reach a log line.
SECRETS = ("querysecret0123", "headersecret4567", "bodysecret89ab")
#: A request's query, headers and body, each holding one of the secrets.
QUERY = f"?token={SECRETS[0]}"
HEADERS = f"Host: test\r\nX-Vault-Token: {SECRETS[1]}\r\n"
BODY = f'{{"key": "{SECRETS[2]}"}}'


def connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    """Open a connection to ``server`` from the loopback address ``source``."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(PATIENCE)
    sock.connect(("127.0.0.1", server.port))
    return sock


def answered(server: Server, data: bytes) -> tuple[int, dict]:
    """Send ``data`` on a new connection and return the reply's status and headers."""
    with connect(server) as sock:
        sock.sendall(data)
        status, headers, _ = reply(sock)
    return status, headers


def request_counts(server: Server, source: str = "127.0.0.2") -> dict[str, int]:
    """Scrape /v1/sys/metrics (from ``source``) and return generate_share_requests_total by class."""
    with connect(server, source) as sock:
        sock.sendall(f"GET {V1}/metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        status, _, body = reply(sock)
    assert status == 200, body
    counters = json.loads(body)["Counters"]
    return {
        c["Labels"]["class"]: c["Count"] for c in counters if c["Name"] == "generate_share_requests_total"
    }


def access_lines(server: Server) -> list[dict]:
    """Return every access line the server wrote so far."""
    return [json.loads(line) for line in server.output().splitlines() if '"app.access"' in line]


def worker_lines(server: Server) -> list[dict]:
    """Return the access lines of the replies the worker wrote itself."""
    return [line for line in access_lines(server) if line.get("source") == "worker"]


def assert_nothing_of_the_request_logged(server: Server) -> None:
    """No query, header or body byte reached the server's output."""
    output = server.output()
    for secret in SECRETS:
        assert secret not in output


def _shape(line: dict) -> dict:
    """Return ``line`` with the fields that vary from run to run set to None."""
    return line | {"time": None, "duration_ms": None, "request_id": None}


@pytest.fixture
def quick_server(tmp_path):
    """The service with a 1 s request deadline and two connections per address."""
    env = {"GENERATE_SHARE_REQUEST_DEADLINE": "1", "GENERATE_SHARE_CONNECTIONS_PER_ADDRESS": "2"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s


def test_a_request_not_whole_in_time_writes_one_408_line_and_counts_once(quick_server):
    before = request_counts(quick_server)
    unfinished = f"PUT {V1}/init{QUERY} HTTP/1.1\r\n{HEADERS}Content-Length: 400\r\n\r\n{BODY}"
    status, headers = answered(quick_server, unfinished.encode())
    assert status == 408
    after = request_counts(quick_server)
    assert after["4xx"] - before["4xx"] == 1
    assert after["2xx"] - before["2xx"] == 1  # the first scrape, counted by the app
    (line,) = worker_lines(quick_server)
    assert _shape(line) == {
        "time": None,
        "level": "INFO",
        "logger": "app.access",
        "message": "request",
        "method": "PUT",
        "path": f"{V1}/init",
        "status": 408,
        "duration_ms": None,
        "request_id": None,
        "client": "127.0.0.1",
        "source": "worker",
        "reason": "deadline",
    }
    assert line["request_id"] == headers["x-request-id"]
    assert_nothing_of_the_request_logged(quick_server)


def test_a_request_line_that_never_ended_is_logged_without_method_or_path(quick_server):
    status, _ = answered(quick_server, f"GET {V1}/health{QUERY}".encode())
    assert status == 408
    (line,) = worker_lines(quick_server)
    assert (line["method"], line["path"], line["status"], line["reason"]) == ("-", "-", 408, "deadline")
    assert_nothing_of_the_request_logged(quick_server)


@pytest.mark.parametrize(
    ("data", "status", "method", "path"),
    [
        # A space before a header's colon: the head is malformed (400).
        (f"GET {V1}/health{QUERY} HTTP/1.1\r\n{HEADERS}Bad Name: x\r\n\r\n", 400, "GET", f"{V1}/health"),
        # A request line that is not one: nothing of it is named.
        (f"get {V1}/health{QUERY} HTTP/1.1\r\n{HEADERS}\r\n", 400, "-", "-"),
        # A body declared past the limit (413), refused before it arrives.
        (
            f"PUT {V1}/init HTTP/1.1\r\n{HEADERS}Content-Length: 999999\r\n\r\n{BODY}",
            413,
            "PUT",
            f"{V1}/init",
        ),
        # An unknown transfer coding (501).
        (f"PUT {V1}/init HTTP/1.1\r\n{HEADERS}Transfer-Encoding: br\r\n\r\n{BODY}", 501, "PUT", f"{V1}/init"),
        # A head past 32 KiB (431).
        (f"GET {V1}/health HTTP/1.1\r\n{HEADERS}X-Pad: {'a' * 40000}", 431, "GET", f"{V1}/health"),
    ],
    ids=["malformed header", "malformed request line", "413", "501", "431"],
)
def test_a_framing_refusal_writes_one_line_and_counts_once(quick_server, data, status, method, path):
    before = request_counts(quick_server)
    got, headers = answered(quick_server, data.encode())
    assert got == status
    after = request_counts(quick_server)
    class_ = f"{status // 100}xx"
    assert after[class_] - before[class_] == 1
    (line,) = worker_lines(quick_server)
    assert (line["method"], line["path"], line["status"]) == (method, path, status)
    assert (line["source"], line["reason"], line["client"]) == ("worker", "framing", "127.0.0.1")
    assert line["request_id"] == headers["x-request-id"]
    assert_nothing_of_the_request_logged(quick_server)


def test_a_long_path_is_cut_in_the_line(quick_server):
    long = "/v1/" + "a" * 3000
    status, _ = answered(quick_server, f"GET {long} HTTP/1.1\r\nBad Name: x\r\n\r\n".encode())
    assert status == 400
    (line,) = worker_lines(quick_server)
    assert line["path"].startswith("/v1/aaa") and len(json.dumps(line["path"])) - 2 <= MAX_LOGGED_PATH


def test_an_address_over_its_cap_writes_one_503_line_and_counts_once(quick_server):
    before = request_counts(quick_server, "127.0.0.2")
    # From an address no earlier connection (the start's health probe) may still hold a slot of.
    held = [connect(quick_server, "127.0.0.3") for _ in range(2)]
    try:
        for sock in held:  # each served once and kept alive: both slots are taken
            sock.sendall(f"GET {V1}/metrics HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            assert reply(sock)[0] == 200
        with connect(quick_server, "127.0.0.3") as third:
            third.sendall(f"GET {V1}/health{QUERY} HTTP/1.1\r\n{HEADERS}\r\n".encode())
            status, headers, _ = reply(third)
        assert status == 503
        after = request_counts(quick_server, "127.0.0.2")
    finally:
        for sock in held:
            sock.close()
    assert after["5xx"] - before["5xx"] == 1
    assert after["2xx"] - before["2xx"] == 3  # the first scrape and the two held connections' GETs
    (line,) = worker_lines(quick_server)
    assert (line["method"], line["path"], line["status"]) == ("-", "-", 503)  # refused before a byte is read
    assert (line["source"], line["reason"], line["client"]) == ("worker", "address_cap", "127.0.0.3")
    assert line["request_id"] == headers["x-request-id"]
    assert_nothing_of_the_request_logged(quick_server)


def test_a_request_gunicorn_refuses_after_the_framing_writes_one_line(quick_server):
    # Conflicting scheme headers from a trusted address: the framing lets them
    # through (they need no more bytes), gunicorn's parser refuses them in the thread.
    before = request_counts(quick_server)
    schemes = "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n"
    data = f"GET {V1}/health{QUERY} HTTP/1.1\r\n{HEADERS}{schemes}\r\n"
    status, _ = answered(quick_server, data.encode())
    assert status == 400
    after = request_counts(quick_server)
    assert after["4xx"] - before["4xx"] == 1
    (line,) = worker_lines(quick_server)
    assert (line["method"], line["path"], line["status"]) == ("GET", f"{V1}/health", 400)
    assert (line["source"], line["reason"]) == ("worker", "gunicorn")
    assert_nothing_of_the_request_logged(quick_server)


def test_the_apps_replies_are_not_logged_twice(quick_server):
    with connect(quick_server) as sock:
        sock.sendall(f"GET {V1}/nothing HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        assert reply(sock)[0] == 404
    (line,) = [line for line in access_lines(quick_server) if line["path"] == f"{V1}/nothing"]
    assert "source" not in line and not worker_lines(quick_server)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/sys/health",  # the line never ended
        b"GET /v1/sys/health HTTP/1.1",  # nor here
        b"G\x00T /x HTTP/1.1\r\n",
        b"GET /x\x7f HTTP/1.1\r\n",
        b"GET  /x HTTP/1.1\r\n",
        b"GET /x HTTP/1.1 extra\r\n",
        b"GET /x HTTP/1.1\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n",  # past the request line's bound
        b"",
    ],
)
def test_only_a_whole_well_formed_request_line_is_named(head):
    assert named(head, 4094) == ("-", "-")


def test_the_query_is_never_named():
    assert named(b"\r\nGET /v1/sys/health?token=x HTTP/1.1\r\nX: y\r\n", 4094) == ("GET", "/v1/sys/health")
    assert re.fullmatch(r"[^?]*", named(b"OPTIONS * HTTP/1.1\r\n", 4094)[1])
