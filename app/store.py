"""The durable part of the service: one JSON file in a data folder of its own.

What is kept: the threshold, the key length, the verifier (an HMAC that tells
a right reconstruction from a wrong one without storing the key) and the
registry of every x ever issued. No share and no key is ever written here.
Every write replaces the whole file atomically (temporary file, fsync,
rename, fsync of the folder), so after a crash the file is the old state or
the new one, never a mix. The store is not thread-safe: the service calls it
under its own lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import StartupError, Unavailable

__all__ = ["ShareRecord", "State", "Store"]

STATE_FILE = "state.json"
LOCK_FILE = "lock"
FORMAT = 1


@dataclass(frozen=True)
class ShareRecord:
    """One issued x: where it came from, when, and to whose PGP key."""

    index: int
    origin: str
    issued_at: str
    pgp_fingerprint: str = ""


@dataclass(frozen=True)
class State:
    """Everything the service keeps between restarts."""

    threshold: int
    key_length: int
    verifier_salt: bytes
    verifier_mac: bytes
    share_limit: int = 255
    shares: tuple[ShareRecord, ...] = field(default_factory=tuple)

    @property
    def issued_x(self) -> frozenset[int]:
        """Return every x ever handed out."""
        return frozenset(r.index for r in self.shares)

    def to_json(self) -> bytes:
        """Serialize for the data file."""
        doc = {
            "format": FORMAT,
            "threshold": self.threshold,
            "key_length": self.key_length,
            "share_limit": self.share_limit,
            "verifier": {"salt": self.verifier_salt.hex(), "hmac": self.verifier_mac.hex()},
            "shares": [asdict(r) for r in self.shares],
        }
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        """Parse the data file; ValueError names what is wrong."""
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"unknown format (expected format {FORMAT})")
        try:
            shares = tuple(
                ShareRecord(
                    index=_int(r["index"], 1, 255),
                    origin=str(r["origin"]),
                    issued_at=str(r["issued_at"]),
                    pgp_fingerprint=str(r.get("pgp_fingerprint", "")),
                )
                for r in doc["shares"]
            )
            state = cls(
                threshold=_int(doc["threshold"], 1, 255),
                key_length=_int(doc["key_length"], 1, 64),
                share_limit=_int(doc["share_limit"], 1, 255),
                verifier_salt=bytes.fromhex(doc["verifier"]["salt"]),
                verifier_mac=bytes.fromhex(doc["verifier"]["hmac"]),
                shares=shares,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or mistyped field {exc}") from None
        if len(state.issued_x) != len(shares):
            raise ValueError("the registry lists the same x twice")
        return state


def _int(value: object, low: int, high: int) -> int:
    """Return value if it is an int in [low, high], else raise ValueError."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value


class Store:
    """The data folder: state file, exclusive lock, atomic writes."""

    def __init__(self, path: Path, lock_fd: int, state: State | None):
        self.path = path
        self._lock_fd = lock_fd
        self._state = state

    @classmethod
    def open(cls, path: str | os.PathLike) -> Store:
        """Take the data folder for this process and load its state."""
        path = Path(path).absolute()
        if path.exists() and not path.is_dir():
            raise StartupError(f"the data folder {path} is not a folder")
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the data folder {path}: {exc.strerror}") from None
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise StartupError(
                f"the data folder {path} is not readable and writable by this user; "
                "fix its owner or permissions (the service keeps it at 0700)"
            )
        lock_fd = cls._lock(path)
        try:
            cls._remove_leftovers(path)
            state = cls._load(path / STATE_FILE)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, lock_fd, state)

    @staticmethod
    def _lock(path: Path) -> int:
        """Hold an exclusive lock on the folder for the life of this process."""
        lock_path = path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise StartupError(f"cannot lock {lock_path}: {exc.strerror}") from None
            raise StartupError(
                f"the data folder {path} is already served by another process "
                f"(pid {holder}); the attempt lives in one process's memory, so exactly "
                "one process may serve a data folder: run gunicorn with one worker "
                "and scale with threads"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    @staticmethod
    def _remove_leftovers(path: Path) -> None:
        """Delete temporary files of a write that a crash interrupted."""
        for leftover in path.glob(f".{STATE_FILE}.*.tmp"):
            leftover.unlink(missing_ok=True)

    @staticmethod
    def _load(file: Path) -> State | None:
        """Read the state file; refuse to start, untouched, if it is damaged."""
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StartupError(f"cannot read the data file {file}: {exc.strerror}") from None
        try:
            return State.from_json(raw)
        except ValueError as exc:
            raise StartupError(
                f"the data file {file} is damaged ({exc}); it was left untouched: "
                "restore it from a backup before starting the service"
            ) from None

    @property
    def state(self) -> State | None:
        """Return the current state, or None before initialization."""
        return self._state

    def initialize(self, state: State) -> None:
        """Record the state of a freshly initialized service."""
        if self._state is not None:
            raise RuntimeError("the store is already initialized")
        self._commit(state)

    def add_share(self, record: ShareRecord) -> None:
        """Record one newly issued x durably."""
        state = self._require_state()
        if record.index in state.issued_x:
            raise RuntimeError("that x was issued before")
        self._commit(replace(state, shares=state.shares + (record,)))

    def _require_state(self) -> State:
        if self._state is None:
            raise RuntimeError("the store is not initialized")
        return self._state

    def _commit(self, state: State) -> None:
        """Write ``state`` atomically, then make it the current state."""
        try:
            self._write_atomic(STATE_FILE, state.to_json())
        except OSError as exc:
            raise Unavailable(
                f"the server could not record the change ({exc.strerror or 'I/O error'}); "
                "nothing was changed or issued: retry once the server's disk is fixed"
            ) from None
        self._state = state

    def _write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``: temporary file, fsync, rename, fsync folder."""
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Release the data folder."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
