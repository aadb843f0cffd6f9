"""The deployment kit against real gunicorn: native TLS, the startup line, exit codes, the systemd unit."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.server import BOOT_SECONDS, ROOT, Server

UNIT = ROOT / "deploy" / "generate-share.service"
NATIVE_TLS = ROOT / "deploy" / "generate-share-native-tls.conf"


def make_cert(folder: Path) -> tuple[Path, Path]:
    """Make a self-signed certificate for 127.0.0.1 with openssl; return (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


class TLSServer(Server):
    """The real server with GENERATE_SHARE_TLS_* set, reached over HTTPS."""

    def __init__(self, data_dir, log_path, cert: Path, key: Path, *, env=None, args=()):
        tls = {"GENERATE_SHARE_TLS_CERT_FILE": str(cert), "GENERATE_SHARE_TLS_KEY_FILE": str(key)}
        super().__init__(data_dir, log_path, env={**tls, **(env or {})}, args=args)
        self.url = f"https://127.0.0.1:{self.port}"
        self.cert = cert

    def start(self) -> TLSServer:
        """Start gunicorn and return once it answers HTTPS."""
        self.spawn()
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                requests.get(self.url + "/v1/sys/health", timeout=1, verify=str(self.cert))
                return self
            except (requests.ConnectionError, requests.Timeout):
                # Timeout too: on a loaded machine the handshake may not finish within 1 s.
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        self.kill()
        raise RuntimeError(f"gunicorn did not answer within {BOOT_SECONDS}s:\n{self.output()}")


def startup_lines(server: Server) -> list[dict]:
    """Return the JSON log lines of the logger app.startup."""
    found = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc["logger"] == "app.startup":
                found.append(doc)
    return found


def refused_start(tmp_path: Path, env: dict, *, folder: Path | None = None) -> tuple[int, str]:
    """Run the server until it exits; return its exit status and output."""
    server = Server(folder or tmp_path / "data", tmp_path / "refused.log", env=env)
    server.spawn()
    try:
        status = server.wait()
    finally:
        server.kill()  # a server that wrongly started must not outlive the test
    return status, server.output()


# -- native TLS ----------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path) -> tuple[Path, Path]:
    return make_cert(tmp_path)


def test_tls_serves_https_a_whole_ceremony_and_says_so_at_start(tmp_path, cert):
    with TLSServer(
        tmp_path / "data", tmp_path / "g.log", *cert, env={"GENERATE_SHARE_CEREMONY_AUTH": "token"}
    ) as s:
        ca = str(cert[0])
        r = requests.put(
            s.url + "/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2}, verify=ca, timeout=30
        )
        assert r.status_code == 200
        body = r.json()
        token, keys = body["root_token"], body["keys"]
        r = requests.put(
            s.url + "/v1/sys/generate-share/attempt",
            headers={"X-Vault-Token": token},
            json={},
            verify=ca,
            timeout=30,
        )
        assert r.status_code == 200
        nonce = r.json()["nonce"]
        with requests.Session() as session:  # one kept-alive TLS connection for both updates
            for key in keys[:2]:
                r = session.put(
                    s.url + "/v1/sys/generate-share/update",
                    json={"key": key, "nonce": nonce},
                    verify=ca,
                    timeout=30,
                )
                assert r.status_code == 200
        assert r.json()["complete"] is True
        # Plain HTTP to the TLS port gets no HTTP reply.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{s.port}/v1/sys/health", timeout=5)
    [line] = startup_lines(s)
    assert line["tls"] is True and line["ceremony_auth"] == "token" and line["initialized"] is False
    assert "TLS on" in line["message"]
    assert "requests are read by gthread's threads" not in s.output()


def test_one_byte_tls_clients_do_not_stall_a_get(tmp_path, cert):
    """64 sockets that send one byte of a ClientHello and stop hold none of the 8 threads."""
    with TLSServer(tmp_path / "data", tmp_path / "g.log", *cert) as s:
        stalled = []
        try:
            for _ in range(64):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                sock.sendall(b"\x16")  # the first byte of a TLS handshake record
                stalled.append(sock)
            started = time.monotonic()
            r = requests.get(s.url + "/v1/sys/health", verify=str(cert[0]), timeout=5)
            elapsed = time.monotonic() - started
        finally:
            for sock in stalled:
                sock.close()
        assert r.status_code in (200, 501)
        assert r.json()["service"] == "generate-share"
        assert elapsed < 2, f"a GET over TLS took {elapsed:.2f}s behind 64 stalled handshakes"


def test_a_stalled_tls_handshake_is_closed_at_the_request_deadline(tmp_path, cert):
    env = {"GENERATE_SHARE_REQUEST_DEADLINE": "1"}
    with TLSServer(tmp_path / "data", tmp_path / "g.log", *cert, env=env) as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sock.sendall(b"\x16")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed, without a reply: nothing was asked
        assert time.monotonic() - started < 5
        sock.close()


def test_a_tls_client_that_sends_its_request_slowly_is_served(tmp_path, cert):
    """The request arrives through the TLS socket in pieces; the main loop assembles it."""
    with TLSServer(tmp_path / "data", tmp_path / "g.log", *cert) as s:
        context = ssl.create_default_context(cafile=str(cert[0]))
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                for piece in (
                    b"GET /v1/sys/hea",
                    b"lth HTTP/1.1\r\nHost: x\r\n",
                    b"Connection: close\r\n\r\n",
                ):
                    tls.sendall(piece)
                reply = b""
                while chunk := tls.recv(65536):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 ") and b'"generate-share"' in reply


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ("GENERATE_SHARE_TLS_CERT_FILE",),
            "GENERATE_SHARE_TLS_CERT_FILE and GENERATE_SHARE_TLS_KEY_FILE go together",
        ),
        (
            ("GENERATE_SHARE_TLS_KEY_FILE",),
            "GENERATE_SHARE_TLS_CERT_FILE and GENERATE_SHARE_TLS_KEY_FILE go together",
        ),
    ],
)
def test_half_a_tls_pair_is_refused_naming_both_variables(tmp_path, cert, names, expected):
    files = {"GENERATE_SHARE_TLS_CERT_FILE": str(cert[0]), "GENERATE_SHARE_TLS_KEY_FILE": str(cert[1])}
    status, output = refused_start(tmp_path, {n: files[n] for n in names})
    assert status == 4
    assert expected in output
    assert not (tmp_path / "data").exists()  # refused before the worker touched the folder


