"""The CLI and proxies: environment variables are ignored, --proxy is obeyed.

A holder's share must not travel through a proxy that a corporate host's
environment names (HTTP_PROXY and friends): it would see the share in clear
over http:// and could answer in the server's place. Each test runs the CLI
against the real server with a real forward proxy on a loopback port that
records the request line of every request it receives (never a body).
"""

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import pytest
import requests
from click.testing import CliRunner, Result

from app.cli import cli
from server import Server, free_port

# Open mode: the CLI's proxy handling, the same in both modes, shown on an open ceremony.
pytestmark = pytest.mark.ceremony_auth("open")

SCRIPT = Path(sys.executable).parent / "generate-share"
VAULT = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"][0]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
# Headers that belong to one hop, not to the request the proxy passes on.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}


class _ForwardingHandler(BaseHTTPRequestHandler):
    """Record the request line, then pass the request on to a loopback server."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops talking does not hold a thread forever

    def _forward(self) -> None:
        """Record the method and absolute URL, forward the request, relay the reply."""
        self.server.seen.append((self.command, self.path))
        target = urlsplit(self.path)
        if target.scheme != "http" or target.hostname != "127.0.0.1" or not target.port:
            self.send_error(502, "this test proxy forwards only to http://127.0.0.1:PORT")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
        finally:
            upstream.close()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _forward

    def do_CONNECT(self) -> None:
        """Record a tunnel request and refuse it: the test server speaks plain HTTP."""
        self.server.seen.append((self.command, self.path))
        self.send_error(502, "this test proxy does not tunnel")

    def log_message(self, format: str, *args) -> None:
        """Print nothing: the test output stays free of request lines."""


class RecordingProxy(ThreadingHTTPServer):
    """A forward HTTP proxy on a free loopback port that records every request it receives."""

    daemon_threads = True

    def __init__(self) -> None:
        """Listen on a port the kernel picks on 127.0.0.1."""
        super().__init__(("127.0.0.1", 0), _ForwardingHandler)
        self.seen: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def running_proxy() -> Iterator[RecordingProxy]:
    """Serve a recording proxy on its own thread until the block ends."""
    with RecordingProxy() as p:
        thread = threading.Thread(target=p.serve_forever, daemon=True)
        thread.start()
        try:
            yield p
        finally:
            p.shutdown()
            thread.join(timeout=30)


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    """A running recording proxy, shut down at the end."""
    with running_proxy() as p:
        yield p


@pytest.fixture
def server(tmp_path):
    """A real server over a fresh data folder, killed at the end to skip gunicorn's keep-alive wait."""
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s
        s.kill()


def proxy_environment(monkeypatch, url: str) -> None:
    """Point every proxy variable, upper and lower case, at url, with nothing exempted."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, url)
    for name in NO_PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def ok(address: str, *args: str, input: str | None = None) -> Result:
    """Invoke the CLI in-process against address and assert that it succeeded."""
    result = CliRunner().invoke(cli, ["--address", address, *args], input=input, prog_name="generate-share")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 0, result.stderr
    return result


def test_proxy_environment_variables_are_ignored(server, proxy, monkeypatch):
    """Send nothing to the proxy that HTTP_PROXY, http_proxy and ALL_PROXY name, loopback or not."""
    proxy_environment(monkeypatch, proxy.url)
    shares = VAULT["shares_hex"]
    ok(server.url, "adopt", "start", "--threshold", "3", "--required", "4", "--known", "5")
    ok(server.url, "adopt", "status")
    for share in shares[:4]:
        ok(server.url, "adopt", "update", input=share + "\n")
    ok(server.url, "start")
    ok(server.url, "status")
    for share in shares[:3]:
        last = ok(server.url, "--format", "json", "update", input=share + "\n")
    assert json.loads(last.stdout)["complete"] is True
    ok(server.url, "verify", input=shares[0] + "\n")
    ok(server.url, "shares")
    ok(server.url, "cancel")
    assert proxy.seen == []


def test_init_and_the_console_script_ignore_proxy_variables(server, proxy):
    """Keep init's shares and the installed script's traffic away from the environment's proxy."""
    env = {**os.environ, "GENERATE_SHARE_ADDR": server.url, **dict.fromkeys(PROXY_VARIABLES, proxy.url)}
    for name in NO_PROXY_VARIABLES:
        env.pop(name, None)
    for args in (["--format", "json", "init", "--shares", "3", "--threshold", "2"], ["status"]):
        done = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False, timeout=60
        )
        assert done.returncode == 0, done.stderr
    assert proxy.seen == []


def test_the_proxy_option_is_obeyed_even_against_no_proxy(server, proxy, monkeypatch):
    """Send every request through --proxy, whatever NO_PROXY and the proxy variables say."""
    with running_proxy() as decoy:
        proxy_environment(monkeypatch, decoy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "*")
        keys = json.loads(
            ok(
                server.url,
                "--proxy",
                proxy.url,
                "--format",
                "json",
                "init",
                "--shares",
                "3",
                "--threshold",
                "2",
            ).stdout
        )["keys"]
        ok(server.url, "--proxy", proxy.url, "start")
        ok(server.url, "--proxy", proxy.url, "update", input=keys[0] + "\n")
        ok(server.url, "--proxy", proxy.url, "status")
    assert decoy.seen == []
    health = ("GET", f"{server.url}/v1/sys/health")  # asked before each command's first write
    assert proxy.seen == [
        health,
        ("PUT", f"{server.url}/v1/sys/init"),
        health,
        ("PUT", f"{server.url}/v1/sys/generate-share/attempt"),
        health,
        ("GET", f"{server.url}/v1/sys/generate-share/attempt"),
        ("PUT", f"{server.url}/v1/sys/generate-share/update"),
        ("GET", f"{server.url}/v1/sys/generate-share/attempt"),
    ]


def test_an_unreachable_proxy_exits_3_naming_the_proxy(server):
    """Exit 3 with one line when the --proxy given does not answer."""
    dead = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["--address", server.url, "--proxy", dead, "status"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == (
        f"Error: cannot reach the proxy {dead}: Connection refused; check --proxy and that the proxy runs\n"
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "127.0.0.1:3128",
        "ftp://127.0.0.1:3128",
        "socks5://127.0.0.1:1080",
        "http://",
        "http://:3128",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:port",
        "http://127.0.0.1:3128/some/path",
        "http://proxy example:3128",
    ],
)
def test_a_proxy_that_is_not_an_http_url_is_a_usage_error(value):
    """Exit 2, before any request, for a --proxy that is not http(s)://HOST[:PORT]."""
    result = CliRunner().invoke(cli, ["--address", "http://127.0.0.1:1", "--proxy", value, "status"])
    assert result.exit_code == 2, result.output
    assert "--proxy" in result.stderr and "http://HOST:PORT" in result.stderr and result.stdout == ""


def test_tls_verification_is_passed_with_each_request(server, monkeypatch, tmp_path):
    """Pass verify (the --ca-cert file, or True) with each request: REQUESTS_CA_BUNDLE is not read."""
    sent = []
    real = requests.Session.request

    def spy(self, method, url, **kwargs):
        """Record how the request is verified and whether the environment is trusted, then send it."""
        sent.append((self.trust_env, kwargs.get("verify")))
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    ok(server.url, "init", "--shares", "3", "--threshold", "2")
    ok(server.url, "--ca-cert", certifi.where(), "status")
    assert sent == [(False, True), (False, True), (False, certifi.where())]  # health, init, status
