"""The CLI in token mode: the lead's token, pinned nonces, the one-time pad, generate-share servers only."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cli_runner import TOKEN_ENV, ok, run

from app.cli import prompts as cli_prompts
from app.encoding import otp_check
from helpers import same_key
from server import Server, free_port

ATTEMPT = "/v1/sys/generate-share/attempt"
ADOPT = "/v1/sys/adopt/attempt"
PERMISSION_DENIED = "permission denied"
ASK_NONCE = "The nonce the lead announced (it is not shown)"
# Vault's own split of a 32-byte key, 3 of 5 (x = 1 to 5).
VAULT = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"][0]
# What Vault 1.15 answers on /v1/sys/health before it is initialized (HTTP 501).
VAULT_HEALTH = {
    "initialized": False,
    "sealed": True,
    "standby": False,
    "performance_standby": False,
    "replication_performance_mode": "disabled",
    "replication_dr_mode": "disabled",
    "server_time_utc": 1700000000,
    "version": "1.15.0",
}


# -- decode --otp: the pad XORed away, no server needed ---------------------------------------


def masked_pair(length: int = 33) -> tuple[bytes, bytes, bytes]:
    """Return a share, a pad of its length, and the share masked with the pad."""
    share, pad = secrets.token_bytes(length), secrets.token_bytes(length)
    return share, pad, bytes(a ^ b for a, b in zip(share, pad, strict=True))


def b64(data: bytes) -> str:
    """Return data as base64 text."""
    return base64.b64encode(data).decode("ascii")


OFFLINE = f"http://127.0.0.1:{free_port()}"  # decode never talks to a server


def test_decode_otp_unmasks_the_share():
    """Print share = masked XOR pad in hex and base64, and its x, from stdin, or as JSON."""
    share, pad, masked = masked_pair()
    check = otp_check(pad, masked)
    args = ("decode", "--otp", "-", "--check", check, "--key-base64", b64(masked))
    out = ok(OFFLINE, *args, input=b64(pad) + "\n").stdout
    assert out.startswith(f"Share (hex):    {share.hex()}\nShare (base64): {b64(share)}\n")
    assert f"Share x:        {share[-1]} " in out
    as_json = ok(OFFLINE, "--format", "json", *args, input=b64(pad))
    assert json.loads(as_json.stdout) == {"key": share.hex(), "key_base64": b64(share), "index": share[-1]}


def test_decode_otp_asks_for_the_pad_without_echo_on_a_terminal(monkeypatch):
    """Ask for the pad on a terminal (faked, as test_cli.py does) and never echo it."""
    share, pad, masked = masked_pair()
    monkeypatch.setattr(cli_prompts, "_stdin_is_terminal", lambda: True)
    args = ("decode", "--otp", "-", "--check", otp_check(pad, masked), "--key-base64", b64(masked))
    result = ok(OFFLINE, *args, input=b64(pad) + "\n")
    assert "The one-time pad from 'generate-share start' (base64; it is not shown)" in result.stderr
    assert b64(pad) not in result.output and pad.hex() not in result.output
    assert share.hex() in result.stdout


@pytest.mark.parametrize("pad_length", [32, 34, 1])
def test_decode_otp_refuses_a_pad_of_another_length(pad_length):
    """Refuse (exit 2) a pad not as long as the masked share, saying so and printing no share."""
    share, _, masked = masked_pair()
    pad = secrets.token_bytes(pad_length)
    args = ("decode", "--otp", "-", "--check", "00" * 16, "--key-base64", b64(masked))
    result = run(OFFLINE, *args, input=b64(pad))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"the pad is {pad_length} bytes but the masked share is 33" in result.stderr
    assert "same length" in result.stderr and len(result.stderr.splitlines()) == 1
    assert b64(pad) not in result.stderr and share.hex() not in result.output


def test_decode_otp_refuses_a_wrong_pad_instead_of_printing_a_wrong_share():
    """A pad of the right length but not this share's: exit 1, one line, no share printed."""
    share, pad, masked = masked_pair()
    check = otp_check(pad, masked)
    wrong = secrets.token_bytes(33)
    for given_pad, given_check, given_masked in (
        (wrong, check, masked),  # another attempt's pad
        (pad, otp_check(wrong, masked), masked),  # another attempt's check
        (pad, check, masked[:-1] + bytes([masked[-1] ^ 1])),  # a masked share copied wrong
    ):
        args = ("decode", "--otp", "-", "--check", given_check, "--key-base64", b64(given_masked))
        result = run(OFFLINE, *args, input=b64(given_pad) + "\n")
        assert result.exit_code == 1 and result.stdout == ""
        assert "do not belong together, so nothing was unmasked" in result.stderr
        assert len(result.stderr.splitlines()) == 1
        unmasked = bytes(a ^ b for a, b in zip(given_masked, given_pad, strict=True))
        assert unmasked.hex() not in result.output and b64(given_pad) not in result.output


