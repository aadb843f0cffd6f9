"""What a holder is told: true, in CLI terms, and saying what to do next (issue 25).

Each test drives the CLI against the real gunicorn server (open mode unless it
says token mode), or against a small stand-in for another program on the port
(a Vault, a plain-HTTP port), and checks the sentence a holder reads.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_runner import TOKEN_ENV, ok, run
from click.testing import Result

from app import shamir
from gpgtools import gpg_in
from server import Server

ATTEMPT = "/v1/sys/generate-share/attempt"
ADOPT = "/v1/sys/adopt/attempt"
# Vault's own split of a 32-byte key, 3 of 5 (x = 1 to 5).
VAULT = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"][0]
SHARES = VAULT["shares_hex"]


def errors(result: Result) -> list[str]:
    """Return the Error: lines a command printed."""
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


@pytest.fixture
def server(tmp_path):
    """A real server in open mode over a fresh data folder."""
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "open"}  # what a holder is told in the seed's mode
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s
        s.kill()


@pytest.fixture
def token_server(tmp_path):
    """A real server in token mode over a fresh data folder."""
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s
        s.kill()


def adopt(server, shares: list[str], threshold: int = 3, **body) -> None:
    """Adopt shares over HTTP (open mode), without the CLI."""
    r = server.put(ADOPT, json={"secret_threshold": threshold, "required": len(shares), **body})
    assert r.status_code == 200, r.text
    nonce = r.json()["nonce"]
    for share in shares:
        r = server.put("/v1/sys/adopt/update", json={"key": share, "nonce": nonce})
        assert r.status_code == 200, r.text


# -- 1. verify of a genuine share the service never recorded -------------------------------------


def test_verify_of_a_share_never_recorded_passes_on_the_servers_reason(server):
    """A genuine share of an adopted set whose x was never named: CANNOT CHECK, not NOT VALID."""
    adopt(server, SHARES[:4])  # x = 5 exists but was not named with --known
    result = run(server.url, "verify", input=SHARES[4] + "\n")
    assert result.exit_code == 1 and "NOT VALID" not in result.output
    assert result.stdout.startswith("CANNOT CHECK: no share at x = 5 was ever recorded by this service.\n")
    assert "adopt start --known" in result.stdout and "neither confirms nor refutes" in result.stdout
    assert SHARES[4] not in result.output
    # A share the service did record, altered: the server's own reason, after NOT VALID.
    altered = f"{int(SHARES[0][:2], 16) ^ 1:02x}" + SHARES[0][2:]
    wrong = run(server.url, "verify", input=altered + "\n")
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("NOT VALID: this is not the share the service recorded at x = 1.\n")
    assert altered not in wrong.output


# -- 2. the other ceremony's command -------------------------------------------------------------


def test_update_during_an_adoption_points_to_adopt_update(server):
    """update while an adoption runs names 'adopt update'; adopt update during an attempt names update."""
    assert server.put(ADOPT, json={"secret_threshold": 3}).status_code == 200
    result = run(server.url, "update", "--nonce", "n", input=SHARES[0] + "\n")
    assert result.exit_code == 1 and result.stdout == ""
    assert errors(result) == [
        "Error: an adoption is in progress, not a share generation attempt: give your existing share "
        "to it with 'generate-share adopt update --nonce NONCE'; nothing was sent"
    ]
    assert "not initialized" not in result.stderr and SHARES[0] not in result.output

    ok(server.url, "adopt", "cancel")
    adopt(server, SHARES[:4])
    ok(server.url, "start")
    other = run(server.url, "adopt", "update", "--nonce", "n", input=SHARES[0] + "\n")
    assert other.exit_code == 1 and SHARES[0] not in other.output
    assert errors(other) == [
        "Error: a share generation attempt is in progress, not an adoption: give your share to it "
        "with 'generate-share update --nonce NONCE'; nothing was sent"
    ]
    assert server.get(ATTEMPT).json()["progress"] == 0


# -- 3. restarting an adoption issues a new token ------------------------------------------------


def test_cancelling_and_restarting_an_adoption_says_the_token_changed(token_server):
    """adopt start and adopt cancel say that the adoption's token is its own; the old one stops working."""
    first = ok(token_server.url, "adopt", "start", "--threshold", "3").stdout
    old = re.search(r"^Root token: (\S+)$", first, flags=re.MULTILINE).group(1)
    assert "any token an earlier 'adopt start' printed no longer works" in first
    cancelled = ok(token_server.url, "adopt", "cancel", env={TOKEN_ENV: old}).stdout
    assert "Adoption cancelled" in cancelled
    assert (
        "The root token that 'generate-share adopt start' printed for it no longer works: the next "
        "'generate-share adopt start' prints a new token, and a new nonce to announce." in cancelled
    )
    second = ok(token_server.url, "adopt", "start", "--threshold", "3").stdout
    new = re.search(r"^Root token: (\S+)$", second, flags=re.MULTILINE).group(1)
    assert new != old
    # What the CLI said is what the server does: the old token cannot cancel the new adoption.
    refused = run(token_server.url, "adopt", "cancel", env={TOKEN_ENV: old})
    assert refused.exit_code == 1 and token_server.get(ADOPT).json()["started"] is True
    assert old not in refused.output


