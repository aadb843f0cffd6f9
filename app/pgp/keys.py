"""Holders' public keys: load_public_key vets one and gives it a GnuPG home, encrypt uses it.

Each start of gpg costs a few milliseconds, so a loaded key keeps its own
private GnuPG home: ``load_public_key`` makes the home, then imports the key
there and vets gpg's listing of it (one gpg run), and each ``encrypt`` is then
one gpg run: a ceremony with PGP runs gpg twice. The
home holds that one public key and nothing else, so requests share no keyring
state; ``PublicKey.close()`` removes it (and stops any gpg daemon in it), and a
``weakref.finalize`` removes it if the key is dropped or the process exits
without closing it. A key that was never loaded (or is closed) still encrypts,
through a throw-away home. python-gnupg reports most failures in result objects
instead of raising; this module checks them and raises ``PGPError`` (the
caller's key is unusable) or ``PGPUnavailable`` (gpg itself failed: the
server's fault).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import gnupg

from .errors import PGPError, PGPUnavailable
from .packets import _check_key_framing

# Underscored names are private to the package, not to their module: the
# guard and the homes live in runner, and only this package uses them.
from .runner import _gnupg, _gpg_run, _new_home, _remove_home

__all__ = [
    "SUBKEY_MIN_LIFETIME_SECONDS",
    "PublicKey",
    "encrypt",
    "load_public_key",
]

_EXPECTED = "expected exactly one OpenPGP public key (binary or ASCII-armored) that can encrypt"

# The encryption subkey must stay valid at least this long after the key is
# loaded: an attempt may wait that long for its quorum, and a subkey that
# expires meanwhile would be refused only after every holder had sent a share.
SUBKEY_MIN_LIFETIME_SECONDS = 24 * 60 * 60


class _Home:
    """The private GnuPG home of one loaded key, open until closed."""

    def __init__(self) -> None:
        """Start closed: a key built by hand has no home."""
        self._lock = threading.Lock()  # one gpg run at a time in the home; close waits for it
        self._gpg: gnupg.GPG | None = None
        self._finalizer: weakref.finalize | None = None

    def open(self, owner: PublicKey, path: str, gpg: gnupg.GPG) -> None:
        """Adopt the home at path, removed by close() or, at the latest, when owner goes."""
        with self._lock:
            self._gpg = gpg
            # The callback holds the path only, never owner: finalize keeps no key alive.
            self._finalizer = weakref.finalize(owner, _remove_home, path)

    @contextlib.contextmanager
    def gpg(self) -> Iterator[gnupg.GPG | None]:
        """Yield the home's GPG (None once closed), holding the home for the duration."""
        with self._lock:
            yield self._gpg

    def close(self) -> None:
        """Remove the home and stop any daemon in it; a second call does nothing."""
        with self._lock:
            self._gpg = None
            if self._finalizer is not None:
                self._finalizer()  # runs the removal at most once, whoever calls first


@dataclass(frozen=True)
class PublicKey:
    """One OpenPGP public key that can encrypt, as load_public_key accepted it.

    A loaded key owns a private GnuPG home with the key imported: call close()
    when the key is no longer needed (the attempt ends, init has encrypted).
    """

    fingerprint: str  # primary key fingerprint, lowercase hex
    # The (sub)key every encrypt() uses, lowercase hex: what the holders compare
    # out loud must be what the share is encrypted to, not a stale subkey.
    subkey_fingerprint: str
    data: bytes  # the key as given (binary or armored), enough to import it again
    _home: _Home = field(default_factory=_Home, init=False, repr=False, compare=False)

    def close(self) -> None:
        """Remove the key's GnuPG home; safe to call twice, and encrypt still works after."""
        self._home.close()

    @property
    def closed(self) -> bool:
        """Tell whether the key has no GnuPG home of its own (closed, or never loaded)."""
        with self._home.gpg() as gpg:
            return gpg is None


def load_public_key(data: bytes) -> PublicKey:
    """Parse exactly one usable OpenPGP public key from binary or armored bytes."""
    if not data:
        raise PGPError(f"The PGP key is empty; {_EXPECTED}.")
    data = bytes(data)
    _check_key_framing(data)
    path, gpg = _new_home()
    try:
        primary, subkey = _vet(gpg, data)
        key = PublicKey(fingerprint=primary, subkey_fingerprint=subkey, data=data)
        key._home.open(key, path, gpg)
    except BaseException:
        # A refused key goes with its home: nothing else ever saw that keyring.
        _remove_home(path)
        raise
    return key


def _vet(gpg: gnupg.GPG, data: bytes) -> tuple[str, str]:
    """Import the one key in data into gpg's fresh home; return its primary and encryption subkey."""
    with _gpg_run():
        # One run imports and lists (--import-options import-show). Importing
        # before judging is safe: the framing check has refused secret key
        # material and a second key, and the home is this key's alone, removed
        # if the key is refused. The key stays there for every encrypt to come.
        keys = gpg.import_and_list(data)
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
    if f"[GNUPG:] IMPORT_OK 1 {key['fingerprint']}".lower() not in (keys.stderr or "").lower():
        # Listed but not stored as new: this fresh home must now hold exactly it.
        raise PGPUnavailable(
            f"gpg failed to import key {key['fingerprint'].lower()} (exit code {keys.returncode})."
        )
    # "trust" is the key's validity letter; a fresh home knows no owner trust,
    # so only the key's own state shows: r revoked, e expired, i invalid.
    if key["trust"] == "r":
        raise PGPError(f"The PGP key has been revoked; {_EXPECTED}.")
    if key["trust"] == "e":
        raise PGPError(f"The PGP key has expired; {_EXPECTED}.")
    # An uppercase E in the capabilities means some valid (sub)key can encrypt.
    if "E" not in key["cap"]:
        raise PGPError(f"The PGP key cannot encrypt (it has no valid encryption subkey); {_EXPECTED}.")
    return key["fingerprint"].lower(), _encryption_subkey(key, time.time())


