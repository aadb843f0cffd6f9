"""The CLI as Vault users type it: options after the command, JSON errors, Ctrl-C, TLS, decode, --output."""

import base64
import importlib.metadata
import json
import os
import pty
import re
import secrets
import select
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import click
import pytest
import requests
from click.testing import CliRunner, Result

from app import shamir
from app.cli import cli
from app.cli.client import Client
from app.cli.options import Options
from gpgtools import gpg_in
from server import Server

# Open mode: the CLI's habits, the same in both modes, shown without a token.
pytestmark = pytest.mark.ceremony_auth("open")

ATTEMPT = "/v1/sys/generate-share/attempt"
SCRIPT = Path(sys.executable).parent / "generate-share"
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1


@pytest.fixture
def server(tmp_path):
    """A real server (open mode) over a fresh data folder, killed at the end."""
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s
        s.kill()


def invoke(*args: str, input: str | None = None, env: dict | None = None) -> Result:
    """Invoke the CLI in-process, without a default --address, and check it never shows a traceback."""
    result = CliRunner().invoke(cli, list(args), input=input, env=env, prog_name="generate-share")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def init_hex(server, shares=5, threshold=3) -> list[str]:
    """Initialize the server through the CLI and return its shares as hex."""
    done = invoke(
        "init",
        "--shares",
        str(shares),
        "--threshold",
        str(threshold),
        "--format",
        "json",
        "--address",
        server.url,
    )
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["keys"]


# -- global options after the command ---------------------------------------------------------


def _leaves(group: click.Group, path=()):
    """Yield the path of every command under group, subgroups' commands included."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = sorted(_leaves(cli), key=lambda item: item[0])


def _required_args(command: click.Command, folder: Path) -> list[str]:
    """Return plausible values for a command's required parameters, so that click accepts the line."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if isinstance(param.type, click.Path):
            value = str(folder)
        elif isinstance(param.type, click.types.IntParamType):
            value = "3"
        else:
            value = "x"
        args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_takes_the_global_options_after_it(path, command, tmp_path, monkeypatch):
    """Let --address, --ca-cert, --proxy, --format and --token-file after any command win over the group's."""
    ca, token, other = tmp_path / "ca.pem", tmp_path / "token", tmp_path / "other.pem"
    for file in (ca, token, other):
        file.write_text("x")
    seen = []
    monkeypatch.setattr(
        command, "callback", lambda **kwargs: seen.append(click.get_current_context().find_object(Options))
    )
    before = ["--address", DEAD, "--ca-cert", str(other), "--proxy", "http://127.0.0.1:2", "--format", "text"]
    after = [
        "--address",
        "https://example.org:8200",
        "--ca-cert",
        str(ca),
        "--proxy",
        "http://127.0.0.1:3128",
        "--format",
        "json",
        "--token-file",
        str(token),
    ]
    result = invoke(*before, *path, *_required_args(command, tmp_path), *after)
    assert result.exit_code == 0, result.output
    assert seen == [
        Options(
            address="https://example.org:8200",
            ca_cert=str(ca),
            output="json",
            proxy="http://127.0.0.1:3128",
            token_file=str(token),
        )
    ]
    # Given only before the command, the group's values stand; after it, they are checked too.
    seen.clear()
    assert invoke(*before, *path, *_required_args(command, tmp_path)).exit_code == 0
    assert seen[0].address == DEAD and seen[0].ca_cert == str(other) and seen[0].output == "text"
    bad = invoke(*path, *_required_args(command, tmp_path), "--address", "ftp://example.org")
    assert bad.exit_code == 2 and "must start with http:// or https://" in bad.stderr


def test_status_with_the_options_after_it_against_the_real_server(server):
    """Run 'status --format json --address URL' as a Vault user types it, and the older order too."""
    init_hex(server)
    after = invoke("--address", DEAD, "status", "--format", "json", "--address", server.url)
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout) == server.get(ATTEMPT).json()
    before = invoke("--format", "json", "--address", server.url, "status")
    assert before.exit_code == 0 and before.stdout == after.stdout
    adopt = invoke("adopt", "status", "--address", server.url, "--format", "json")
    assert adopt.exit_code == 0 and json.loads(adopt.stdout)["started"] is False