# -- 5. fingerprints as gpg shows them -----------------------------------------------------------


def test_start_prints_fingerprints_as_gpg_shows_them_and_names_the_command(server, keyring, tmp_path):
    """Every fingerprint start prints appears verbatim in gpg --fingerprint --with-subkey-fingerprints."""
    ok(server.url, "init", "--shares", "5", "--threshold", "3")
    key_file = tmp_path / "ecc.asc"
    key_file.write_bytes(keyring.public_armored(keyring.ECC))
    started = ok(server.url, "start", "--pgp-key", str(key_file)).stdout
    assert "'gpg --fingerprint --with-subkey-fingerprints'" in started
    primary = re.search(r"^PGP fingerprint: (.+)$", started, flags=re.MULTILINE).group(1)
    subkey = re.search(r"^Encryption subkey: (.+)$", started, flags=re.MULTILINE).group(1)
    shown = gpg_in(
        keyring.home, "--fingerprint", "--with-subkey-fingerprints", keyring.fingerprint(keyring.ECC)
    ).decode()
    gpg_lines = [line.strip() for line in shown.splitlines()]
    assert primary in gpg_lines and subkey in gpg_lines and primary != subkey
    assert keyring.fingerprint(keyring.ECC) not in started  # no lowercase run-together hex to compare


# -- 6. shares in the forms people paste -----------------------------------------------------------


def test_shares_in_the_forms_other_tools_print_are_taken(server):
    """0x hex, hex grouped by spaces, base64 without padding or wrapped over lines on stdin."""
    keys = json.loads(ok(server.url, "--format", "json", "init", "--shares", "5", "--threshold", "3").stdout)
    ok(server.url, "start")
    forms = [
        "0x" + keys["keys"][0],
        " ".join(keys["keys"][1][i : i + 4] for i in range(0, 66, 4)),
    ]
    b64 = keys["keys_base64"][2]
    forms.append(b64[:20] + "\n" + b64[20:])  # wrapped, as base64(1) or a mail client wraps it
    for i, form in enumerate(forms):
        result = ok(server.url, "update", input=form + "\n")
        assert f"Share accepted: {i + 1} of 3" in result.stdout or "3 of 3" in result.stdout
        assert form.split()[0] not in result.output
    # inspect reads the same forms offline; base64 without its padding too.
    short = base64.b64encode(bytes.fromhex(keys["keys"][3])[:32]).decode().rstrip("=")
    inspected = ok(server.url, "inspect", input=short + "\n")
    assert "length: 32 bytes" in inspected.stdout and short not in inspected.output
    refused = run(server.url, "inspect", input="!" + short + "\n")
    assert refused.exit_code == 2 and "neither hex nor standard base64" in refused.stderr
    assert "padded" not in refused.stderr and short not in refused.output
    assert "x:      " in ok(server.url, "inspect", input="0x" + keys["keys"][3] + "\n").stdout


