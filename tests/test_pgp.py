"""app.pgp against the real gpg binary: parsing, encryption, refusals, hygiene."""

import base64
import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import gnupg
import pytest

from app.pgp import (
    PGPError,
    PGPUnavailable,
    PublicKey,
    encrypt,
    keys,
    load_public_key,
    packets,
    runner,
)
from gpgtools import Keyring

ENCRYPTING = (Keyring.RSA, Keyring.ECC)
FORMS = ("public_binary", "public_armored")


def a_share() -> bytes:
    """Return 33 random bytes, the size of a share, unlikely to occur by chance."""
    return os.urandom(33)


def traces(secret: bytes) -> list[str]:
    """Return the textual forms a leaked secret could take in a log or message."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        repr(secret)[2:-1],
    ]


def processes_for(home: str) -> str:
    """Return the command lines of processes that mention home."""
    return subprocess.run(["pgrep", "-af", home], capture_output=True, text=True, check=False).stdout


@pytest.fixture
def homes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every temporary directory app.pgp creates."""
    created: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        home = real_mkdtemp(*args, **kwargs)
        assert os.stat(home).st_mode & 0o777 == 0o700
        created.append(home)
        return home

    monkeypatch.setattr(runner.tempfile, "mkdtemp", mkdtemp)
    return created


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", ENCRYPTING)
def test_load_public_key_reads_binary_and_armored(keyring: Keyring, name: str, form: str) -> None:
    data = getattr(keyring, form)(name)
    key = load_public_key(data)
    assert key.fingerprint == keyring.fingerprint(name)
    assert key.fingerprint == key.fingerprint.lower() and len(key.fingerprint) == 40
    assert key.data == data


@pytest.mark.parametrize("name", ENCRYPTING)
def test_encrypt_gives_a_binary_message_the_key_decrypts(keyring: Keyring, name: str) -> None:
    share = a_share()
    message = encrypt(share, load_public_key(keyring.public_armored(name)))
    assert isinstance(message, bytes)
    assert not message.startswith(b"-----BEGIN")
    assert message[0] & 0x80, "an OpenPGP packet header has its top bit set"
    assert share not in message
    assert keyring.decrypt(message) == share


def test_encrypt_takes_a_bytearray(keyring: Keyring) -> None:
    share = bytearray(a_share())
    message = encrypt(share, load_public_key(keyring.public_binary(Keyring.ECC)))
    assert keyring.decrypt(message) == share


REFUSALS = [
    pytest.param(lambda ring: b"", "is empty", id="empty"),
    pytest.param(lambda ring: b"not a key at all\n" * 4, "not OpenPGP data", id="text"),
    pytest.param(lambda ring: bytes(range(256)) * 2, "not OpenPGP data", id="binary-garbage"),
    pytest.param(
        lambda ring: b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
        "not OpenPGP data",
        id="broken-armor",
    ),
    pytest.param(
        lambda ring: ring.public_binary(Keyring.RSA) + ring.public_binary(Keyring.ECC),
        "holds 2 keys",
        id="two-keys",
    ),
    pytest.param(
        lambda ring: ring.public_armored(Keyring.ECC) + ring.public_armored(Keyring.RSA),
        "holds 2 keys",
        id="two-armored-keys",
    ),
    pytest.param(
        lambda ring: ring.secret_armored(Keyring.ECC),
        "secret key material",
        id="secret-key",
    ),
    pytest.param(
        lambda ring: ring.public_armored(Keyring.RSA) + ring.secret_armored(Keyring.ECC),
        "secret key material",
        id="public-then-secret",
    ),
    pytest.param(
        lambda ring: ring.public_binary(Keyring.SIGN_ONLY),
        "cannot encrypt",
        id="sign-only",
    ),
    pytest.param(lambda ring: ring.public_binary(Keyring.EXPIRED), "has expired", id="expired"),
    pytest.param(
        lambda ring: ring.public_armored(Keyring.REVOKED),
        "has been revoked",
        id="revoked",
    ),
]


@pytest.mark.parametrize(("make", "reason"), REFUSALS)
def test_load_public_key_refuses(keyring: Keyring, homes: list[str], make, reason: str) -> None:
    with pytest.raises(PGPError, match=reason) as caught:
        load_public_key(make(keyring))
    message = str(caught.value)
    # One whole sentence for an HTTP client: capitalised, ends with a period,
    # says what is expected, and names no server path.
    assert message[0].isupper() and message.endswith(".")
    assert "expected" in message or "gpg --export" in message
    assert tempfile.gettempdir() not in message and "gnupg" not in message.lower()
    assert all(not os.path.exists(home) for home in homes)