def test_an_unreadable_key_is_refused_naming_its_variable(tmp_path, cert):
    missing = tmp_path / "nowhere.pem"
    env = {"GENERATE_SHARE_TLS_CERT_FILE": str(cert[0]), "GENERATE_SHARE_TLS_KEY_FILE": str(missing)}
    status, output = refused_start(tmp_path, env)
    assert status == 4
    assert f"GENERATE_SHARE_TLS_KEY_FILE names {missing}, which cannot be read" in output


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path, cert):
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = make_cert(other)
    env = {"GENERATE_SHARE_TLS_CERT_FILE": str(cert[0]), "GENERATE_SHARE_TLS_KEY_FILE": str(other_key)}
    status, output = refused_start(tmp_path, env)
    assert status == 4
    assert "must be a PEM certificate chain and its unencrypted private key" in output
    assert "PRIVATE KEY" not in output


# -- the startup line ------------------------------------------------------------------


def test_the_startup_line_names_address_folder_state_mode_and_no_warning_on_loopback(tmp_path):
    folder = tmp_path / "data"
    with Server(folder, tmp_path / "g.log") as s:
        assert s.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200
    with Server(folder, tmp_path / "g2.log") as again:
        pass
    [first] = startup_lines(s)
    assert first["addresses"] == [f"127.0.0.1:{s.port}"]
    assert first["data_dir"] == str(folder)
    assert first["initialized"] is False and first["ceremony_auth"] == "token" and first["tls"] is False
    assert first["level"] == "INFO"
    assert f"listening on 127.0.0.1:{s.port}, data folder {folder}, not initialized" in first["message"]
    [second] = startup_lines(again)
    assert second["initialized"] is True and ", initialized," in second["message"]