# -- 7. a failed quorum and a failed adoption name the tool that checks a share ----------------------


def test_a_failed_quorum_and_a_failed_adoption_name_generate_share_verify(server):
    """The reset after a wrong share says how each holder checks theirs."""
    mine = json.loads(ok(server.url, "--format", "json", "init", "--shares", "5", "--threshold", "3").stdout)
    ok(server.url, "start")
    ok(server.url, "update", input=mine["keys"][0] + "\n")
    ok(server.url, "update", input=mine["keys"][1] + "\n")
    other_key = shamir.split(secrets.token_bytes(32), 5, 3)[2].hex()  # a share of another key
    failed = run(server.url, "update", input=other_key + "\n")
    assert failed.exit_code == 1 and len(errors(failed)) == 1
    assert "did not reconstruct the master key" in failed.stderr
    assert "each holder should check their share (alone, with 'generate-share verify')" in failed.stderr
    assert other_key not in failed.output


def test_a_failed_adoption_names_verify_and_inspect(server):
    """An inconsistent set: what a holder can check, and that verify checks only adopted sets."""
    ok(server.url, "adopt", "start", "--threshold", "3")
    for share in SHARES[:3]:
        ok(server.url, "adopt", "update", input=share + "\n")
    wrong = f"{int(SHARES[3][:2], 16) ^ 1:02x}" + SHARES[3][2:]
    failed = run(server.url, "adopt", "update", input=wrong + "\n")
    assert failed.exit_code == 1 and len(errors(failed)) == 1
    assert "'generate-share inspect' shows its x and length" in failed.stderr
    assert "'generate-share verify' checks a share only once its set is adopted" in failed.stderr
    assert wrong not in failed.output


# -- 9. the token and the threshold, in CLI terms --------------------------------------------------


def test_a_missing_token_is_one_error_line_in_cli_terms(token_server):
    """start without the token: one Error line naming the variable and the option, never a header."""
    ok(token_server.url, "init", "--shares", "5", "--threshold", "3")
    result = run(token_server.url, "start")
    assert result.exit_code == 1 and result.stdout == ""
    assert errors(result) == result.stderr.splitlines() and len(errors(result)) == 1
    assert TOKEN_ENV in result.stderr and "--token-file FILE" in result.stderr
    assert "X-Vault-Token" not in result.stderr and "Authorization" not in result.stderr
    assert token_server.get(ATTEMPT).json()["started"] is False


def test_the_wrong_threshold_refusal_names_the_threshold_option(server):
    """Adopting 3-of-5 shares at threshold 4: the refusal says --threshold 3, not secret_threshold."""
    ok(server.url, "adopt", "start", "--threshold", "4", "--required", "5")
    for share in SHARES[:4]:
        ok(server.url, "adopt", "update", input=share + "\n")
    refused = run(server.url, "adopt", "update", input=SHARES[4] + "\n")
    assert refused.exit_code == 1 and len(errors(refused)) == 1
    assert "this share set's threshold is 3, not 4" in refused.stderr
    assert "start it again with --threshold 3" in refused.stderr and "secret_threshold" not in refused.stderr


# -- 10. and 11. whom the CLI reached, and how -----------------------------------------------------


