"""OpenPGP for the ceremony: parse a holder's public key and encrypt a share to it.

python-gnupg drives the real ``gpg`` binary. Every operation gets its own
throw-away GnuPG home, so requests share no keyring state and nothing stays on
disk. python-gnupg reports most failures in result objects instead of raising;
this module checks them and raises ``PGPError`` (the caller's key is unusable)
or ``PGPUnavailable`` (gpg itself failed: the server's fault).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import gnupg

__all__ = [
    "PGPError",
    "PGPUnavailable",
    "PublicKey",
    "encrypt",
    "fingerprint",
    "load_public_key",
]

# python-gnupg logs gpg's stderr, its command lines and data snippets at DEBUG
# (and stdout chunks when its ``log_everything`` switch is on). Version 0.5.7
# never logs what it feeds gpg's stdin, but pin its logger to WARNING anyway so
# that turning on DEBUG for the service can never put a share in a log record.
logging.getLogger("gnupg").setLevel(logging.WARNING)

INSTALL_HINT = "gpg is not installed; install it with 'apt-get install gnupg'"

# --no-autostart: public-key work needs neither gpg-agent nor dirmngr, and
# without it merely scanning a secret key starts an agent that outlives the home.
GPG_OPTIONS = ["--no-autostart"]

_EXPECTED = "expected exactly one OpenPGP public key (binary or ASCII-armored) that can encrypt"


class PGPError(Exception):
    """The caller's key is unusable; the message is a sentence safe to show the client."""


class PGPUnavailable(Exception):
    """gpg is missing or failed for reasons that have nothing to do with the key."""


@dataclass(frozen=True)
class PublicKey:
    """One OpenPGP public key that can encrypt, as load_public_key accepted it."""

    fingerprint: str  # primary key fingerprint, lowercase hex
    data: bytes  # the key as given (binary or armored), enough to import it again


def load_public_key(data: bytes) -> PublicKey:
    """Parse exactly one usable OpenPGP public key from binary or armored bytes."""
    if not data:
        raise PGPError(f"The PGP key is empty; {_EXPECTED}.")
    with _gnupg() as gpg:
        # A dry-run import (--import-options import-show): lists, stores nothing.
        keys = gpg.scan_keys_mem(bytes(data))
    if not keys:
        # gpg ends every import it got through with IMPORT_RES, even "0 keys";
        # without it gpg broke down before judging the data.
        if "[GNUPG:] IMPORT_RES" not in (keys.stderr or ""):
            raise PGPUnavailable(f"gpg failed to read a key (exit code {keys.returncode}).")
        raise PGPError(f"The PGP key is not an OpenPGP key; {_EXPECTED}.")
    if any(key["type"] == "sec" for key in keys):
        raise PGPError(
            "The PGP key contains secret key material; send only the public key "
            "(gpg --export), never the secret key."
        )
    if len(keys) > 1:
        raise PGPError(f"The PGP key data holds {len(keys)} keys; {_EXPECTED}.")
    key = keys[0]
    # "trust" is the key's validity letter; a fresh home knows no owner trust,
    # so only the key's own state shows: r revoked, e expired, i invalid.
    if key["trust"] == "r":
        raise PGPError(f"The PGP key has been revoked; {_EXPECTED}.")
    if key["trust"] == "e":
        raise PGPError(f"The PGP key has expired; {_EXPECTED}.")
    # An uppercase E in the capabilities means some valid (sub)key can encrypt.
    if "E" not in key["cap"]:
        raise PGPError(f"The PGP key cannot encrypt (it has no valid encryption subkey); {_EXPECTED}.")
    return PublicKey(fingerprint=key["fingerprint"].lower(), data=bytes(data))


def fingerprint(key: PublicKey) -> str:
    """Return the key's primary fingerprint as lowercase hex."""
    return key.fingerprint


def encrypt(plaintext: bytes | bytearray, key: PublicKey) -> bytes:
    """Encrypt plaintext to key and return a binary (not armored) OpenPGP message."""
    with _gnupg() as gpg:
        imported = gpg.import_keys(key.data)
        fingerprints = [fp.lower() for fp in imported.fingerprints]
        # load_public_key vetted key.data, so a failed import is gpg's fault.
        if not imported or fingerprints != [key.fingerprint]:
            raise PGPUnavailable(
                f"gpg failed to import key {key.fingerprint} (exit code {imported.returncode})."
            )
        # The plaintext goes to gpg's stdin from memory (no temporary file).
        # always_trust: the holder named this key; there is no web of trust to ask.
        result = gpg.encrypt(plaintext, key.fingerprint, always_trust=True, armor=False)
    if result.ok and result.data:
        return bytes(result.data)
    if result.status.startswith(("invalid recipient", "key expired")):
        # The key was fine when loaded; it may have expired since.
        raise PGPError(f"The PGP key can no longer be used to encrypt; {_EXPECTED}.")
    raise PGPUnavailable(f"gpg failed to encrypt (exit code {result.returncode}, status {result.status!r}).")


@contextlib.contextmanager
def _gnupg() -> Iterator[gnupg.GPG]:
    """Yield a GPG bound to a fresh private home, removed afterwards."""
    binary = shutil.which("gpg")
    if binary is None:
        raise PGPUnavailable(INSTALL_HINT)
    try:
        home = tempfile.mkdtemp(prefix="generate-share-gnupg-")  # mode 0700
    except OSError as exc:
        raise PGPUnavailable(f"Cannot create a temporary GnuPG home: {exc}") from exc
    try:
        # One GPG per operation: its constructor runs `gpg --list-config`.
        yield gnupg.GPG(gpgbinary=binary, gnupghome=home, options=GPG_OPTIONS)
    except (OSError, ValueError) as exc:
        # python-gnupg raises these when gpg cannot be run, fails on start-up
        # (the constructor runs it once) or a pipe to it breaks.
        raise PGPUnavailable(f"gpg failed unexpectedly: {exc}") from exc
    finally:
        _stop_daemons(home)
        shutil.rmtree(home, ignore_errors=True)


def _stop_daemons(home: str) -> None:
    """Stop any gpg-agent or dirmngr serving home, so none outlives it."""
    # --no-autostart means none should exist; a socket in the home says one does.
    if any(name.startswith("S.") for name in os.listdir(home)):
        gpgconf = shutil.which("gpgconf") or "gpgconf"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [gpgconf, "--homedir", home, "--kill", "all"],
                capture_output=True,
                timeout=10,
                check=False,
            )
