"""OpenPGP for the ceremony: parse a holder's public key and encrypt a share to it.

python-gnupg drives the real ``gpg`` binary, and each start of it costs a few
milliseconds, so a loaded key keeps its own private GnuPG home: ``load_public_key``
makes the home, vets the key and imports it there (two gpg runs), and each
``encrypt`` is then one gpg run. The home holds that one public key and nothing
else, so requests share no keyring state; ``PublicKey.close()`` removes it (and
stops any gpg daemon in it), and a ``weakref.finalize`` removes it if the key is
dropped or the process exits without closing it. A key that was never loaded
(or is closed) still encrypts, through a throw-away home. python-gnupg reports
most failures in result objects instead of raising; this module checks them and
raises ``PGPError`` (the caller's key is unusable) or ``PGPUnavailable`` (gpg
itself failed: the server's fault).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import gnupg

from .errors import StartupError, Unavailable

__all__ = [
    "PGPError",
    "PGPUnavailable",
    "PublicKey",
    "encrypt",
    "fingerprint",
    "load_public_key",
    "require_encrypted_message",
    "set_home_root",
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

# Every gpg run is killed after GPG_TIMEOUT_SECONDS (python-gnupg 0.5.7 has no
# time limit of its own), and at most GPG_CONCURRENCY run at once: a request
# that waits GPG_WAIT_SECONDS for a slot gets PGPUnavailable (503, "gpg is
# busy"), so a few expensive keys cannot hold every thread of the service.
GPG_TIMEOUT_SECONDS = 10.0
GPG_CONCURRENCY = 2
GPG_WAIT_SECONDS = 1.0
_SLOTS = threading.BoundedSemaphore(GPG_CONCURRENCY)

# The encryption subkey must stay valid at least this long after the key is
# loaded: an attempt may wait that long for its quorum, and a subkey that
# expires meanwhile would be refused only after every holder had sent a share.
SUBKEY_MIN_LIFETIME_SECONDS = 24 * 60 * 60

# Temporary GnuPG homes are made in this folder (None: the system's temporary
# folder). set_home_root points it into the data folder, so that homes left by
# a killed worker are found and removed at the next start.
_HOME_PREFIX = "generate-share-gnupg-"
_home_root: str | None = None


# Before gpg sees a key, its OpenPGP packet framing is read here (RFC 4880 and
# RFC 9580, section 4.2): a transferable public key holds only these packets.
# A compressed-data packet (8) above all is refused: gpg would inflate it and
# list every key inside, minutes of work for a 2 KB "decompression bomb".
_KEY_PACKETS = {
    2: "signature",
    6: "public key",
    10: "marker",
    12: "trust",
    13: "user ID",
    14: "public subkey",
    17: "user attribute",
}
_PACKET_NAMES = {
    1: "public-key encrypted session key",
    3: "symmetric-key encrypted session key",
    4: "one-pass signature",
    5: "secret key",
    7: "secret subkey",
    8: "compressed data",
    9: "symmetrically encrypted data",
    11: "literal data",
    18: "encrypted and integrity protected data",
    19: "modification detection code",
    20: "AEAD encrypted data",
    21: "padding",
    **_KEY_PACKETS,
}
_SECRET_PACKETS = {5, 7}
# Only data packets may be split into partial-length chunks (RFC 4880 4.2.2.4).
_PARTIAL_ALLOWED = {8, 9, 11, 18, 20}
# Generous for any real key (gpg --export of a well-used key holds a few dozen
# packets), small enough that no key makes gpg work for long.
MAX_KEY_PACKETS = 512
MAX_SUBKEYS = 32
MAX_USER_IDS = 64  # user IDs and user attributes together
_SEND = "send one public key as exported by gpg --export"


class PGPError(Exception):
    """The caller's key is unusable; the message is a sentence safe to show the client."""


class PGPUnavailable(Unavailable):
    """gpg is missing, busy or failed for reasons that have nothing to do with the key (503)."""


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
        _remove_home(path)
        raise
    try:
        # The home is the key's now: import the key once, for every encrypt to come.
        _import(gpg, key)
    except BaseException:
        key.close()
        raise
    return key


def _vet(gpg: gnupg.GPG, data: bytes) -> tuple[str, str]:
    """Return the primary and encryption subkey fingerprints of the one key in data, or raise PGPError."""
    with _gpg_run():
        # A dry-run import (--import-options import-show): lists, stores nothing.
        keys = gpg.scan_keys_mem(data)
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