def test_decode_otp_refuses_a_pad_on_the_command_line_unrepeated():
    """--otp PAD is refused (exit 2) before anything is read: a pad belongs out of the shell's history."""
    share, pad, masked = masked_pair()
    args = ("decode", "--otp", b64(pad), "--check", otp_check(pad, masked), "--key-base64", b64(masked))
    result = run(OFFLINE, *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "--otp takes '-' only" in result.stderr and "shell's history" in result.stderr
    assert b64(pad) not in result.output and share.hex() not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--otp", "-", "--check", "00"], "the pad is not valid base64"),
        (["--otp", "-", "--check", "00"], "the pad is empty"),
        (["--otp", "-"], "--otp needs --check HEX"),
        (["--check", "00"], "--check goes with --otp"),
        (["--otp", "-", "--check", "00", "--gnupg-home", "."], "--otp unmasks a share that was not PGP"),
    ],
)
def test_decode_otp_usage_errors(args, message):
    """Exit 2 with one line: a pad not base64 or empty, --otp without --check, --otp with --gnupg-home."""
    stdin = {"the pad is not valid base64": "not base64!\n", "the pad is empty": "  \n"}.get(
        message, "AAAA\n"
    )
    result = run(OFFLINE, "decode", *args, "--key-base64", "AAAA", input=stdin)
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


# -- a server that is not generate-share gets no write ------------------------------------------


class VaultLike(BaseHTTPRequestHandler):
    """Answer like an uninitialized Vault, and record every request's method, path and token."""

    seen: list[tuple[str, str, str | None]]

    def _record(self) -> None:
        """Remember the request, including whether it carried a token."""
        self.server.seen.append((self.command, self.path, self.headers.get("X-Vault-Token")))

    def _answer(self, status: int, body: dict) -> None:
        """Send a JSON reply."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Answer health as Vault does; anything else as a 404."""
        self._record()
        if self.path.startswith("/v1/sys/health"):
            self._answer(501, VAULT_HEALTH)
        elif self.path == ATTEMPT:  # a plausible reply, so only the health check can stop the CLI
            self._answer(200, {"started": True, "nonce": "n", "progress": 0, "required": 3})
        else:
            self._answer(404, {"errors": []})

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        """Record the write and answer like Vault's init would."""
        self._record()
        self._answer(200, {"keys": ["aa"], "keys_base64": ["qg=="], "root_token": "hvs.vault"})

    do_DELETE = do_PUT  # noqa: N815 (http.server's name)
    do_POST = do_PUT  # noqa: N815 (http.server's name)

    def log_message(self, *args) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def vault_like():
    """A fake Vault on a loopback port; yields (url, requests seen)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), VaultLike)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize(
    "args",
    [
        ["init", "--shares", "5", "--threshold", "3"],
        ["start"],
        ["cancel"],
        ["update", "--nonce", "n"],
        ["verify"],
        ["adopt", "start", "--threshold", "3"],
        ["adopt", "cancel"],
    ],
)
def test_a_vault_like_server_gets_no_write(vault_like, args):
    """Refuse (exit 1, one sentence) a server whose health does not name generate-share; send it nothing."""
    url, seen = vault_like
    share = secrets.token_hex(33)
    result = run(url, *args, input=share + "\n", env={"GENERATE_SHARE_TOKEN": "lead-token-not-for-vault"})
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: the server at {url} is not a generate-share server: its /v1/sys/health does not name "
        "the service generate-share (a Vault or OpenBao server listens on the same port); nothing was "
        "sent to it. Check --address or GENERATE_SHARE_ADDR.\n"
    )
    assert seen and all(method == "GET" for method, _, _ in seen), seen
    assert all(token is None for _, _, token in seen)  # the lead's token never left the terminal
    assert share not in result.output


@pytest.mark.parametrize("args", [["status"], ["adopt", "status"]])
def test_a_vault_like_server_never_gets_the_token_with_a_status_read(vault_like, args):
    """The lead's status sends the token: only once health named generate-share, so never here."""
    url, seen = vault_like
    result = run(url, *args, env={"GENERATE_SHARE_TOKEN": "lead-token-not-for-vault"})
    assert result.exit_code == 1 and "is not a generate-share server" in result.stderr
    assert seen and all(token is None for _, _, token in seen), seen
    assert "lead-token-not-for-vault" not in result.output