def test_generate_share_format_sets_the_format_and_the_option_wins(server):
    """Print JSON under GENERATE_SHARE_FORMAT=json, and text when --format text is given."""
    init_hex(server)
    env = {"GENERATE_SHARE_FORMAT": "json", "GENERATE_SHARE_ADDR": server.url}
    assert json.loads(invoke("status", env=env).stdout)["started"] is False
    assert invoke("status", "--format", "text", env=env).stdout.startswith("Started:         false\n")
    assert invoke("--format", "text", "status", env=env).stdout.startswith("Started:         false\n")
    wrong = invoke("status", env={**env, "GENERATE_SHARE_FORMAT": "yaml"})
    assert wrong.exit_code == 2 and "'yaml' is not one of 'text', 'json'" in wrong.stderr


def test_version_prints_the_package_version():
    """Print the installed package's version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"generate-share {importlib.metadata.version('generate-share')}\n"


# -- errors in JSON, exit codes ------------------------------------------------------------------


def test_errors_under_format_json_are_vaults_errors_object(server):
    """Print errors as {"errors": [...]} on stderr under --format json, with the text mode's exit code."""
    refused = invoke("status", "--format", "json", "--address", server.url)
    assert refused.exit_code == 1 and refused.stdout == ""
    errors = json.loads(refused.stderr)["errors"]
    assert len(errors) == 1 and "not initialized" in errors[0]
    unreachable = invoke("--format", "json", "--address", DEAD, "shares")
    assert unreachable.exit_code == 3
    assert json.loads(unreachable.stderr) == {
        "errors": [
            f"cannot reach the server at {DEAD}: Connection refused; check --address (or "
            "GENERATE_SHARE_ADDR) and that the service runs ('make run')"
        ]
    }
    usage = invoke("--format", "json", "nonsense")
    assert usage.exit_code == 2 and json.loads(usage.stderr)["errors"] == ["No such command 'nonsense'."]
    missing = invoke("init", "--shares", "5", "--format", "json", "--address", DEAD)
    assert missing.exit_code == 2 and "--threshold" in json.loads(missing.stderr)["errors"][0]
    text = invoke("status", "--address", server.url)
    assert text.exit_code == 1 and text.stderr.startswith("Error: ")


def test_ctrl_c_anywhere_exits_130_quietly(server, monkeypatch):
    """Exit 130, printing nothing, when interrupted mid-request."""

    def interrupted(*args, **kwargs):
        """Stand for Ctrl-C pressed while a request is on the wire."""
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "call", interrupted)
    result = invoke("status", "--address", server.url)
    assert result.exit_code == 130 and result.stdout == "" and result.stderr.strip() == ""


def _read_until(fd: int, marker: bytes, seen: bytearray) -> None:
    """Read a pty until marker appears (bounded by select's timeout, not by sleeping)."""
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"no {marker!r} within 30 s: {bytes(seen)!r}"
        chunk = os.read(fd, 4096)
        assert chunk, bytes(seen)
        seen += chunk


def test_ctrl_c_at_the_no_echo_prompt_exits_130(server):
    """Press Ctrl-C on a real terminal at the share prompt: exit 130, no traceback, no 'Aborted!'."""
    init_hex(server)
    assert invoke("start", "--address", server.url).exit_code == 0
    nonce = server.get(ATTEMPT).json()["nonce"]
    env = {**os.environ, "GENERATE_SHARE_ADDR": server.url}
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execve(str(SCRIPT), [str(SCRIPT), "update", "--nonce", nonce], env)  # noqa: S606 (a fixed argv)
    seen = bytearray()
    try:
        _read_until(fd, b"it is not shown):", seen)
        os.write(fd, b"\x03")  # the terminal turns ^C into SIGINT for the foreground process
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130, bytes(seen)
    assert b"Traceback" not in seen and b"Aborted" not in seen
    assert server.get(ATTEMPT).json()["progress"] == 0


def test_shell_completion_script_and_words():
    """Print a bash completion script, and complete a command name, as click does."""
    env = {**os.environ, "_GENERATE_SHARE_COMPLETE": "bash_source"}
    script = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, check=False)
    assert script.returncode == 0, script.stderr
    assert "_generate_share_completion()" in script.stdout
    assert "complete -o nosort -F _generate_share_completion generate-share" in script.stdout
    env = {
        **os.environ,
        "_GENERATE_SHARE_COMPLETE": "bash_complete",
        "COMP_WORDS": "generate-share sta",
        "COMP_CWORD": "1",
    }
    words = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, check=False)
    assert words.stdout.split() == ["plain,start", "plain,status"]