class _VaultLike(BaseHTTPRequestHandler):
    """Answer as a Vault does: health without the service's name, every other read 403."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Answer health as an unsealed Vault; anything else as permission denied."""
        if self.path.startswith("/v1/sys/health"):
            status, body = 200, {"initialized": True, "sealed": False, "version": "1.15.0"}
        else:
            status, body = 403, {"errors": ["permission denied"]}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def vault():
    """A Vault-like server on a loopback port; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _VaultLike)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("args", [["status"], ["shares"], ["adopt", "status"]])
def test_read_commands_say_whom_they_reached_instead_of_permission_denied(vault, args):
    """status against a Vault: it is not a generate-share server, not a token problem."""
    result = run(vault, *args)
    assert result.exit_code == 1 and result.stdout == ""
    assert errors(result) == [
        f"Error: the server at {vault} is not a generate-share server: its /v1/sys/health does not name "
        "the service generate-share (a Vault or OpenBao server listens on the same port); nothing was "
        "sent to it. Check --address or GENERATE_SHARE_ADDR."
    ]


def test_https_against_a_plain_port_is_one_sentence_naming_http(server):
    """https:// to the plain port: says the port speaks plain HTTP and what to use instead."""
    https = server.url.replace("http://", "https://")
    result = run(https, "status")
    assert result.exit_code == 3
    assert result.stderr == (
        f"Error: cannot reach the server at {https}: the port answers in plain HTTP, not TLS; "
        f"use {server.url}, or the port that serves HTTPS\n"
    )


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
def test_an_address_ending_in_v1_is_one_sentence(server, suffix):
    """--address …/v1: usage error, one line, with the address to give instead; nothing sent."""
    result = run(server.url + suffix, "status")
    assert result.exit_code == 2 and result.stdout == ""
    assert "ends in /v1, which the CLI adds itself" in result.stderr and server.url in result.stderr
    assert sum("/v1/v1" in line for line in result.stderr.splitlines()) == 0


# -- 12. a second server on the same data folder ---------------------------------------------------


def test_a_second_server_on_the_same_folder_says_so_in_one_line(server, tmp_path):
    """A second gunicorn on the folder: one line naming the pid, no traceback, no worker advice."""
    pid = (server.data_dir / "lock").read_text().strip()
    other = Server(server.data_dir, tmp_path / "other.log")
    other.spawn()
    assert other.wait() != 0
    output = other.output()
    assert "Traceback" not in output and "Worker failed to boot" not in output
    refusal = [line for line in output.splitlines() if "already served by another process" in line]
    assert refusal == [
        f"generate-share: refusing to start: the data folder {server.data_dir.absolute()} is already "
        f"served by another process (pid {pid}): stop that one first, or serve another folder "
        "(GENERATE_SHARE_DATA_DIR); exactly one process, with one worker, may serve a data folder, "
        "because a ceremony lives in its memory"
    ]
    assert len(output.splitlines()) <= 3, output
    assert server.get("/v1/sys/health").status_code == 501  # the first one still serves


# -- 15. decode says the new share's x -------------------------------------------------------------


def test_decode_prints_the_new_shares_x(server, keyring, tmp_path):
    """A PGP ceremony's new share, decoded: its x is printed and is the one the registry lists."""
    keys = json.loads(ok(server.url, "--format", "json", "init", "--shares", "5", "--threshold", "3").stdout)
    key_file = tmp_path / "rsa.asc"
    key_file.write_bytes(keyring.public_armored(keyring.RSA))
    ok(server.url, "start", "--pgp-key", str(key_file))
    for key in keys["keys"][:3]:
        last = ok(server.url, "update", input=key + "\n")
    b64 = re.search(r"generate-share decode --key-base64 (\S+)", last.stdout).group(1)
    decoded = ok(server.url, "decode", "--key-base64", b64, "--gnupg-home", str(keyring.home)).stdout
    x = int(re.search(r"^Share x:\s+(\d+) ", decoded, flags=re.MULTILINE).group(1))
    issued = [
        s["index"] for s in server.get("/v1/sys/shares").json()["shares"] if s["origin"] == "generate-share"
    ]
    assert issued == [x]