# -- the lead's token: where it comes from ------------------------------------------------------


def test_a_token_file_readable_by_others_is_refused(tmp_path, vault_like):
    """Refuse a token file group or others may read (exit 2, chmod 600 named), before any request."""
    url, seen = vault_like
    token = secrets.token_urlsafe(24)
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o640)
    result = run(url, "--token-file", str(path), "start")
    assert result.exit_code == 2 and f"chmod 600 {path}" in result.stderr and "(mode 0640)" in result.stderr
    assert token not in result.output and seen == []


@pytest.mark.parametrize(
    "content", ["", "\n", "two words\n", "tab\there", "line\nbreak\n", "é" * 4, "x" * 5000]
)
def test_a_token_that_is_not_one_printable_line_is_refused_unrepeated(tmp_path, vault_like, content):
    """Refuse (exit 2) an empty, multi-line, spaced, non-ASCII or oversized token without repeating it."""
    url, seen = vault_like
    path = tmp_path / "token"
    path.write_text(content)
    path.chmod(0o600)
    from_file = run(url, "--token-file", str(path), "cancel")
    from_env = run(url, "cancel", env={"GENERATE_SHARE_TOKEN": content})
    for result in (from_file, from_env):
        assert result.exit_code == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
        assert "token" in result.stderr
        if content.strip():
            assert content.strip() not in result.stderr
    assert seen == []


# -- whole ceremonies against the real server in token mode ------------------------------------


@pytest.fixture
def server(tmp_path):
    """A real server in token mode over a fresh data folder, killed at the end."""
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s
        s.kill()


def init_token(server) -> tuple[list[str], str]:
    """Initialize 3 of 5 through the CLI; return the shares (hex) and the root token it printed."""
    out = ok(server.url, "init", "--shares", "5", "--threshold", "3").stdout
    keys = re.findall(r"^Share \d+ \(x = \d+\): ([0-9a-f]+)$", out, flags=re.MULTILINE)
    token = re.search(r"^Root token: (\S+)$", out, flags=re.MULTILINE).group(1)
    assert len(keys) == 5 and out.count(token) == 1
    assert "the ceremony lead needs it to start\nand cancel ceremonies, and to see the nonce again" in out
    after = out[out.index("Root token:") :].splitlines()
    assert all(len(line) <= 80 for line in after[1:])  # the advice fits a terminal of 80 columns
    return keys, token