# -- messages name commands, not routes; cancel with nothing running ---------------------------


def test_server_sentences_name_commands_not_routes(server):
    """Say 'generate-share cancel' where the server says DELETE /v1/sys/generate-share/attempt."""
    before = invoke("status", "--address", server.url)
    assert "initialize it first with 'generate-share init'" in before.stderr and "/v1/" not in before.stderr
    init_hex(server)
    assert invoke("start", "--address", server.url).exit_code == 0
    twice = invoke("start", "--address", server.url)
    assert twice.exit_code == 1 and "cancel it with 'generate-share cancel'" in twice.stderr
    assert "DELETE" not in twice.stderr and "/v1/" not in twice.stderr
    adopting = invoke("adopt", "start", "--threshold", "3", "--address", server.url)
    assert adopting.exit_code == 1 and "/v1/" not in adopting.stderr


def test_cancel_with_nothing_running_says_so(server):
    """Say nothing was cancelled when no attempt ran, instead of claiming shares were discarded."""
    keys = init_hex(server)
    idle = invoke("cancel", "--address", server.url)
    assert idle.exit_code == 0
    assert idle.stdout == "No share generation attempt was in progress; nothing was cancelled.\n"
    assert invoke("cancel", "--address", server.url, "--format", "json").stdout == ""
    invoke("start", "--address", server.url)
    invoke("update", "--address", server.url, input=keys[0] + "\n")
    done = invoke("cancel", "--address", server.url)
    assert done.exit_code == 0 and "every submitted share was discarded" in done.stdout
    assert server.get(ATTEMPT).json()["started"] is False


def test_adopt_cancel_with_nothing_running_says_so(server):
    """Say nothing was cancelled when no adoption ran; cancel a running one as before."""
    idle = invoke("adopt", "cancel", "--address", server.url)
    assert idle.exit_code == 0
    assert idle.stdout == "No adoption was in progress; nothing was cancelled.\n"
    assert invoke("adopt", "start", "--threshold", "2", "--address", server.url).exit_code == 0
    done = invoke("adopt", "cancel", "--address", server.url)
    assert done.exit_code == 0 and "Adoption cancelled; every submitted share was discarded" in done.stdout
    assert server.get("/v1/sys/adopt/attempt").json()["started"] is False


# -- TLS: --ca-cert, and what REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE do ----------------------------