def _encryption_subkey(key: dict, now: float) -> str:
    """Return the fingerprint of the (sub)key gpg encrypts to, or raise PGPError if it will not last."""
    # gpg's choice: the newest valid encryption-capable subkey, else the primary
    # if it can encrypt. "trust" is the validity letter (r revoked, e expired,
    # i invalid, d disabled, n never valid), "cap" a lowercase e for encryption.
    if _expires_before(key.get("expires", ""), now):
        raise PGPError(
            f"The PGP key expires within {_lifetime()}, before an attempt could end; "
            f"extend its expiry date; {_EXPECTED}."
        )
    usable = []
    for keyid, _caps, subkey_fpr, _grip in key.get("subkeys", []):
        info = key.get("subkey_info", {}).get(keyid, {})
        if "e" not in info.get("cap", "") or info.get("trust", "") in _UNUSABLE or not subkey_fpr:
            continue
        expires = info.get("expires", "")
        if expires.isdigit() and int(expires) <= now:
            continue
        usable.append((_timestamp(info.get("date", "")), subkey_fpr.lower(), expires))
    if not usable:
        if "e" in key["cap"]:  # lowercase: the primary's own capabilities, not its subkeys
            return key["fingerprint"].lower()
        raise PGPError(f"The PGP key has no valid encryption subkey; {_EXPECTED}.")
    created, chosen, expires = max(usable)
    if created > now + _CLOCK_SKEW_SECONDS:
        # A subkey from the future: a clock is wrong somewhere. gpg would skip
        # it today and switch to it later, so refuse rather than guess.
        raise PGPError(
            f"The PGP key's newest encryption subkey {chosen} is dated in the future; "
            f"check the clock of the computer that made it; {_EXPECTED}."
        )
    if _expires_before(expires, now):
        raise PGPError(
            f"The PGP key's encryption subkey {chosen} expires within {_lifetime()}, before an "
            f"attempt could end; extend its expiry date or add a new encryption subkey; {_EXPECTED}."
        )
    return chosen


_UNUSABLE = ("r", "e", "i", "d", "n")  # validity letters of a (sub)key gpg will not use
# gpg itself accepts keys created a little ahead of its clock.
_CLOCK_SKEW_SECONDS = 5 * 60


def _timestamp(text: str) -> int:
    """Return a --with-colons creation time as seconds since the epoch (0 if absent)."""
    return int(text) if text.isdigit() else 0


def _expires_before(expires: str, now: float) -> bool:
    """Tell whether an expiry time from --with-colons falls within the minimum lifetime."""
    return expires.isdigit() and int(expires) < now + SUBKEY_MIN_LIFETIME_SECONDS


def _lifetime() -> str:
    """Name the minimum lifetime for an error sentence."""
    hours = SUBKEY_MIN_LIFETIME_SECONDS / 3600
    return f"{hours:g} hours"


def encrypt(plaintext: bytes | bytearray, key: PublicKey) -> bytes:
    """Encrypt plaintext to key and return a binary (not armored) OpenPGP message."""
    with key._home.gpg() as gpg:
        if gpg is not None:  # the key's own home: one gpg run
            return _encrypted(_encrypt(gpg, plaintext, key))
    # Closed, or built by hand: a throw-away home, the key imported into it.
    with _gnupg() as gpg:
        _import(gpg, key)
        result = _encrypt(gpg, plaintext, key)
    return _encrypted(result)


def _import(gpg: gnupg.GPG, key: PublicKey) -> None:
    """Import key into gpg's home, or raise PGPUnavailable."""
    with _gpg_run():
        imported = gpg.import_keys(key.data)
    fingerprints = [fp.lower() for fp in imported.fingerprints]
    # load_public_key vetted key.data, so a failed import is gpg's fault.
    if not imported or fingerprints != [key.fingerprint]:
        raise PGPUnavailable(f"gpg failed to import key {key.fingerprint} (exit code {imported.returncode}).")


def _encrypt(gpg: gnupg.GPG, plaintext: bytes | bytearray, key: PublicKey) -> gnupg.Crypt:
    """Run gpg --encrypt to key in gpg's home and return python-gnupg's result."""
    # The plaintext goes to gpg's stdin from memory (no temporary file).
    # always_trust: the holder named this key; there is no web of trust to ask.
    # "FPR!" makes gpg use exactly that (sub)key, the one the holders compared.
    with _gpg_run():
        return gpg.encrypt(plaintext, f"{key.subkey_fingerprint}!", always_trust=True, armor=False)


def _encrypted(result: gnupg.Crypt) -> bytes:
    """Return the message in result, or raise PGPError or PGPUnavailable."""
    if result.ok and result.data:
        return bytes(result.data)
    if result.status.startswith(("invalid recipient", "key expired")):
        # The key was fine when loaded; it may have expired since.
        raise PGPError(f"The PGP key can no longer be used to encrypt; {_EXPECTED}.")
    raise PGPUnavailable(f"gpg failed to encrypt (exit code {result.returncode}, status {result.status!r}).")