@pytest.mark.parametrize("name", (Keyring.EXPIRED, Keyring.REVOKED, Keyring.SIGN_ONLY))
def test_encrypt_refuses_a_key_that_cannot_encrypt(keyring: Keyring, name: str) -> None:
    # As if the key had been loaded while still valid, then expired or was revoked.
    key = PublicKey(
        fingerprint=keyring.fingerprint(name),
        subkey_fingerprint=keyring.encryption_subkey(name),
        data=keyring.public_binary(name),
    )
    share = a_share()
    with pytest.raises(PGPError, match="can no longer be used to encrypt") as caught:
        encrypt(share, key)
    assert not any(trace in repr(caught.value) for trace in traces(share))


def test_encrypt_blames_gpg_for_a_key_that_does_not_import_as_loaded(
    keyring: Keyring,
) -> None:
    forged = PublicKey(
        fingerprint=keyring.fingerprint(Keyring.RSA),
        subkey_fingerprint=keyring.encryption_subkey(Keyring.RSA),
        data=keyring.public_binary(Keyring.ECC),
    )
    with pytest.raises(PGPUnavailable, match="failed to import"):
        encrypt(a_share(), forged)


@pytest.fixture
def daemons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record, per GnuPG home, the processes alive before and after app.pgp stops them."""
    seen: list[tuple[str, str]] = []
    real_stop = runner._stop_daemons

    def stop(home: str) -> None:
        # Look before the home is removed: gpg-agent also quits by itself once
        # its socket is deleted, which would hide an agent left running.
        before = processes_for(home)
        real_stop(home)
        seen.append((before, processes_for(home)))

    monkeypatch.setattr(runner, "_stop_daemons", stop)
    return seen


def test_no_home_or_process_is_left_behind(keyring: Keyring, homes: list[str], daemons) -> None:
    key = load_public_key(keyring.public_binary(Keyring.ECC))
    encrypt(a_share(), key)
    key.close()
    # A secret key would make gpg start an agent: it is refused before any home exists.
    with pytest.raises(PGPError):
        load_public_key(keyring.secret_armored(Keyring.RSA))
    assert len(homes) == 1
    for home in homes:
        assert os.path.dirname(home) == (runner._home_root or tempfile.gettempdir())
        assert not os.path.exists(home)
        assert processes_for(home) == ""
    assert daemons == [("", "")], "gpg started a daemon"


def test_a_loaded_key_keeps_one_home_until_closed(keyring: Keyring, homes: list[str], daemons) -> None:
    key = load_public_key(keyring.public_binary(Keyring.ECC))
    [home] = homes
    assert os.path.isdir(home) and not key.closed
    shares = [a_share() for _ in range(3)]
    messages = [encrypt(share, key) for share in shares]
    assert homes == [home], "encrypt made a home of its own"
    key.close()
    assert key.closed and not os.path.exists(home) and processes_for(home) == ""
    key.close()  # a second close does nothing
    assert daemons == [("", "")], "the home was not removed exactly once"
    assert [keyring.decrypt(m) for m in messages] == shares
    # A closed key still encrypts, through a throw-away home.
    share = a_share()
    assert keyring.decrypt(encrypt(share, key)) == share
    assert len(homes) == 2 and not any(os.path.exists(h) for h in homes)


def test_a_dropped_key_leaves_no_home(keyring: Keyring, homes: list[str], daemons) -> None:
    key = load_public_key(keyring.public_binary(Keyring.RSA))
    encrypt(a_share(), key)
    [home] = homes
    del key
    gc.collect()
    assert not os.path.exists(home) and processes_for(home) == ""
    assert daemons == [("", "")]


def test_a_key_alive_at_exit_leaves_no_home(keyring: Keyring, tmp_path: Path) -> None:
    # The process ends without closing the key: the finalizer removes the home at exit.
    script = (
        "import sys, tempfile\n"
        "from app import pgp\n"
        "key = pgp.load_public_key(sys.stdin.buffer.read())\n"
        "assert tempfile.gettempdir() == sys.argv[1]\n"
        "print(len(pgp.encrypt(b'share', key)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        input=keyring.public_binary(Keyring.ECC),
        capture_output=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    assert int(completed.stdout) > 0
    assert list(tmp_path.iterdir()) == []


def test_a_ceremony_runs_gpg_twice(keyring: Keyring, monkeypatch) -> None:
    # Each gpg start costs milliseconds: load (one import that lists) and one encrypt, plus
    # python-gnupg's --list-config probe the first time a gpg binary is used.
    runs: list[str] = []
    real_open = gnupg.GPG._open_subprocess

    def counting(self, args, *rest, **kwargs):
        runs.append(next(a for a in args if a.startswith("--") and a != "--dry-run"))
        return real_open(self, args, *rest, **kwargs)

    monkeypatch.setattr(gnupg.GPG, "_open_subprocess", counting)
    monkeypatch.setattr(runner, "_PROBED", {})
    for expected in (
        ["--list-config", "--import-options", "--encrypt"],
        ["--import-options", "--encrypt"],
    ):
        runs.clear()
        key = load_public_key(keyring.public_binary(Keyring.ECC))
        share = a_share()
        assert keyring.decrypt(encrypt(share, key)) == share
        key.close()
        assert runs == expected


def test_an_agent_that_did_start_is_stopped(keyring: Keyring, daemons, monkeypatch) -> None:
    # An agent in a home (gpg starts one for a secret key without --no-autostart;
    # here it is launched outright, so a slow start cannot leave the home without
    # one): the cleanup must stop it. The home is a short path in the temporary
    # folder, whatever an earlier test set as the root: an agent's socket path
    # must fit in 108 bytes.
    monkeypatch.setattr(runner, "_home_root", None)
    with runner._gnupg() as gpg:
        subprocess.run(["gpgconf", "--homedir", gpg.gnupghome, "--launch", "gpg-agent"], check=True)
    [(before, after)] = daemons
    assert "gpg-agent" in before
    assert after == ""


def test_the_share_never_reaches_the_disk(keyring: Keyring, monkeypatch) -> None:
    share = a_share()
    scanned: list[Path] = []
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        for file in Path(path).rglob("*"):
            if file.is_file():
                assert share not in file.read_bytes(), f"{file.name} holds the share"
                scanned.append(file)
        return real_rmtree(path, *args, **kwargs)

    def no_temporary_file(*args, **kwargs):
        raise AssertionError("python-gnupg wrote a temporary file")

    key = load_public_key(keyring.public_binary(Keyring.RSA))
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_file)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_temporary_file)
    message = encrypt(share, key)
    key.close()  # the key's own home, used by encrypt
    assert scanned, "the GnuPG home was not inspected before removal"
    # A closed key encrypts through a throw-away home: inspected too.
    scanned.clear()
    assert keyring.decrypt(encrypt(share, key)) == share
    assert scanned, "the throw-away GnuPG home was not inspected before removal"
    assert keyring.decrypt(message) == share


@pytest.mark.parametrize("gnupg_level", [None, logging.DEBUG], ids=["as-configured", "gnupg-forced-to-debug"])
def test_the_share_never_reaches_the_logs(keyring: Keyring, caplog, gnupg_level) -> None:
    key = load_public_key(keyring.public_binary(Keyring.ECC))
    share = a_share()
    caplog.set_level(logging.DEBUG)
    if gnupg_level is None:
        assert logging.getLogger("gnupg").getEffectiveLevel() == logging.WARNING
    else:
        # Even if someone turns python-gnupg's own debug logging on, it logs no share.
        caplog.set_level(gnupg_level, logger="gnupg")
    message = encrypt(share, key)
    text = caplog.text + "".join(repr(record.args) + record.getMessage() for record in caplog.records)
    assert not any(trace in text for trace in traces(share))
    assert share.decode("latin-1") not in text
    if gnupg_level is not None:
        assert any(record.name == "gnupg" for record in caplog.records), "nothing was captured"
    assert keyring.decrypt(message) == share


def test_missing_gpg_is_reported_with_the_fix(keyring: Keyring, monkeypatch, tmp_path) -> None:
    key = load_public_key(keyring.public_binary(Keyring.ECC))
    key.close()  # encrypt must find gpg again
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no gpg anywhere
    with pytest.raises(PGPUnavailable, match=r"apt-get install gnupg"):
        load_public_key(keyring.public_binary(Keyring.ECC))
    with pytest.raises(PGPUnavailable, match=r"apt-get install gnupg"):
        encrypt(a_share(), key)


@pytest.mark.parametrize("failing", ["--list-config", "--import", "--encrypt"])
def test_gpg_failing_is_the_servers_fault(
    keyring: Keyring, homes: list[str], monkeypatch, tmp_path, failing
) -> None:
    # A gpg that breaks down at one step, as on a full disk, and says nothing useful.
    fake = tmp_path / "gpg"
    fake.write_text(
        f'#!/bin/sh\ncase " $* " in *" {failing} "*) exit 2;; esac\nexec {shutil.which("gpg")} "$@"\n'
    )
    fake.chmod(0o755)
    # Built by hand, the key has no home: encrypt runs every step with the fake gpg.
    key = PublicKey(
        fingerprint=keyring.fingerprint(Keyring.ECC),
        subkey_fingerprint=keyring.encryption_subkey(Keyring.ECC),
        data=keyring.public_binary(Keyring.ECC),
    )
    monkeypatch.setattr(runner.shutil, "which", lambda name: str(fake) if name == "gpg" else None)
    if failing != "--encrypt":
        with pytest.raises(PGPUnavailable):
            load_public_key(keyring.public_binary(Keyring.ECC))
    else:
        # Loading works; encrypting in the key's own home fails.
        loaded = load_public_key(keyring.public_binary(Keyring.ECC))
        with pytest.raises(PGPUnavailable):
            encrypt(a_share(), loaded)
        loaded.close()
    with pytest.raises(PGPUnavailable):
        encrypt(a_share(), key)
    assert homes and all(not os.path.exists(home) for home in homes)


def recipients(message: bytes) -> list[str]:
    """Return the key IDs (lowercase hex) a binary message's session-key packets name."""
    ids, position = [], 0
    data = packets._dearmored(message, "")
    for tag, length in packets._packets(data, ""):
        first, octet = data[position], data[position + 1]
        if first & 0x40:  # new format: one, two or five length octets
            header = 1 + (1 if octet < 192 else 2 if octet < 224 else 5)
        else:  # old format: the low two bits say 1, 2 or 4 length octets
            header = 1 + (1 << (first & 3))
        if tag == 1:
            body = data[position + header : position + header + length]
            assert body[0] == 3, "a version 3 public-key encrypted session key"
            ids.append(body[1:9].hex())
        else:
            break
        position += header + length
    return ids