def _openssl(*args: str, cwd: Path) -> None:
    """Run openssl quietly, asserting success."""
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.fixture
def tls_front(server, tmp_path):
    """A TLS proxy with its own private CA in front of the real server; yields (url, CA file)."""
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=pki,
    )
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=pki,
    )
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
        cwd=pki,
    )

    class Forward(BaseHTTPRequestHandler):
        """Forward each request to the real server, as nginx in front of it would."""

        def _forward(self) -> None:
            """Send the request on and copy the reply back."""
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            r = requests.request(
                self.command,
                server.url + self.path,
                data=body or None,
                timeout=30,
                headers={"Content-Type": "application/json"},
            )
            self.send_response(r.status_code)
            self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_PUT = do_DELETE = _forward  # noqa: N815 (http.server's names)

        def log_message(self, *args) -> None:
            """Keep the test output quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", str(pki / "ca.pem")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_ca_cert_wins_over_the_ca_bundle_variables(tls_front):
    """Trust --ca-cert (or GENERATE_SHARE_CACERT) only; REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE are not read."""
    url, ca = tls_front
    wrong = {"REQUESTS_CA_BUNDLE": certifi.where(), "CURL_CA_BUNDLE": certifi.where()}
    for args in (["--ca-cert", ca, "shares"], ["shares", "--ca-cert", ca]):
        trusted = invoke("--address", url, "--format", "json", *args, env=wrong)
        assert trusted.exit_code == 1 and "not initialized" in json.loads(trusted.stderr)["errors"][0]
    from_env = invoke(
        "--address",
        url,
        "init",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--format",
        "json",
        env={**wrong, "GENERATE_SHARE_CACERT": ca},
    )
    assert from_env.exit_code == 0 and len(json.loads(from_env.stdout)["keys"]) == 3
    # The right CA in the environment's variables alone is not trusted: only --ca-cert is.
    right_env = {"REQUESTS_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca}
    refused = invoke("--address", url, "status", env=right_env)
    assert refused.exit_code == 3 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr.upper().replace(" ", "_")
    other_ca = invoke("--address", url, "status", "--ca-cert", certifi.where(), env=right_env)
    assert other_ca.exit_code == 3


# -- decode: from a file or stdin, and gpg's real reason ------------------------------------------


def _encrypt(home: Path, recipient: str, data: bytes, *armor: str) -> bytes:
    """Encrypt data to recipient with the keys of home."""
    return gpg_in(home, "--trust-model", "always", *armor, "--encrypt", "--recipient", recipient, stdin=data)


@pytest.mark.parametrize("form", ["base64 file", "binary file", "armored file", "stdin", "stdin armored"])
def test_decode_reads_a_file_or_stdin(keyring, tmp_path, form):
    """Decrypt a share given in a file (base64, binary or armored) or on stdin."""
    share = secrets.token_bytes(33)
    armored = "armored" in form
    message = _encrypt(
        keyring.home, keyring.fingerprint(keyring.RSA), share, *(["--armor"] if armored else [])
    )
    home = ["--gnupg-home", str(keyring.home), "--format", "json"]
    if form.startswith("stdin"):
        given = message.decode() if armored else base64.b64encode(message).decode() + "\n"
        result = invoke("decode", "--key-base64", "-", *home, input=given)
    else:
        path = tmp_path / "share"
        path.write_bytes(base64.b64encode(message) + b"\n" if form == "base64 file" else message)
        result = invoke("decode", "--key-file", str(path), *home)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key"] == share.hex()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the share once"),
        (["--key-base64", "AAAA", "--key-file", "/etc/hostname"], "give the share once"),
        (["--key-base64", "-", "--otp", "-"], "cannot both read stdin"),
        (["--key-base64", "-"], "standard input is empty"),
    ],
)
def test_decode_usage_errors(args, message):
    """Refuse (exit 2) a decode that gives the share twice, never, or reads stdin twice."""
    result = invoke("decode", *args, input="")
    assert result.exit_code == 2 and message in result.stderr


@pytest.fixture
def protected(tmp_path_factory):
    """A GnuPG home whose only key has a passphrase; yields (home, fingerprint); stops its agent."""
    home = tmp_path_factory.mktemp("pp")
    home.chmod(0o700)
    loopback = ("--pinentry-mode", "loopback", "--passphrase", "right passphrase")
    gpg_in(home, *loopback, "--quick-gen-key", "holder <h@example.org>", "ed25519", "cert", "0")
    listing = gpg_in(home, "--with-colons", "--list-keys").decode()
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    gpg_in(home, *loopback, "--quick-add-key", fingerprint, "cv25519", "encr", "0")
    yield home, fingerprint
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def test_decode_names_gpg_tty_when_pinentry_cannot_ask(protected, monkeypatch):
    """Say 'export GPG_TTY=$(tty)', not gpg's 'No secret key', when the passphrase could not be asked."""
    home, fingerprint = protected
    monkeypatch.delenv("GPG_TTY", raising=False)
    # As with no terminal for pinentry, deterministically: the agent may not ask at all.
    (home / "gpg.conf").write_text("pinentry-mode error\n")
    message = base64.b64encode(_encrypt(home, fingerprint, secrets.token_bytes(33))).decode()
    result = invoke("decode", "--key-base64", message, "--gnupg-home", str(home))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: gpg could not decrypt the share: pinentry could not ask for your key's passphrase "
        "(it found no terminal): run 'export GPG_TTY=$(tty)' in this terminal and try again.\n"
    )
    as_json = invoke("decode", "--key-base64", message, "--gnupg-home", str(home), "--format", "json")
    assert as_json.exit_code == 1 and "GPG_TTY" in json.loads(as_json.stderr)["errors"][0]


