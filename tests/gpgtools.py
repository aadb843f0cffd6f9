"""Real OpenPGP test keys, made once per session by gpg in a private home."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["Keyring"]

# One `gpg --gen-key` run makes every key (about 0.3 s, RSA included);
# %no-protection lets the tests export and decrypt without a pinentry.
_PARAMETERS = """\
%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Subkey-Type: RSA
Subkey-Length: 2048
Subkey-Usage: encrypt
Name-Real: rsa_key
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ECDH
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: ecc_key
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Name-Real: sign_only_key
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ECDH
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: expired_key
# Created in the past with a one-day lifetime, so it expired on 2020-01-02.
Creation-Date: 20200101T000000
Expire-Date: 1d
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ECDH
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: revoked_key
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Name-Real: rotated_key
Creation-Date: 20200101T000000
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Name-Real: future_key
Creation-Date: 20200101T000000
Expire-Date: 0
%commit
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Name-Real: expiring_key
Creation-Date: 20200101T000000
Expire-Date: 0
%commit
"""


# The keys have no passphrase: gpg may ask the agent for one without a terminal.
_NO_PINENTRY = ("--pinentry-mode", "loopback", "--passphrase", "")


class Keyring:
    """A GnuPG home holding one key per name in NAMES, with their secrets."""

    RSA = "rsa_key"  # RSA 2048 primary (sign) with an RSA 2048 encryption subkey
    ECC = "ecc_key"  # ed25519 primary with a cv25519 encryption subkey
    SIGN_ONLY = "sign_only_key"  # ed25519, no encryption subkey
    EXPIRED = "expired_key"  # ed25519 + cv25519, expired since 2020-01-02
    REVOKED = "revoked_key"  # ed25519 + cv25519, revocation certificate imported
    # ed25519 with three cv25519 encryption subkeys: made in 2021 (superseded),
    # 2022 (the one to use) and 2023 (revoked).
    ROTATED = "rotated_key"
    FUTURE = "future_key"  # ed25519, its only encryption subkey made "in" 2040
    EXPIRING = "expiring_key"  # ed25519, its only encryption subkey expires an hour after creation
    NAMES = (RSA, ECC, SIGN_ONLY, EXPIRED, REVOKED, ROTATED, FUTURE, EXPIRING)

    def __init__(self, home: Path) -> None:
        """Generate every key in home, a directory this keyring may own."""
        # Keep home's path short: gpg-agent puts its sockets there (108-byte limit).
        self.home = Path(home)
        self.home.chmod(0o700)
        self._cache: dict[tuple[str, ...], bytes] = {}
        status = self._gpg("--status-fd", "1", "--gen-key", stdin=_PARAMETERS.encode()).decode()
        # KEY_CREATED lines come in the order of the parameter blocks.
        created = [
            line.split()[-1] for line in status.splitlines() if line.startswith("[GNUPG:] KEY_CREATED ")
        ]
        assert len(created) == len(self.NAMES), status
        self._fingerprints = dict(zip(self.NAMES, (fp.lower() for fp in created), strict=True))
        # gpg writes a revocation certificate for every key, with a colon before
        # the armor header so that it is not imported by accident: remove it.
        revocation = self.home / "openpgp-revocs.d" / f"{created[self.NAMES.index(self.REVOKED)]}.rev"
        self._gpg(
            "--import",
            stdin=revocation.read_bytes().replace(b"\n:-----BEGIN", b"\n-----BEGIN"),
        )
        # Subkeys at chosen times: --faked-system-time dates the subkey and its binding.
        for name, when, expire in (
            (self.ROTATED, "20210101T000000", "0"),
            (self.ROTATED, "20220101T000000", "0"),
            (self.ROTATED, "20230101T000000", "0"),
            (self.FUTURE, "20400101T000000", "0"),
            (self.EXPIRING, None, "seconds=3600"),
        ):
            faked = ("--faked-system-time", when) if when else ()
            self._gpg(
                *faked, *_NO_PINENTRY, "--quick-add-key", self._fingerprints[name], "cv25519", "encr", expire
            )
        # Revoke the rotated key's newest subkey (key 3 in gpg's edit menu).
        self._gpg(
            *_NO_PINENTRY,
            "--command-fd",
            "0",
            "--edit-key",
            self._fingerprints[self.ROTATED],
            stdin=b"key 3\nrevkey\ny\n0\n\ny\nsave\n",
        )

    def subkey_fingerprints(self, name: str) -> list[str]:
        """Return the fingerprints of name's subkeys in the order they were made, lowercase hex."""
        listing = self._gpg(
            "--with-colons", "--with-subkey-fingerprints", "--list-keys", self._fingerprints[name]
        )
        lines = listing.decode().splitlines()
        return [
            lines[i + 1].split(":")[9].lower()
            for i, line in enumerate(lines)
            if line.startswith("sub:") and lines[i + 1].startswith("fpr:")
        ]

    def encryption_subkey(self, name: str) -> str:
        """Return the fingerprint the service should encrypt name's shares to (the primary if no subkey)."""
        subkeys = self.subkey_fingerprints(name)
        if name == self.ROTATED:
            return subkeys[1]
        return subkeys[0] if subkeys else self._fingerprints[name]

    def fingerprint(self, name: str) -> str:
        """Return the primary fingerprint of name, lowercase hex."""
        return self._fingerprints[name]

    def public_binary(self, name: str) -> bytes:
        """Return the binary public key of name."""
        return self._export(name, "--export")

    def public_armored(self, name: str) -> bytes:
        """Return the ASCII-armored public key of name."""
        return self._export(name, "--armor", "--export")

    def secret_armored(self, name: str) -> bytes:
        """Return the ASCII-armored secret key of name (public parts included)."""
        return self._export(name, "--armor", "--export-secret-keys")

    def decrypt(self, message: bytes) -> bytes:
        """Decrypt message with the keyring's secret keys, asserting success."""
        completed = subprocess.run(
            self._command("--status-fd", "2", "--decrypt"),
            input=message,
            capture_output=True,
            check=False,
        )
        stderr = completed.stderr.decode(errors="replace")
        assert completed.returncode == 0 and "[GNUPG:] DECRYPTION_OKAY" in stderr, stderr
        return completed.stdout

    def cleanup(self) -> None:
        """Stop the gpg-agent that key generation started in this home."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
        )

    def _export(self, name: str, *args: str) -> bytes:
        """Run a gpg export of name once and cache its output."""
        key = (name, *args)
        if key not in self._cache:
            # A full fingerprint, without "!" (which would drop the subkeys).
            self._cache[key] = self._gpg(*args, self._fingerprints[name])
            assert self._cache[key], f"gpg exported nothing for {key}"
        return self._cache[key]

    def _command(self, *args: str) -> list[str]:
        """Build a batch gpg command line for this home."""
        return ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", *args]

    def _gpg(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run gpg in this home, assert success, and return its stdout."""
        return gpg_in(self.home, *args, stdin=stdin)


def gpg_in(home: Path, *args: str, stdin: bytes | None = b"") -> bytes:
    """Run a batch gpg in home, assert success, and return its stdout."""
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout
