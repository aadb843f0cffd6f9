"""The operator CLI, driven against the real gunicorn server over HTTP."""

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import certifi
import pytest
import requests
from cli_runner import ok, run

from app import shamir
from app.cli import output as cli_output
from app.cli import prompts as cli_module
from gpgtools import gpg_in
from helpers import same_key
from server import Server, free_port

# Open mode: the CLI as the seed drove it; tests/test_cli_token.py drives it in token mode.
pytestmark = pytest.mark.ceremony_auth("open")

ATTEMPT = "/v1/sys/generate-share/attempt"
ADOPT = "/v1/sys/adopt/attempt"
SCRIPT = Path(sys.executable).parent / "generate-share"
# Vault's own split of a 32-byte key, 3 of 5 (x = 1 to 5).
VAULT = json.loads((Path(__file__).parent / "vectors" / "vault-shamir.json").read_text())["cases"][0]
PROMPT = "Your share (hex or base64; it is not shown)"


@pytest.fixture
def server(tmp_path):
    """A real server over a fresh data folder, killed at the end to skip gunicorn's keep-alive wait."""
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        yield s
        s.kill()


def init_json(server, shares=5, threshold=3) -> list[str]:
    """Initialize through the CLI in JSON mode and return the shares as hex."""
    out = ok(server.url, "--format", "json", "init", "--shares", str(shares), "--threshold", str(threshold))
    return json.loads(out.stdout)["keys"]


def test_a_pgp_ceremony_with_the_cli(server, keyring, tmp_path):
    """Walk a PGP ceremony: init, start --pgp-key, three updates, decode, shares."""
    keys = init_json(server)
    key_file = tmp_path / "alice.asc"
    key_file.write_bytes(keyring.public_armored(keyring.RSA))
    fingerprint = keyring.fingerprint(keyring.RSA)

    started = ok(server.url, "start", "--pgp-key", str(key_file)).stdout
    assert f"PGP fingerprint: {grouped(fingerprint)}\n" in started  # as gpg --fingerprint shows it

    outputs = []
    for i, key in enumerate(keys[:3]):
        result = ok(server.url, "update", input=key + "\n")
        outputs.append(result.output)
        assert grouped(fingerprint) in result.stderr  # shown before the share is asked for
        if i == 1:
            status = ok(server.url, "status").stdout
            assert "2 of 3 shares provided" in status
            assert grouped(fingerprint) in status
            nonce = server.get(ATTEMPT).json()["nonce"]
            assert nonce in status
    assert "Share accepted: 3 of 3 shares provided." in result.stdout
    assert "base64 -d | gpg --decrypt" in result.stdout
    for output in outputs:
        for key in keys:
            assert key not in output

    b64 = re.search(r"generate-share decode --key-base64 (\S+)", result.stdout).group(1)
    decoded = ok(server.url, "decode", "--key-base64", b64, "--gnupg-home", str(keyring.home)).stdout
    new = bytes.fromhex(re.search(r"Share \(hex\):\s+([0-9a-f]+)", decoded).group(1))
    old = [bytes.fromhex(k) for k in keys]
    assert shamir.combine([new, old[3], old[4]]) == shamir.combine(old[:3])

    table = ok(server.url, "shares").stdout
    assert "6 shares issued, threshold 3" in table
    row = next(line for line in table.splitlines() if "generate-share" in line)
    assert row.split()[0] == str(new[-1]) and row.endswith(f"  {grouped(fingerprint)}")  # as gpg shows it
    assert table.splitlines()[0].split() == [
        "INDEX",
        "ORIGIN",
        "ISSUED",
        "AT",
        "CUSTODY",
        "PGP",
        "FINGERPRINT",
    ]
    assert sum(" init " in line for line in table.splitlines()) == 5


def encryption_subkey(keyring, name: str) -> str:
    """Return the fingerprint of name's encryption subkey as gpg lists it, lowercase hex."""
    listing = gpg_in(
        keyring.home,
        "--with-colons",
        "--with-subkey-fingerprint",
        "--list-keys",
        keyring.fingerprint(name),
        stdin=b"",
    ).decode()
    records = [line.split(":") for line in listing.splitlines()]
    for record, following in zip(records, records[1:], strict=False):
        if record[0] == "sub" and "e" in record[11] and following[0] == "fpr":
            return following[9].lower()
    raise AssertionError(f"{name} lists no encryption subkey")