def test_binding_beyond_loopback_without_tls_warns(tmp_path):
    server = Server(tmp_path / "data", tmp_path / "g.log")
    server.env["GENERATE_SHARE_BIND"] = f"0.0.0.0:{server.port}"
    with server:
        pass
    lines = startup_lines(server)
    assert [line["level"] for line in lines] == ["INFO", "WARNING"]
    assert f"listening beyond loopback (0.0.0.0:{server.port}) without TLS" in lines[1]["message"]


def test_binding_beyond_loopback_with_tls_does_not_warn(tmp_path, cert):
    server = TLSServer(tmp_path / "data", tmp_path / "g.log", *cert)
    server.env["GENERATE_SHARE_BIND"] = f"0.0.0.0:{server.port}"
    with server:
        pass
    assert [line["level"] for line in startup_lines(server)] == ["INFO"]


# -- refused starts and their exit status ------------------------------------------


def _corrupt_trail(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    with Server(folder, tmp_path / "first.log") as s:
        assert s.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200
    log = folder / "audit.log"
    log.write_bytes(log.read_bytes().replace(b'"init"', b'"tini"', 1))
    return folder


def _bad_mode(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


REFUSALS = {"corrupt trail": _corrupt_trail, "bad folder mode": _bad_mode}


def unit_settings(*files: Path) -> dict[str, list[str]]:
    """Return the settings of the unit (and drop-ins after it), each key with its values in order."""
    settings: dict[str, list[str]] = {}
    for line in "\n".join(f.read_text() for f in (UNIT, *files)).splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refused_start_exits_with_a_status_the_unit_does_not_restart(tmp_path, refusal):
    folder = REFUSALS[refusal](tmp_path)
    status, _ = refused_start(tmp_path, {}, folder=folder)
    assert status == 3  # gunicorn's WORKER_BOOT_ERROR
    assert str(status) in unit_settings()["RestartPreventExitStatus"][0].split()


def test_a_locked_folder_exits_with_a_status_the_unit_does_not_restart(tmp_path):
    folder = tmp_path / "data"
    with Server(folder, tmp_path / "running.log"):
        status, output = refused_start(tmp_path, {}, folder=folder)
    assert status == 4  # refused by gunicorn's master (gunicorn.conf.py) before a worker boots
    assert "already served by another process" in output
    assert str(status) in unit_settings()["RestartPreventExitStatus"][0].split()


def test_a_refused_configuration_exits_with_a_status_the_unit_does_not_restart(tmp_path):
    status, _ = refused_start(tmp_path, {"GENERATE_SHARE_TLS_CERT_FILE": "/etc/hostname"})
    assert status == 4
    assert str(status) in unit_settings()["RestartPreventExitStatus"][0].split()


# -- the systemd unit ------------------------------------------------------------------


def test_the_unit_is_hardened_and_restarts_only_on_a_crash():
    s = unit_settings()
    assert s["User"] == ["generate-share"] and s["Group"] == ["generate-share"]
    assert "DynamicUser" not in s
    assert s["ReadWritePaths"] == ["/var/lib/generate-share"]
    assert "GENERATE_SHARE_DATA_DIR=/var/lib/generate-share" in s["Environment"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "Restart": "on-failure",
        "LimitCORE": "0",
    }.items():
        assert s[key] == [value], key
    assert s["RestartPreventExitStatus"][0].split() == ["3", "4"]
    assert "@system-service" in s["SystemCallFilter"]
    assert re.fullmatch(
        r"/opt/generate-share/\.venv/bin/gunicorn -c \S*gunicorn\.conf\.py wsgi:app", s["ExecStart"][0]
    )


def test_systemd_analyze_verifies_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs it, so CI runs this)")
    # The unit as installed in this checkout: systemd-analyze checks that ExecStart exists.
    unit = tmp_path / "generate-share.service"
    unit.write_text(UNIT.read_text().replace("/opt/generate-share", str(ROOT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_bodies_over_tls_arrive_whole_and_past_the_limit_get_413(tmp_path, cert):
    """A body of many TLS records is assembled in the main loop; one past the limit gets the app's 413."""
    with TLSServer(tmp_path / "data", tmp_path / "g.log", *cert) as s:
        ca = str(cert[0])
        fits = b'{"key": "' + b"a" * 60_000 + b'"}'
        r = requests.put(s.url + "/v1/sys/shares/verify", data=fits, verify=ca, timeout=30)
        assert r.status_code == 400 and "errors" in r.json()
        too_big = b'{"key": "' + b"a" * 70_000 + b'"}'
        r = requests.put(s.url + "/v1/sys/shares/verify", data=too_big, verify=ca, timeout=30)
        assert r.status_code == 413


def unit_environment(*files: Path) -> dict[str, str]:
    """Return the environment the unit (and drop-ins after it) give the service: a later line wins."""
    return dict(line.partition("=")[::2] for line in unit_settings(*files)["Environment"])


def test_the_native_tls_variant_serves_https_and_trusts_no_proxy():
    env = unit_environment(NATIVE_TLS)
    assert env["GENERATE_SHARE_TRUSTED_PROXIES"] == "0"
    assert env["GENERATE_SHARE_TLS_CERT_FILE"] and env["GENERATE_SHARE_TLS_KEY_FILE"]
    assert not env["GENERATE_SHARE_BIND"].startswith("127.")
    # The unit alone stays the variant behind nginx on the same host.
    assert unit_environment()["GENERATE_SHARE_TRUSTED_PROXIES"] == "1"
    assert "GENERATE_SHARE_TLS_CERT_FILE" not in unit_environment()


@pytest.mark.parametrize(
    ("variant", "recorded"), [("native-tls", "127.0.0.1"), ("unit-alone", "203.0.113.9")]
)
def test_natively_on_tls_a_forwarded_header_names_the_client_only_without_the_variant(
    tmp_path, cert, variant, recorded
):
    # Why the variant sets 0: with no proxy in front, the unit's 1 lets any client name the
    # address the trail records (the control, "unit-alone", shows the spoof working).
    proxies = unit_environment(*([NATIVE_TLS] if variant == "native-tls" else []))[
        "GENERATE_SHARE_TRUSTED_PROXIES"
    ]
    env = {"GENERATE_SHARE_TRUSTED_PROXIES": proxies}
    with TLSServer(tmp_path / "data", tmp_path / "server.log", *cert, env=env) as server:
        r = requests.put(
            server.url + "/v1/sys/init",
            json={"secret_shares": 3, "secret_threshold": 2},
            headers={"X-Forwarded-For": "203.0.113.9"},
            verify=str(server.cert),
            timeout=30,
        )
        assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()]
    assert [(line["event"], line["client"]) for line in lines] == [("init", recorded)]


def test_systemd_analyze_verifies_the_unit_with_the_native_tls_variant(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs it, so CI runs this)")
    unit = tmp_path / "generate-share.service"
    unit.write_text(UNIT.read_text().replace("/opt/generate-share", str(ROOT)))
    (tmp_path / "generate-share.service.d").mkdir()
    dropin = tmp_path / "generate-share.service.d" / "native-tls.conf"
    shutil.copy(NATIVE_TLS, dropin)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "generate-share" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
    # systemd-analyze reads the drop-in from there: a bad key in it is named.
    dropin.write_text(NATIVE_TLS.read_text().replace("\nEnvironment=", "\nEnvironmen=", 1))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "native-tls.conf" in done.stdout + done.stderr