def fingerprint(key: PublicKey) -> str:
    """Return the key's primary fingerprint as lowercase hex."""
    return key.fingerprint


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


class _Run:
    """The gpg processes started by one call into python-gnupg, each killed at the deadline."""

    def __init__(self) -> None:
        """Start with no process and no timeout."""
        self.timed_out = False
        self._timers: list[threading.Timer] = []

    def watch(self, process: subprocess.Popen) -> None:
        """Kill process if it still runs GPG_TIMEOUT_SECONDS from now."""
        timer = threading.Timer(GPG_TIMEOUT_SECONDS, self._kill, (process,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _kill(self, process: subprocess.Popen) -> None:
        """Kill a gpg that ran too long; python-gnupg's readers then see end of file."""
        if process.poll() is None:
            self.timed_out = True
            with contextlib.suppress(OSError):
                process.kill()

    def cancel(self) -> None:
        """Stop watching: the call returned."""
        for timer in self._timers:
            timer.cancel()


_running = threading.local()  # .run: the _Run of the calling thread's gpg call


class _TimedGPG(gnupg.GPG):
    """python-gnupg's GPG, with each process it starts watched by the calling thread's _Run."""

    def _open_subprocess(self, args, *rest, **kwargs):
        """Start gpg as python-gnupg does, then arm its deadline."""
        # python-gnupg starts every process from the calling thread, inside _gpg_run.
        run = getattr(_running, "run", None)
        if run is None:  # a run outside _gpg_run would have no time limit and no slot
            raise ValueError("gpg was about to run outside _gpg_run")
        process = super()._open_subprocess(args, *rest, **kwargs)
        run.watch(process)
        return process


@contextlib.contextmanager
def _gpg_run() -> Iterator[None]:
    """Hold a gpg slot for one python-gnupg call, with a deadline; failures become PGPUnavailable."""
    if not _SLOTS.acquire(timeout=GPG_WAIT_SECONDS):
        raise PGPUnavailable("gpg is busy with other requests; try again in a moment.")
    run = _running.run = _Run()
    try:
        try:
            yield
        except (OSError, ValueError) as exc:
            if run.timed_out:
                raise PGPUnavailable(_timeout_message()) from None
            # python-gnupg raises these when gpg cannot be run, fails on start-up
            # (the constructor runs it once) or a pipe to it breaks.
            raise PGPUnavailable(f"gpg failed unexpectedly: {exc}") from exc
        if run.timed_out:
            raise PGPUnavailable(_timeout_message())
    finally:
        run.cancel()
        _running.run = None
        _SLOTS.release()


def _timeout_message() -> str:
    """Say that gpg was stopped at its time limit."""
    return f"gpg took longer than {GPG_TIMEOUT_SECONDS:g} seconds and was stopped; try again later."


def _new_home() -> tuple[str, gnupg.GPG]:
    """Make a fresh private GnuPG home and return its path and a GPG bound to it."""
    binary = shutil.which("gpg")
    if binary is None:
        raise PGPUnavailable(INSTALL_HINT)
    try:
        if _home_root is not None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(_home_root, 0o700)
        home = tempfile.mkdtemp(prefix=_HOME_PREFIX, dir=_home_root)  # mode 0700
    except OSError as exc:
        raise PGPUnavailable(f"Cannot create a temporary GnuPG home: {exc}") from exc
    try:
        return home, _bind(binary, home)
    except BaseException:
        _remove_home(home)
        raise


# python-gnupg's constructor runs `gpg --list-config` to learn gpg's version,
# which is the same for every home: probe once per gpg binary, and give each
# home a copy of the probed GPG (plain attributes only) with its own path.
_PROBED: dict[str, gnupg.GPG] = {}
_PROBED_LOCK = threading.Lock()


def _bind(binary: str, home: str) -> gnupg.GPG:
    """Return a GPG running binary in home; gpg's start-up probe runs once per binary."""
    with _PROBED_LOCK:
        probed = _PROBED.get(binary)
        if probed is None:
            with _gpg_run():
                probed = _TimedGPG(gpgbinary=binary, gnupghome=home, options=GPG_OPTIONS)
            _PROBED[binary] = probed  # only once the probe succeeded
    gpg = copy.copy(probed)
    gpg.gnupghome = home
    gpg.options = list(GPG_OPTIONS)
    return gpg


@contextlib.contextmanager
def _gnupg() -> Iterator[gnupg.GPG]:
    """Yield a GPG bound to a fresh private home, removed afterwards."""
    home, gpg = _new_home()
    try:
        yield gpg
    finally:
        _remove_home(home)


def set_home_root(path: str) -> None:
    """Make temporary GnuPG homes in path from now on, removing any a killed process left there."""
    global _home_root
    # The folder is made with the first home, so a service that never sees a
    # PGP key keeps its data folder as it was.
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _home_root = path
        return
    except OSError as exc:
        raise StartupError(f"cannot read the GnuPG folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StartupError(f"the GnuPG folder {path} is not a folder (a symlink or a file); remove it")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        # The homes hold the holders' public keys and gpg's sockets: this user's alone.
        raise StartupError(
            f"the GnuPG folder {path} must belong to this user with mode 0700; fix it with "
            f"chmod 700 {path} (and chown), or remove it"
        )
    for name in os.listdir(path):
        if name.startswith(_HOME_PREFIX):  # the data folder's lock says no live process uses it
            _remove_home(os.path.join(path, name))
    _home_root = path


def _remove_home(home: str) -> None:
    """Stop any daemon serving home, then delete it."""
    _stop_daemons(home)
    shutil.rmtree(home, ignore_errors=True)


def _stop_daemons(home: str) -> None:
    """Stop any gpg-agent or dirmngr serving home, so none outlives it."""
    # --no-autostart means none should exist; a socket in the home says one does.
    try:
        names = os.listdir(home)
    except OSError:  # already gone: nothing can serve it
        return
    if any(name.startswith("S.") for name in names):
        gpgconf = shutil.which("gpgconf") or "gpgconf"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [gpgconf, "--homedir", home, "--kill", "all"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def require_encrypted_message(data: bytes) -> None:
    """Raise PGPError unless data is one OpenPGP message encrypted to public keys."""
    what = "an OpenPGP message encrypted to a public key (binary or ASCII-armored)"
    packets = list(_packets(_dearmored(bytes(data), f"expected {what}"), f"expected {what}"))
    tags = [tag for tag, _ in packets]
    # One or more public-key encrypted session keys, then exactly one encrypted
    # data packet with integrity protection (SEIPD or AEAD), and nothing else.
    sessions = 0
    while sessions < len(tags) and tags[sessions] == 1:
        sessions += 1
    if sessions and tags[sessions:] in ([18], [20]):
        return
    if not tags:
        raise PGPError(f"The data holds no OpenPGP packet; expected {what}.")
    odd = next((tag for tag in tags if tag not in (1, 18, 20)), None)
    if odd is not None:
        raise PGPError(f"The data holds an OpenPGP {_packet_name(odd)} packet; expected {what}.")
    raise PGPError(f"The OpenPGP packets are not in the order of a message; expected {what}.")


def _check_key_framing(data: bytes) -> None:
    """Raise PGPError unless data is framed as one transferable public key, before gpg reads it."""
    packets = list(_packets(_dearmored(data, _SEND), _SEND))
    tags = [tag for tag, _ in packets]
    if any(tag in _SECRET_PACKETS for tag in tags):
        raise PGPError(
            "The PGP key contains secret key material; send only the public key "
            "(gpg --export), never the secret key."
        )
    if not tags:
        raise PGPError(f"The PGP key is not an OpenPGP key; {_SEND}.")
    odd = next((tag for tag in tags if tag not in _KEY_PACKETS), None)
    if odd == 8:
        raise PGPError(f"The PGP key is compressed (an OpenPGP compressed-data packet); {_SEND}.")
    if odd is not None:
        raise PGPError(
            f"The PGP key holds an OpenPGP {_packet_name(odd)} packet, which a public key "
            f"never holds; {_SEND}."
        )
    primaries = tags.count(6)
    if primaries > 1:
        raise PGPError(f"The PGP key data holds {primaries} keys; {_SEND}.")
    if tags[0] != 6 and not (primaries and set(tags[: tags.index(6)]) <= {10}):
        raise PGPError(f"The PGP key does not begin with a public key packet; {_SEND}.")
    if len(tags) > MAX_KEY_PACKETS:
        raise PGPError(f"The PGP key holds {len(tags)} packets, more than {MAX_KEY_PACKETS}; {_SEND}.")
    if tags.count(14) > MAX_SUBKEYS:
        raise PGPError(f"The PGP key has {tags.count(14)} subkeys, more than {MAX_SUBKEYS}; {_SEND}.")
    uids = tags.count(13) + tags.count(17)
    if uids > MAX_USER_IDS:
        raise PGPError(f"The PGP key has {uids} user IDs, more than {MAX_USER_IDS}; {_SEND}.")


def _packet_name(tag: int) -> str:
    """Return the RFC name of packet type tag, for an error sentence."""
    name = _PACKET_NAMES.get(tag)
    return f"{name} (type {tag})" if name else f"type {tag}"


def _dearmored(data: bytes, tail: str) -> bytes:
    """Return the binary packets of data, removing ASCII armor if data is armored."""
    start = data.lstrip()
    if start[:1] and start[0] & 0x80:
        return data  # binary: an OpenPGP packet header has its top bit set
    if b"-----BEGIN PGP " not in data:
        return data  # not armor either: the packet reader says it is no OpenPGP data
    # Each armored block: a BEGIN line, optional headers, a blank line, base64
    # lines, an optional "=" CRC line, an END line. Text around blocks is ignored,
    # as gpg does; several blocks are read one after the other.
    body: list[bytes] = []
    state = "outside"
    for raw in data.splitlines():
        line = raw.strip()
        if state == "outside":
            if line.startswith(b"-----BEGIN PGP ") and line.endswith(b"-----"):
                state, block = "headers", []
        elif state == "headers":
            if not line:
                state = "body"
            elif b": " not in line:
                state = "body"  # no header and no blank line: tolerated, as gpg does
        if state == "body":
            if line.startswith(b"-----END PGP "):
                body.append(_b64(b"".join(block), tail))
                state = "outside"
            elif line.startswith(b"=") and len(line) == 5:
                pass  # the CRC-24 line; gpg checks it
            elif line:
                block.append(line)
    if state != "outside" or not body:
        raise PGPError(f"The ASCII armor is incomplete or damaged; {tail}.")
    return b"".join(body)


def _b64(text: bytes, tail: str) -> bytes:
    """Decode the base64 body of one armored block, or raise PGPError."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PGPError(f"The ASCII armor holds characters that are not base64; {tail}.") from None


def _packets(data: bytes, tail: str) -> Iterator[tuple[int, int]]:
    """Yield (tag, body length) of each OpenPGP packet in data, or raise PGPError on bad framing."""
    position, end = 0, len(data)
    if not data:
        raise PGPError(f"The data is empty; {tail}.")
    while position < end:
        first = data[position]
        if not first & 0x80:
            if position == 0:
                raise PGPError(f"The data is not OpenPGP data; {tail}.")
            raise PGPError(f"The data holds bytes after its last OpenPGP packet; {tail}.")
        position += 1
        if first & 0x40:  # new format (RFC 4880 4.2.2)
            tag = first & 0x3F
            length, position, partial = _new_length(data, position, tail)
            total = length
            while partial:
                if tag not in _PARTIAL_ALLOWED:
                    raise PGPError(
                        f"The OpenPGP {_packet_name(tag)} packet uses partial lengths, which only "
                        f"data packets may; {tail}."
                    )
                position += length
                if position > end:
                    break
                length, position, partial = _new_length(data, position, tail)
                total += length
        else:  # old format (RFC 4880 4.2.1)
            tag = (first >> 2) & 0x0F
            kind = first & 0x03
            if kind == 3:  # indeterminate: the packet runs to the end of the data
                if tag not in _PARTIAL_ALLOWED:
                    raise PGPError(
                        f"The OpenPGP {_packet_name(tag)} packet has no length, which only data "
                        f"packets may omit; {tail}."
                    )
                length = total = end - position
            else:
                size = 1 << kind
                if position + size > end:
                    raise PGPError(f"The OpenPGP data is truncated; {tail}.")
                length = total = int.from_bytes(data[position : position + size], "big")
                position += size
        if tag == 0:
            raise PGPError(f"The data holds an OpenPGP packet of reserved type 0; {tail}.")
        position += length
        if position > end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        yield tag, total


def _new_length(data: bytes, position: int, tail: str) -> tuple[int, int, bool]:
    """Read a new-format body length at position: (length, next position, partial)."""
    end = len(data)
    if position >= end:
        raise PGPError(f"The OpenPGP data is truncated; {tail}.")
    octet = data[position]
    if octet < 192:
        return octet, position + 1, False
    if octet < 224:
        if position + 1 >= end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        return ((octet - 192) << 8) + data[position + 1] + 192, position + 2, False
    if octet == 255:
        if position + 5 > end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        return int.from_bytes(data[position + 1 : position + 5], "big"), position + 5, False
    return 1 << (octet & 0x1F), position + 1, True