@pytest.mark.parametrize("name", ENCRYPTING)
def test_the_encryption_subkey_is_named_and_used(keyring: Keyring, name: str) -> None:
    key = load_public_key(keyring.public_binary(name))
    [subkey] = keyring.subkey_fingerprints(name)
    assert key.subkey_fingerprint == subkey != key.fingerprint
    assert recipients(encrypt(a_share(), key)) == [subkey[-16:]]
    key.close()


def test_a_rotated_key_encrypts_to_its_newest_valid_subkey(keyring: Keyring) -> None:
    # Subkeys from 2021 (superseded), 2022 (valid) and 2023 (revoked): the 2022 one is used.
    old, current, revoked = keyring.subkey_fingerprints(Keyring.ROTATED)
    key = load_public_key(keyring.public_armored(Keyring.ROTATED))
    assert key.subkey_fingerprint == current
    share = a_share()
    message = encrypt(share, key)
    assert recipients(message) == [current[-16:]]
    assert keyring.decrypt(message) == share
    key.close()
    # Closed, the key still encrypts to that subkey, through a throw-away home.
    assert recipients(encrypt(share, key)) == [current[-16:]]
    assert old[-16:] not in recipients(message) and revoked[-16:] not in recipients(message)


def test_encrypt_uses_exactly_the_named_subkey(keyring: Keyring) -> None:
    # gpg alone would pick the newest valid subkey; "FPR!" forces the one named.
    old, current, _ = keyring.subkey_fingerprints(Keyring.ROTATED)
    for chosen in (old, current):
        key = PublicKey(
            fingerprint=keyring.fingerprint(Keyring.ROTATED),
            subkey_fingerprint=chosen,
            data=keyring.public_binary(Keyring.ROTATED),
        )
        assert recipients(encrypt(a_share(), key)) == [chosen[-16:]]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (Keyring.FUTURE, "dated in the future"),
        (Keyring.EXPIRING, "expires within 24 hours"),
    ],
)
def test_a_subkey_that_will_not_last_the_attempt_is_refused(
    keyring: Keyring, homes: list[str], name: str, reason: str
) -> None:
    with pytest.raises(PGPError, match=reason) as caught:
        load_public_key(keyring.public_binary(name))
    assert keyring.encryption_subkey(name) in str(caught.value)
    assert all(not os.path.exists(home) for home in homes)


def test_the_minimum_lifetime_is_the_module_constant(keyring: Keyring, monkeypatch) -> None:
    # The expiring subkey lasts an hour from its creation: enough for a 10-minute minimum.
    monkeypatch.setattr(keys, "SUBKEY_MIN_LIFETIME_SECONDS", 600)
    key = load_public_key(keyring.public_binary(Keyring.EXPIRING))
    assert key.subkey_fingerprint == keyring.encryption_subkey(Keyring.EXPIRING)
    key.close()