def grouped(fingerprint: str) -> str:
    """Return a 40-digit fingerprint as gpg --fingerprint shows it: 5 groups, two spaces, 5 groups."""
    groups = [fingerprint[i : i + 4].upper() for i in range(0, 40, 4)]
    return " ".join(groups[:5]) + "  " + " ".join(groups[5:])


def test_start_and_status_name_the_encryption_subkey(server, keyring, tmp_path):
    """Show the subkey the new share is encrypted to next to the primary fingerprint, and only then."""
    keys = init_json(server)
    ok(server.url, "start")
    assert "Encryption subkey" not in ok(server.url, "status").stdout + ok(server.url, "cancel").stdout
    key_file = tmp_path / "ecc.asc"
    key_file.write_bytes(keyring.public_armored(keyring.ECC))
    subkey = encryption_subkey(keyring, keyring.ECC)
    assert subkey != keyring.fingerprint(keyring.ECC)
    line = f"Encryption subkey: {grouped(subkey)}"

    started = ok(server.url, "start", "--pgp-key", str(key_file)).stdout.splitlines()
    at = started.index(line)
    assert started[at - 1] == "PGP fingerprint: " + grouped(keyring.fingerprint(keyring.ECC))
    status = ok(server.url, "status").stdout.splitlines()
    assert status[-1] == line and status[-2].startswith("PGP fingerprint: ")
    first = ok(server.url, "update", input=keys[0] + "\n")
    assert f"subkey {grouped(subkey)}" in first.stderr  # shown before the share is asked for


@pytest.mark.parametrize("reply", [{}, {"pgp_subkey_fingerprint": None}, {"pgp_subkey_fingerprint": ""}])
def test_a_reply_without_a_subkey_shows_no_subkey_line(reply):
    """Tolerate a server that does not name the subkey (older) or names none (no PGP key)."""
    assert cli_output.subkey_line(reply) is None