def test_a_token_mode_ceremony_through_the_cli(server, tmp_path):
    """Init, start with the token, three pinned updates, a masked share that decode --otp unmasks."""
    keys, token = init_token(server)
    lead = {TOKEN_ENV: token}

    denied = run(server.url, "start")
    assert denied.exit_code == 1 and denied.stdout == ""
    assert denied.stderr.startswith(f"Error: {PERMISSION_DENIED}") and TOKEN_ENV in denied.stderr
    wrong_token = secrets.token_urlsafe(24)
    wrong = run(server.url, "start", env={TOKEN_ENV: wrong_token})
    assert wrong.exit_code == 1 and PERMISSION_DENIED in wrong.stderr and wrong_token not in wrong.output
    assert server.get(ATTEMPT).json()["started"] is False

    started = ok(server.url, "start", env=lead).stdout
    nonce = re.search(r"^Nonce:\s+(\S+)$", started, flags=re.MULTILINE).group(1)
    pad = re.search(r"^One-time pad:\s+(\S+)$", started, flags=re.MULTILINE).group(1)
    assert server.get(ATTEMPT).json()["nonce"] == ""  # a secret: GET shows it only to the lead
    assert nonce == server.get(ATTEMPT, headers={"X-Vault-Token": token}).json()["nonce"]
    assert f"generate-share update --nonce {nonce}" in started
    assert "generate-share decode --otp - --check <check> --key-base64 <masked share>" in started
    assert token not in started
    assert len(base64.b64decode(pad)) == 33 == server.get(ATTEMPT).json()["otp_length"]
    status = ok(server.url, "status").stdout
    assert "One-time pad:    33 bytes, held by the lead" in status and pad not in status
    # A holder without the token is told why the nonce is not there, and what to use instead.
    assert "Nonce:           not shown without the operator token: use the nonce the lead announced" in status
    assert nonce not in status
    assert f"Nonce:           {nonce}" in ok(server.url, "status", env=lead).stdout
    assert (
        "PGP fingerprint: none (the new share will be returned masked with the lead's one-time pad)" in status
    )
    assert "unencrypted" not in started + status

    # Without --nonce and without a terminal: refused before the share is read; nothing counted.
    blind = run(server.url, "update", input=keys[0] + "\n")
    assert blind.exit_code == 2 and blind.stdout == ""
    assert "generate-share update --nonce NONCE" in blind.stderr and keys[0] not in blind.output
    other = run(server.url, "update", "--nonce", "not-" + nonce, input=keys[0] + "\n")
    assert other.exit_code == 1 and "nonce does not match the ceremony in progress" in other.stderr
    assert nonce not in other.output
    assert keys[0] not in other.output
    assert server.get(ATTEMPT).json()["progress"] == 0

    outputs = []
    for key in keys[:3]:
        last = ok(server.url, "update", "--nonce", nonce, input=key + "\n")
        outputs.append(last.output)
    assert "Share accepted: 3 of 3 shares provided." in last.stdout
    assert "New share (hex)" not in last.stdout and "masked with the lead's one-time pad" in last.stdout
    check, masked = re.search(
        r"generate-share decode --otp - --check ([0-9a-f]{32}) --key-base64 (\S+)", last.stdout
    ).groups()
    assert pad not in last.output and f"Check:                 {check}" in last.stdout

    with_gpg = run(server.url, "decode", "--key-base64", masked)
    assert with_gpg.exit_code == 2 and "is unmasked with --otp instead" in with_gpg.stderr
    unmask = ("decode", "--otp", "-", "--check", check, "--key-base64", masked)
    unmasked = ok(server.url, "--format", "json", *unmask, input=pad)
    new = json.loads(unmasked.stdout)["key"]
    # The new share rebuilds the key with two shares that never took part; the masked one does not.
    assert same_key(new, [keys[3], keys[4], keys[0]], 3)
    assert not same_key(base64.b64decode(masked).hex(), [keys[3], keys[4], keys[0]], 3)
    for output in outputs:
        assert new not in output and not any(key in output for key in keys)

    # The lead's token from a private file cancels the next attempt; nobody else can.
    ok(server.url, "start", env=lead)
    assert PERMISSION_DENIED in run(server.url, "cancel").stderr
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    cancelled = ok(server.url, "--token-file", str(path), "cancel")
    assert "cancelled" in cancelled.stdout and token not in cancelled.output
    assert server.get(ATTEMPT).json()["started"] is False


def test_the_token_goes_only_with_start_status_and_cancel(server, monkeypatch):
    """Send X-Vault-Token with start, status (for the nonce) and cancel; never to health or with a share."""
    keys, token = init_token(server)
    sent = []
    real = requests.Session.request

    def spy(self, method, url, **kwargs):
        """Record each request's method, path and token header, then send it."""
        sent.append(
            (method, url.removeprefix(server.url), (kwargs.get("headers") or {}).get("X-Vault-Token"))
        )
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    lead = {TOKEN_ENV: token}
    started = ok(server.url, "start", env=lead).stdout
    nonce = re.search(r"^Nonce:\s+(\S+)$", started, flags=re.MULTILINE).group(1)
    ok(server.url, "status", env=lead)
    ok(server.url, "update", "--nonce", nonce, input=keys[0] + "\n", env=lead)
    ok(server.url, "verify", input=keys[1] + "\n", env=lead)
    ok(server.url, "cancel", env=lead)
    with_token = [(method, path) for method, path, header in sent if header is not None]
    assert with_token == [("PUT", ATTEMPT), ("GET", ATTEMPT), ("DELETE", ATTEMPT)]
    assert all(header in (None, token) for _, _, header in sent)
    assert ("GET", "/v1/sys/health") in [(m, p) for m, p, _ in sent]


