"""Hostile HTTP: the headers on every reply, the body limit, and bodies built to be slow to parse."""

import io
import json
import socket

import pytest
import requests
from werkzeug.test import EnvironBuilder

from app import create_app
from helpers import assert_error
from server import Server

V1 = "/v1/sys"
BODIES = {"PUT": b"{}", "POST": b"{}"}


def _check_headers(response) -> None:
    """Check the headers every reply carries, whatever its status."""
    assert response.headers["Cache-Control"] == "no-store", response.status
    assert response.headers["X-Content-Type-Options"] == "nosniff", response.status
    if response.data:
        assert response.headers["Content-Type"] == "application/json", response.status


@pytest.fixture
def limited(tmp_path):
    """An app with a 2 KiB body limit, and its test client."""
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "MAX_CONTENT_LENGTH": 2048})
    yield app.test_client()
    app.extensions["generate_share_store"].close()


@pytest.mark.parametrize("initialized", [False, True], ids=["before-init", "after-init"])
def test_every_route_and_method_carries_the_headers(app, client, initialized):
    if initialized:
        assert client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200
    seen = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("ui."):
            continue  # the page's own headers: tests/test_ui_files.py
        for method in sorted(rule.methods | {"PATCH", "TRACE"}):
            r = client.open(rule.rule, method=method, data=BODIES.get(method, b""))
            _check_headers(r)
            if method in ("PATCH", "TRACE"):
                assert_error(r, 405)
            seen += 1
    assert seen > 40


def test_a_404_carries_the_headers(client):
    for path in ("/", "/v1/sys/nothing", "/v1/sys/init/extra", "/v2/sys/init", "/v1/sys/%ff%00"):
        r = client.get(path)
        assert_error(r, 404, "no such path")
        _check_headers(r)


def test_a_405_names_the_methods_and_carries_the_headers(client):
    r = client.delete(f"{V1}/shares")
    assert_error(r, 405, "use GET")
    _check_headers(r)
    assert "GET" in r.headers["Allow"]


def test_a_413_carries_the_headers_under_the_default_limit(client):
    r = client.put(f"{V1}/init", data=b" " * (64 * 1024 + 1))
    assert_error(r, 413, "65536 bytes")
    _check_headers(r)


def test_a_configured_limit_is_answered_with_413(limited):
    padded = b'{"secret_shares": 2, "secret_threshold": 2}'
    init = limited.put(f"{V1}/init", data=padded + b" " * (2048 - len(padded)))
    assert init.status_code == 200
    lead = {"X-Vault-Token": init.get_json()["root_token"]}  # without it, the start is a 403 first
    for path in ("/generate-share/attempt", "/generate-share/update", "/init"):
        r = limited.put(V1 + path, data=b" " * 2049, headers=lead)
        assert_error(r, 413, "limit of 2048 bytes")
        _check_headers(r)


def _chunked(client, path: str, body: bytes):
    """PUT ``body`` with no Content-Length, as gunicorn passes on a chunked request."""
    environ = EnvironBuilder(path=path, method="PUT", input_stream=io.BytesIO(body)).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return client.open(environ)


def test_a_chunked_body_past_the_limit_is_413_not_a_truncated_parse(limited):
    init = b'{"secret_shares": 2, "secret_threshold": 2}'
    for size in (2049, 2050, 5000):
        # Cut at the limit, this body would parse and initialize the service.
        assert_error(_chunked(limited, f"{V1}/init", init + b" " * (size - len(init))), 413, "2048 bytes")
    assert limited.get(f"{V1}/init").get_json() == {"initialized": False}
    assert _chunked(limited, f"{V1}/init", init + b" " * (2048 - len(init))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60000,
        b'{"a":' * 12000,
        b"[" * 900 + b"]" * 900,  # within the recursion limit: valid JSON, not an object
        b'{"key": ' + b"9" * 60000 + b"}",
        b'{"key": 1e999999}',
        b'{"key": -' + b"0" * 60000 + b".5}",
        b'{"key": "' + b"\\u0000" * 10000 + b'"}',
        b'{"key": "' + b"\\ud800" * 10000 + b'"}',
        b'{"key": ' + b"[1," * 15000 + b"1" + b"]" * 15000 + b"}",
        json.dumps({str(i): i for i in range(4500)}).encode(),
    ],
    ids=[
        "arrays",
        "objects",
        "shallow",
        "digits",
        "huge-exponent",
        "long-fraction",
        "nul",
        "surrogates",
        "list",
        "keys",
    ],
)
def test_bodies_built_to_be_slow_are_a_400_not_a_500(client, shares, body):
    assert len(body) <= 64 * 1024
    client.put(f"{V1}/generate-share/attempt")
    r = client.put(f"{V1}/generate-share/update", data=body, content_type="application/json")
    assert_error(r, 400)
    _check_headers(r)


def test_gunicorn_reads_the_limit_from_the_environment_and_refuses_chunked_bodies(tmp_path):
    env = {"GENERATE_SHARE_MAX_CONTENT_LENGTH": "4096"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as server:

        def chunks(size: int):
            """Yield a JSON object padded with spaces to ``size`` bytes, in pieces."""
            yield b"{}"
            for _ in range(size - 2):
                yield b" "

        url = server.url + f"{V1}/generate-share/attempt"
        for size, status in ((4096, 400), (4097, 413), (50000, 413)):
            r = requests.put(url, data=chunks(size), timeout=30)  # chunked: no Content-Length
            assert r.status_code == status, (size, r.text)
            assert r.headers["Cache-Control"] == "no-store"
            r = requests.put(url, data=b"{}" + b" " * (size - 2), timeout=30)
            assert r.status_code == status, (size, r.text)
    assert "Traceback" not in server.output()


@pytest.mark.parametrize(
    "chunks",
    [
        b"17\r\n" + b'{"key": "abcdefghijklm"}' + b"\r\n0\r\n\r\n",  # a chunk longer than declared
        b"5\r\n{}   XX0\r\n\r\n",  # no CRLF after the chunk's data
        b"zz\r\n{}\r\n0\r\n\r\n",  # a size that is not hex
    ],
    ids=["long-chunk", "no-terminator", "bad-size"],
)
def test_a_malformed_chunked_body_is_a_400_not_a_500(tmp_path, chunks):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                b"PUT /v1/sys/generate-share/update HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, reply[:200]
        assert server.get("/v1/sys/health").status_code == 501  # not initialized, as Vault says
    assert "Traceback" not in server.output()