def test_decode_says_the_passphrase_was_wrong(protected):
    """Say the passphrase was wrong when gpg was given a wrong one."""
    home, fingerprint = protected
    (home / "gpg.conf").write_text("pinentry-mode loopback\npassphrase a wrong passphrase\n")
    message = base64.b64encode(_encrypt(home, fingerprint, secrets.token_bytes(33))).decode()
    result = invoke("decode", "--key-base64", message, "--gnupg-home", str(home))
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: gpg could not decrypt the share: the passphrase of your secret key was wrong.\n"
    )


def test_decode_without_the_secret_key_names_the_home_and_key(keyring, tmp_path):
    """Say which home lacks the secret key and which key ID the share is encrypted to."""
    message = _encrypt(keyring.home, keyring.fingerprint(keyring.RSA), secrets.token_bytes(33))
    empty = tmp_path / "g"
    empty.mkdir(mode=0o700)
    result = invoke("decode", "--key-base64", base64.b64encode(message).decode(), "--gnupg-home", str(empty))
    assert result.exit_code == 1
    key_id = keyring.encryption_subkey(keyring.RSA)[-16:].upper()
    assert result.stderr == (
        f"Error: gpg could not decrypt the share: no secret key in {empty} can decrypt it "
        f"(it is encrypted to the key ID {key_id}); use --gnupg-home for another home.\n"
    )


# -- update --output ------------------------------------------------------------------------------


def test_update_output_writes_the_encrypted_share_0600_never_over_a_file(server, keyring, tmp_path):
    """Write the completing update's encrypted share to a new 0600 file; refuse an existing one unsent."""
    keys = init_hex(server)
    key_file = tmp_path / "alice.asc"
    key_file.write_bytes(keyring.public_armored(keyring.RSA))
    url = ("--address", server.url)
    assert invoke("start", "--pgp-key", str(key_file), *url).exit_code == 0
    out = tmp_path / "new-share.b64"
    first = invoke("update", "--output", str(out), *url, input=keys[0] + "\n")
    assert first.exit_code == 0 and not out.exists()  # not complete: the empty file is removed

    existing = tmp_path / "existing"
    existing.write_text("keep me\n")
    refused = invoke("update", "--output", str(existing), *url, input=keys[1] + "\n")
    assert (
        refused.exit_code == 2 and "already exists" in refused.stderr and "nothing was sent" in refused.stderr
    )
    assert existing.read_text() == "keep me\n" and server.get(ATTEMPT).json()["progress"] == 1

    invoke("update", *url, input=keys[1] + "\n")
    last = invoke("update", "--output", str(out), *url, input=keys[2] + "\n")
    assert last.exit_code == 0, last.output
    assert f"Written to {out} (mode 600)" in last.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    b64 = re.search(r"generate-share decode --key-base64 (\S+)", last.stdout).group(1)
    assert out.read_text() == b64 + "\n"
    decoded = invoke("decode", "--key-file", str(out), "--gnupg-home", str(keyring.home), "--format", "json")
    new = bytes.fromhex(json.loads(decoded.stdout)["key"])
    assert shamir.combine([new, bytes.fromhex(keys[3]), bytes.fromhex(keys[4])]) == shamir.combine(
        [bytes.fromhex(k) for k in keys[:3]]
    )


def test_update_output_refuses_a_share_that_would_come_in_clear(server, tmp_path):
    """Refuse --output, before the share is asked, for an attempt that returns the new share in clear."""
    keys = init_hex(server, shares=2, threshold=2)
    invoke("start", "--address", server.url)
    invoke("update", "--address", server.url, input=keys[0] + "\n")
    out = tmp_path / "clear"
    refused = invoke("update", "--output", str(out), "--address", server.url, input=keys[1] + "\n")
    assert refused.exit_code == 2 and "only an encrypted or masked share" in refused.stderr
    assert not out.exists() and server.get(ATTEMPT).json()["progress"] == 1
    assert keys[1] not in refused.output


def test_make_dist_is_wired_to_python_build():
    """Keep 'make dist' building a wheel and an sdist with python -m build (run by hand: about 25 s)."""
    if shutil.which("make") is None:
        pytest.fail("make is needed to check the Makefile")
    plan = subprocess.run(
        ["make", "-n", "dist"], cwd=Path(__file__).parents[1], capture_output=True, text=True, check=False
    )
    assert plan.returncode == 0, plan.stderr
    assert "-m build --outdir dist ." in plan.stdout
