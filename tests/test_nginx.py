"""deploy/nginx-generate-share.conf in a real nginx before the real service: a ceremony, addresses, limits."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.server import BOOT_SECONDS, ROOT, Server, free_port

SITE = ROOT / "deploy" / "nginx-generate-share.conf"
NAME = "keys.example.org"
#: The client's own address: not 127.0.0.1, which is where nginx itself reaches the service from.
CLIENT = "127.0.0.2"
V1 = "/v1/sys"


class Client(HTTPAdapter):
    """Connect from CLIENT, send SNI keys.example.org and check the certificate for that name."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs.update(server_hostname=NAME, assert_hostname=NAME, source_address=(CLIENT, 0))
        super().init_poolmanager(*args, **kwargs)


def adapt(site: str, *, port: int, upstream: int, cert: Path, key: Path) -> str:
    """Point the site at free ports and a test certificate; refuse if the file changed shape."""
    swaps = {
        "listen 443 ssl": f"listen 127.0.0.1:{port} ssl",
        "proxy_pass http://127.0.0.1:8200;": f"proxy_pass http://127.0.0.1:{upstream};",
        "/etc/ssl/keys.example.org.pem": str(cert),
        "/etc/ssl/keys.example.org.key": str(key),
    }
    for old, new in swaps.items():
        assert old in site, f"the site no longer holds {old!r}: update this test"
        site = site.replace(old, new)
    return site


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    assert found, "nginx is missing: apt-get install -y nginx (.ci/run does)"
    return found


@pytest.fixture
def stack(tmp_path, nginx_bin) -> Iterator[tuple[Server, str, Path]]:
    """Run the service (token mode, one trusted proxy) behind nginx with the site; yield server, url, cert."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={NAME}"]
        + ["-addext", f"subjectAltName=DNS:{NAME}"],
        check=True,
        capture_output=True,
    )
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "token", "GENERATE_SHARE_TRUSTED_PROXIES": "1"}
    server = Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env).start()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    (prefix / "site.conf").write_text(
        adapt(SITE.read_text(), port=port, upstream=server.port, cert=cert, key=key)
    )
    temps = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""  # the temp folder is 0700
    (prefix / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temps}\n"
        f"    include {prefix / 'site.conf'};\n}}\n"
    )
    with (prefix / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + BOOT_SECONDS
        while True:
            assert proc.poll() is None, (prefix / "stderr.log").read_text() + (
                prefix / "error.log"
            ).read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen in time"
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        yield server, f"https://127.0.0.1:{port}", cert
    finally:
        proc.terminate()
        proc.wait(timeout=BOOT_SECONDS)
        server.stop()


def session(cert: Path) -> requests.Session:
    """A client session as a holder's machine would open it: SNI, certificate check, its own address."""
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise win over s.verify
    s.verify = str(cert)
    s.headers["Host"] = NAME
    s.mount("https://", Client())
    return s


def trail(server: Server) -> list[dict]:
    """Return every line of the audit trail."""
    return [json.loads(line) for line in (server.data_dir / "audit.log").read_text().splitlines()]


SPOOFS = [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
    {"X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"},
]


def test_a_ceremony_through_nginx_records_the_real_client_address(stack):
    server, url, cert = stack
    with session(cert) as s:
        r = s.put(
            url + f"{V1}/init",
            json={"secret_shares": 3, "secret_threshold": 2},
            headers=SPOOFS[0],
            timeout=30,
        )
        assert r.status_code == 200, r.text
        token, keys = r.json()["root_token"], r.json()["keys"]
        # The lead's start, without the token first (refused), then with it.
        assert (
            s.put(url + f"{V1}/generate-share/attempt", json={}, headers=SPOOFS[1], timeout=30).status_code
            == 403
        )
        r = s.put(
            url + f"{V1}/generate-share/attempt",
            json={},
            headers={"X-Vault-Token": token, **SPOOFS[2]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        nonce, pad = r.json()["nonce"], r.json()["otp"]
        assert pad
        # An update without the nonce is refused; then the two holders, each with a spoof.
        assert (
            s.put(url + f"{V1}/generate-share/update", json={"key": keys[0]}, timeout=30).status_code == 400
        )
        for key, spoof in zip(keys[:2], SPOOFS, strict=False):
            r = s.put(
                url + f"{V1}/generate-share/update",
                json={"key": key, "nonce": nonce},
                headers=spoof,
                timeout=30,
            )
            assert r.status_code == 200, r.text
        assert r.json()["complete"] is True
        assert len(s.get(url + f"{V1}/shares", timeout=30).json()["shares"]) == 4
    lines = trail(server)
    events = [line["event"] for line in lines]
    assert events[0] == "init" and "share_issued" in events and "refused" in events
    assert {line["client"] for line in lines} == {CLIENT}, [(e["event"], e["client"]) for e in lines]
    # The request id nginx made reached the service and its trail.
    assert all(len(line["request_id"]) == 32 for line in lines)


def test_a_body_past_the_limit_is_refused_by_nginx_in_json(stack):
    server, url, cert = stack
    with session(cert) as s:
        too_big = b'{"key": "' + b"a" * 70_000 + b'"}'
        r = s.put(url + f"{V1}/generate-share/update", data=too_big, timeout=30)
        assert r.status_code == 413
        assert r.headers["Server"].startswith("nginx")
        assert r.json() == {"errors": ["The request body must be at most 64 KiB."]}
        # Just under the limit, the body reaches the service, which answers for itself.
        fits = b'{"key": "' + b"a" * 60_000 + b'"}'
        r = s.put(url + f"{V1}/generate-share/update", data=fits, timeout=30)
        assert r.status_code == 400 and "errors" in r.json()
    assert "413" not in "".join(line for line in server.output().splitlines() if '"app.access"' in line)


def test_a_name_other_than_the_site_gets_no_handshake(stack):
    _, url, cert = stack
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="rebind.attacker.example")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + f"{V1}/shares", verify=str(cert), timeout=10)  # a bare IP sends no SNI