def test_the_console_script_runs_a_plain_ceremony(server):
    """Run an unencrypted ceremony through the installed console script."""
    env = {**os.environ, "GENERATE_SHARE_ADDR": server.url}

    def script(*args, input=None):
        """Run the console script, assert success, and return the finished process."""
        done = subprocess.run(
            [str(SCRIPT), *args], input=input, capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done

    keys = json.loads(script("--format", "json", "init", "--shares", "4", "--threshold", "2").stdout)["keys"]
    assert "Without --pgp-key" in script("start").stdout
    first = script("update", input=keys[0] + "\n")
    assert "1 of 2 shares provided" in first.stdout and keys[0] not in first.stdout + first.stderr
    last = script("update", input=keys[1] + "\n")
    assert keys[1] not in last.stderr
    new_hex = re.search(r"New share \(hex\):\s+([0-9a-f]+)", last.stdout).group(1)
    assert re.search(r"New share \(base64\):\s+\S+", last.stdout)
    assert "WARNING" in last.stdout
    assert same_key(new_hex, keys, 2)


def test_status_text_and_json(server):
    """Show progress as text, and the server's reply as is with --format json."""
    before = run(server.url, "status")
    assert before.exit_code == 1 and "not initialized" in before.stderr and before.stdout == ""
    keys = init_json(server)
    idle = ok(server.url, "status").stdout
    assert "Started:         false" in idle and "0 of 3 shares provided" in idle
    ok(server.url, "start")
    ok(server.url, "update", input=keys[0] + "\n")
    text = ok(server.url, "status").stdout
    assert "Started:         true" in text and "1 of 3 shares provided" in text
    assert "none (the new share will be returned unencrypted)" in text
    as_json = ok(server.url, "--format", "json", "status").stdout
    assert as_json.strip() == server.get(ATTEMPT).text.strip()
    assert json.loads(as_json)["progress"] == 1
    registry = ok(server.url, "--format", "json", "shares").stdout
    assert json.loads(registry) == server.get("/v1/sys/shares").json()


def test_server_refusals_exit_1_with_its_errors_on_stderr(server):
    """Exit 1 with the server's error on stderr, never repeating a share."""
    keys = init_json(server)
    again = run(server.url, "init", "--shares", "5", "--threshold", "3")
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr.startswith("Error: ") and "already initialized" in again.stderr
    no_attempt = run(server.url, "update", input=keys[0] + "\n")
    assert no_attempt.exit_code == 1 and "no share generation attempt is in progress" in no_attempt.stderr
    assert keys[0] not in no_attempt.output
    ok(server.url, "start")
    twice = run(server.url, "start")
    assert twice.exit_code == 1 and "already in progress" in twice.stderr
    ok(server.url, "update", input=keys[0] + "\n")
    duplicate = run(server.url, "update", input=keys[0] + "\n")
    assert duplicate.exit_code == 1 and "already submitted" in duplicate.stderr
    assert keys[0] not in duplicate.output
    bad = run(server.url, "update", input="zz" + keys[1][2:] + "\n")
    assert bad.exit_code == 1 and sum(line.startswith("Error: ") for line in bad.stderr.splitlines()) == 1
    assert keys[1][2:] not in bad.output


def test_an_unreachable_server_exits_3_with_one_line(tmp_path):
    """Exit 3 with one line when nothing listens or TLS fails."""
    url = f"http://127.0.0.1:{free_port()}"
    result = run(url, "status")
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == (
        f"Error: cannot reach the server at {url}: Connection refused; check --address (or "
        "GENERATE_SHARE_ADDR) and that the service runs ('make run')\n"
    )
    # TLS to a plain-HTTP server: still one line, exit 3, with the CA given for the proxy.
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as s:
        tls = run(s.url.replace("http://", "https://"), "--ca-cert", certifi.where(), "shares")
    assert tls.exit_code == 3 and len(tls.stderr.splitlines()) == 1
    assert "cannot reach the server at https://" in tls.stderr


def test_the_ca_cert_and_share_limit_reach_requests(server, monkeypatch):
    """Verify TLS with --ca-cert and send share_limit only when it is given."""
    sent = []
    real = requests.Session.request

    def spy(self, method, url, **kwargs):
        """Record what a request carries, then send it to the real server."""
        sent.append((self.verify, kwargs.get("json")))
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    result = run(server.url, "--ca-cert", certifi.where(), "init", "--shares", "3", "--threshold", "2")
    assert result.exit_code == 0
    assert sent[-1] == (certifi.where(), {"secret_shares": 3, "secret_threshold": 2})
    run(server.url, "init", "--shares", "3", "--threshold", "2", "--share-limit", "9")
    assert sent[-1] == (True, {"secret_shares": 3, "secret_threshold": 2, "share_limit": 9})


@pytest.mark.parametrize(
    "args",
    [
        ["init", "--shares", "five", "--threshold", "3"],
        ["init", "--shares", "5"],
        ["--format", "xml", "status"],
        ["nonsense"],
        ["decode", "--key-base64", "not base64!"],
        ["start", "--pgp-key", "/nonexistent/key.asc"],
        ["init", "--shares", "2", "--threshold", "2", "--pgp-keys", "a.asc,"],
        ["adopt", "start"],
        ["adopt", "start", "--threshold", "three"],
        ["adopt", "start", "--threshold", "3", "--known", "17,x"],
        ["adopt", "start", "--threshold", "3", "--known", "17,,90"],
        ["adopt", "start", "--threshold", "3", "--known", "-4"],
        ["shares", "--since"],
        ["verify", "extra-argument"],
    ],
)
def test_usage_errors_exit_2(args):
    """Exit 2 with an error on stderr for a command line that makes no sense."""
    result = run(f"http://127.0.0.1:{free_port()}", *args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr and result.stdout == ""


def test_an_address_without_scheme_and_an_empty_share_exit_2(server):
    """Exit 2 for an address without http:// and for an empty share."""
    assert run("127.0.0.1:8200", "status").exit_code == 2
    init_json(server)
    ok(server.url, "start")
    empty = run(server.url, "update", input="\n")
    assert empty.exit_code == 2 and "no share was given" in empty.stderr


def test_cancel_forgets_the_attempt(server):
    """Cancel an attempt with a submitted share and see it gone."""
    keys = init_json(server)
    ok(server.url, "start")
    ok(server.url, "update", input=keys[0] + "\n")
    assert "cancelled" in ok(server.url, "cancel").stdout
    status = ok(server.url, "status").stdout
    assert "Started:         false" in status and "0 of 3 shares provided" in status
    assert ok(server.url, "--format", "json", "cancel").stdout == ""  # 204: nothing to print


def test_init_with_binary_and_armored_pgp_keys(server, keyring, tmp_path):
    """Encrypt init's shares to a binary and an armored key; decrypt and use them."""
    binary, armored = tmp_path / "rsa.gpg", tmp_path / "ecc.asc"
    binary.write_bytes(keyring.public_binary(keyring.RSA))
    armored.write_bytes(keyring.public_armored(keyring.ECC))
    out = ok(
        server.url, "init", "--shares", "2", "--threshold", "2", "--pgp-keys", f"{binary},{armored}"
    ).stdout
    fingerprints = [keyring.fingerprint(keyring.RSA), keyring.fingerprint(keyring.ECC)]
    encrypted = re.findall(r"Share \d \(encrypted to ([0-9A-F ]+), base64\): (\S+)", out)
    assert [fp for fp, _ in encrypted] == [grouped(fp) for fp in fingerprints]  # as gpg shows them
    assert "WARNING: distribute these shares now" in out and "generate-share decode" in out

    shares = []
    for _, b64 in encrypted:
        decoded = ok(
            server.url, "--format", "json", "decode", "--key-base64", b64, "--gnupg-home", str(keyring.home)
        )
        shares.append(json.loads(decoded.stdout)["key"])
    # The decrypted shares are the real ones: together they pass the server's verifier.
    ok(server.url, "start")
    ok(server.url, "update", input=shares[0] + "\n")
    last = ok(server.url, "--format", "json", "update", input=shares[1] + "\n")
    assert json.loads(last.stdout)["complete"] is True

    table = ok(server.url, "shares").stdout
    assert all(grouped(fp) in table for fp in fingerprints) and "3 shares issued, threshold 2" in table


def test_decode_failure_is_one_line(keyring, tmp_path):
    """Report a failed decryption (no secret key for the message) in one line with exit 1."""
    message = gpg_in(
        keyring.home,
        "--trust-model",
        "always",
        "--encrypt",
        "--recipient",
        keyring.fingerprint(keyring.RSA),
        stdin=secrets.token_bytes(33),
    )
    empty_home = tmp_path / "g"
    empty_home.mkdir(mode=0o700)
    b64 = base64.b64encode(message).decode("ascii")
    result = run("http://127.0.0.1:1", "decode", "--key-base64", b64, "--gnupg-home", str(empty_home))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: gpg could not decrypt the share: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind", ["literal", "armored literal", "symmetric", "not OpenPGP"])
def test_decode_refuses_what_is_not_encrypted_to_a_public_key(keyring, kind):
    """Refuse, printing no share, a message that anyone could have made without the holder's key."""
    planted = secrets.token_bytes(33)  # what a sender would like the holder to take as a share
    if kind == "literal":
        message = gpg_in(keyring.home, "--store", stdin=planted)
    elif kind == "armored literal":
        message = gpg_in(keyring.home, "--armor", "--store", stdin=planted)
    elif kind == "symmetric":
        message = gpg_in(
            keyring.home,
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "known to the sender",
            "--no-symkey-cache",
            "--symmetric",
            stdin=planted,
        )
    else:
        message = planted
    b64 = base64.b64encode(message).decode("ascii")
    result = run("http://127.0.0.1:1", "decode", "--key-base64", b64, "--gnupg-home", str(keyring.home))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: --key-base64 does not hold a share encrypted to your key. ")
    assert "encrypted to a public key" in result.stderr and len(result.stderr.splitlines()) == 1
    assert planted.hex() not in result.output and "Share (hex)" not in result.output


def test_a_share_typed_at_the_prompt_is_not_echoed(server, monkeypatch):
    """Ask a share on a terminal without echoing it anywhere."""
    keys = init_json(server)
    ok(server.url, "start")
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    # On a terminal, without --nonce, the holder first confirms the attempt shown.
    result = ok(server.url, "update", input="y\n" + keys[2] + "\n")
    assert "the nonce the lead announced? [y/N]" in result.stderr
    assert "Your share (hex or base64; it is not shown)" in result.stderr
    assert keys[2] not in result.output
    assert "1 of 3 shares provided" in result.stdout


def flip_first_byte(share_hex: str) -> str:
    """Return the share with its first y byte changed (its x stays)."""
    return f"{int(share_hex[:2], 16) ^ 0xFF:02x}" + share_hex[2:]


def custody_of(table: str, x: int) -> str:
    """Return the CUSTODY cell of the row for x in the shares table."""
    header, *lines = table.splitlines()
    start, end = header.index("CUSTODY"), header.index("PGP FINGERPRINT")
    row = next(line for line in lines if line.split() and line.split()[0] == str(x))
    return row[start:end].strip()


def test_adopt_a_vault_set_then_mint_a_share_of_its_key(server, monkeypatch):
    """Adopt 4 of Vault's 5 shares (naming the fifth), then mint a share that unseals with old ones."""
    shares, secret_hex = VAULT["shares_hex"], VAULT["secret_hex"]
    started = ok(server.url, "adopt", "start", "--threshold", "3", "--required", "4", "--known", "5").stdout
    nonce = server.get(ADOPT).json()["nonce"]
    assert "Adoption started." in started and nonce in started and "0 of 4 shares provided" in started
    assert "Known x:   5" in started

    outputs = []
    for i, share in enumerate(shares[:4]):
        if i == 1:  # a holder at a terminal: asked without echo
            monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
        confirmed = "y\n" if i == 1 else ""  # a terminal without --nonce confirms the adoption shown
        result = ok(server.url, "adopt", "update", input=confirmed + share + "\n")
        monkeypatch.undo()
        outputs.append(result.output)
        assert f"Adoption {nonce}: {i} of 4 shares provided, threshold 3" in result.stderr
        if i == 1:
            assert PROMPT in result.stderr
            status = ok(server.url, "adopt", "status").stdout
            assert "Started:   true" in status and "2 of 4 shares provided" in status
            assert "Threshold: 3" in status and nonce in status
    for output in outputs:
        assert not any(share in output for share in shares)
    last = result.stdout
    assert "Share accepted: 4 of 4 shares provided." in last
    assert "The share set is adopted" in last and "Recorded as adopted: x = 1, 2, 3, 4, 5" in last
    assert (
        "before relying on a share made here, unseal a test standby or a restored snapshot "
        "with it and t-1 old shares (2 here)" in last
    )
    assert "Started:   false" in ok(server.url, "adopt", "status").stdout

    table = ok(server.url, "shares").stdout
    assert "5 shares issued, threshold 3; 4 verifiable, 0 verified" in table
    assert custody_of(table, 5) == "not verifiable" and custody_of(table, 1) == "never verified"
    assert sum(" adopted " in line for line in table.splitlines()) == 5

    # A generate-share ceremony with three of the adopted shares, through the existing commands.
    ok(server.url, "start")
    for share in shares[:3]:
        result = ok(server.url, "update", input=share + "\n")
    new = bytes.fromhex(re.search(r"New share \(hex\):\s+([0-9a-f]+)", result.stdout).group(1))
    assert new[-1] not in range(1, 6)
    # The new share with two shares that never took part in the ceremony (x = 5 never
    # reached the service at all) rebuilds Vault's own key.
    assert shamir.combine([new, bytes.fromhex(shares[3]), bytes.fromhex(shares[4])]).hex() == secret_hex
    assert "6 shares issued, threshold 3; 5 verifiable, 0 verified" in ok(server.url, "shares").stdout


def test_adopt_status_cancel_and_what_start_sends(server, monkeypatch):
    """Show an adoption's status as text and JSON, cancel it, and send only the options given."""
    idle = ok(server.url, "adopt", "status").stdout
    assert "Started:   false" in idle and "Progress:  -" in idle and "Nonce:     -" in idle
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    none = run(server.url, "adopt", "update", input=VAULT["shares_hex"][0] + "\n")
    assert none.exit_code == 1 and "no adoption is in progress" in none.stderr
    assert PROMPT not in none.output and VAULT["shares_hex"][0] not in none.output  # stopped before asking
    monkeypatch.undo()

    sent = []
    real = requests.Session.request

    def spy(self, method, url, **kwargs):
        """Record the body of each request, then send it to the real server."""
        sent.append(kwargs.get("json"))
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    as_json = ok(server.url, "--format", "json", "adopt", "start", "--threshold", "3").stdout
    assert sent[-1] == {"secret_threshold": 3}
    assert json.loads(as_json) == server.get(ADOPT).json() and json.loads(as_json)["required"] == 4
    twice = run(
        server.url, "adopt", "start", "--threshold", "2", "--known", "17, 90,201", "--share-limit", "9"
    )
    assert sent[-1] == {"secret_threshold": 2, "known_indices": [17, 90, 201], "share_limit": 9}
    assert twice.exit_code == 1 and "already in progress" in twice.stderr and twice.stdout == ""

    ok(server.url, "adopt", "update", input=VAULT["shares_hex"][0] + "\n")
    assert "1 of 4 shares provided" in ok(server.url, "adopt", "status").stdout
    assert (
        ok(server.url, "--format", "json", "adopt", "status").stdout.strip() == server.get(ADOPT).text.strip()
    )
    assert "Adoption cancelled" in ok(server.url, "adopt", "cancel").stdout
    assert "Started:   false" in ok(server.url, "adopt", "status").stdout
    assert ok(server.url, "--format", "json", "adopt", "cancel").stdout == ""  # 204: nothing to print


def test_an_inconsistent_set_is_refused_and_progress_resets(server):
    """Refuse a set with one mistyped share: exit 1, the server's error, no share shown."""
    shares = VAULT["shares_hex"]
    wrong = flip_first_byte(shares[3])
    ok(server.url, "adopt", "start", "--threshold", "3")
    for share in shares[:3]:
        ok(server.url, "adopt", "update", input=share + "\n")
    refused = run(server.url, "adopt", "update", input=wrong + "\n")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("Error: ") == 1 and "Error: the 4 shares are not consistent" in refused.stderr
    assert wrong not in refused.output and wrong[2:-2] not in refused.output
    status = ok(server.url, "adopt", "status").stdout
    assert "Started:   true" in status and "0 of 4 shares provided" in status


def test_verify_a_share_alone(server, monkeypatch):
    """Say VALID (exit 0) for an issued share, NOT VALID (exit 1) for a changed one, never echo it."""
    keys = init_json(server)
    valid = ok(server.url, "verify", input=keys[0] + "\n")
    x = int(keys[0][-2:], 16)
    assert re.fullmatch(
        rf"VALID: share x = {x} \(origin init, issued \S+Z, verified now at \S+Z\)\n", valid.stdout
    )
    assert keys[0] not in valid.output

    changed = run(server.url, "verify", input=flip_first_byte(keys[1]) + "\n")
    assert changed.exit_code == 1 and changed.stderr == ""
    x1 = int(keys[1][-2:], 16)
    assert changed.stdout.startswith(f"NOT VALID: this is not the share the service recorded at x = {x1}.\n")
    assert flip_first_byte(keys[1]) not in changed.output and keys[1][2:-2] not in changed.output

    malformed = run(server.url, "verify", input="zz" + keys[1][2:] + "\n")
    assert malformed.exit_code == 1 and malformed.stdout == ""
    assert malformed.stderr.startswith("Error: key ") and len(malformed.stderr.splitlines()) == 1
    assert keys[1][2:] not in malformed.output
    assert run(server.url, "verify", input="\n").exit_code == 2

    as_json = ok(server.url, "--format", "json", "verify", input=keys[1] + "\n").stdout
    assert json.loads(as_json)["valid"] is True and json.loads(as_json)["index"] == int(keys[1][-2:], 16)
    not_json = run(server.url, "--format", "json", "verify", input=flip_first_byte(keys[1]) + "\n")
    assert not_json.exit_code == 1 and json.loads(not_json.stdout)["valid"] is False

    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    typed = ok(server.url, "verify", input=keys[2] + "\n")
    assert PROMPT in typed.stderr and typed.stdout.startswith("VALID: ")
    assert keys[2] not in typed.output


def test_shares_shows_custody_and_counts_since(server):
    """Show a custody column and the counts, and pass --since to the server."""
    keys = init_json(server)
    ok(server.url, "verify", input=keys[0] + "\n")
    x0, x1 = int(keys[0][-2:], 16), int(keys[1][-2:], 16)
    table = ok(server.url, "shares").stdout
    when = server.get("/v1/sys/shares").json()
    verified_at = next(s["verified_at"] for s in when["shares"] if s["index"] == x0)
    assert custody_of(table, x0) == f"verified {verified_at}" and custody_of(table, x1) == "never verified"
    assert table.splitlines()[-1] == "5 shares issued, threshold 3; 5 verifiable, 1 verified"

    past = ok(server.url, "shares", "--since", "2000-01-01T00:00:00Z").stdout.splitlines()[-1]
    assert past == "5 shares issued, threshold 3; 5 verifiable, 1 verified since 2000-01-01T00:00:00Z"
    future = ok(server.url, "shares", "--since", "2999-01-01T00:00:00+02:00").stdout.splitlines()[-1]
    assert future == "5 shares issued, threshold 3; 5 verifiable, 0 verified since 2998-12-31T22:00:00Z"
    as_json = ok(server.url, "--format", "json", "shares", "--since", "2000-01-01T00:00:00Z").stdout
    assert json.loads(as_json) == server.get("/v1/sys/shares?since=2000-01-01T00:00:00Z").json()
    bad = run(server.url, "shares", "--since", "yesterday")
    assert bad.exit_code == 1 and "since must be an RFC 3339 time" in bad.stderr and bad.stdout == ""