def test_a_holder_at_a_terminal_types_the_nonce_without_echo(server, keyring, tmp_path, monkeypatch):
    """Show fingerprint and subkey, ask for the nonce without echo (GET hides it); --nonce asks nothing."""
    keys, token = init_token(server)
    key_file = tmp_path / "ecc.asc"
    key_file.write_bytes(keyring.public_armored(keyring.ECC))
    started = ok(server.url, "start", "--pgp-key", str(key_file), env={TOKEN_ENV: token}).stdout
    nonce = re.search(r"^Nonce:\s+(\S+)$", started, flags=re.MULTILINE).group(1)
    subkey = keyring.encryption_subkey(keyring.ECC)
    # A terminal, faked as tests/test_cli.py fakes it for the share typed without echo.
    monkeypatch.setattr(cli_prompts, "_stdin_is_terminal", lambda: True)

    wrong = run(server.url, "update", input="not-" + nonce + "\n" + keys[0] + "\n")
    assert wrong.exit_code == 1 and "nonce does not match the ceremony in progress" in wrong.stderr
    assert "Attempt in progress: 0 of 3 shares provided" in wrong.stderr
    primary = [keyring.fingerprint(keyring.ECC)[i : i + 4].upper() for i in range(0, 40, 4)]
    assert f"{' '.join(primary[:5])}  {' '.join(primary[5:])}" in wrong.stderr
    groups = [subkey[i : i + 4].upper() for i in range(0, 40, 4)]
    assert f"subkey {' '.join(groups[:5])}  {' '.join(groups[5:])}" in wrong.stderr
    assert ASK_NONCE in wrong.stderr and nonce not in wrong.output and keys[0] not in wrong.output
    assert server.get(ATTEMPT).json()["progress"] == 0

    accepted = ok(server.url, "update", input=nonce + "\n" + keys[0] + "\n")
    assert "Your share (hex or base64; it is not shown)" in accepted.stderr
    assert nonce not in accepted.output and keys[0] not in accepted.output
    assert "1 of 3 shares provided" in accepted.stdout
    pinned = ok(server.url, "update", "--nonce", nonce, input=keys[1] + "\n")
    assert ASK_NONCE not in pinned.stderr  # --nonce needs no question
    assert server.get(ATTEMPT).json()["progress"] == 2


def test_a_token_mode_adoption_through_the_cli(server):
    """Adopt start prints the root token; updates need a nonce; cancel needs the token."""
    started = ok(server.url, "adopt", "start", "--threshold", "3").stdout
    token = re.search(r"^Root token: (\S+)$", started, flags=re.MULTILINE).group(1)
    nonce = re.search(r"generate-share adopt update --nonce (\S+)$", started, flags=re.MULTILINE).group(1)
    assert server.get(ADOPT).json()["nonce"] == ""  # a secret: GET shows it only with the token
    assert server.get(ADOPT, headers={"X-Vault-Token": token}).json()["nonce"] == nonce
    share = VAULT["shares_hex"][0]
    blind = run(server.url, "adopt", "update", input=share + "\n")
    assert blind.exit_code == 2 and "generate-share adopt update --nonce NONCE" in blind.stderr
    ok(server.url, "adopt", "update", "--nonce", nonce, input=share + "\n")
    assert server.get(ADOPT).json()["progress"] == 1
    denied = run(server.url, "adopt", "cancel")
    assert denied.exit_code == 1 and PERMISSION_DENIED in denied.stderr
    assert "Adoption cancelled" in ok(server.url, "adopt", "cancel", env={TOKEN_ENV: token}).stdout
    assert server.get(ADOPT).json()["started"] is False
