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
import logging
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from .audit import AUDIT_FILE, GENESIS, STATE_EVENTS, AuditTrail, line_hash, make_line
from .errors import StartupError, Unavailable

__all__ = ["Head", "ShareRecord", "State", "Store", "load_state_file"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "lock"
FORMAT = 1


@dataclass(frozen=True)
class ShareRecord:
    """One issued x: where it came from, when, to whose PGP key, and its custody.

    ``digest`` is HMAC-SHA256 of the share under the store's custody key: it
    confirms a share a holder presents, but cannot help anyone find one. It is
    empty for a share the service never saw (an adopted index that was only
    named). ``verified_at`` is when a holder last proved they still have it.
    """

    index: int
    origin: str
    issued_at: str
    pgp_fingerprint: str = ""
    digest: str = ""
    verified_at: str = ""

    @property
    def verifiable(self) -> bool:
        """Tell whether a holder can prove custody of this share."""
        return bool(self.digest)


@dataclass(frozen=True)
class State:
    """Everything the service keeps between restarts."""

    threshold: int
    key_length: int
    verifier_salt: bytes
    verifier_mac: bytes
    custody_key: bytes
    share_limit: int = 255
    shares: tuple[ShareRecord, ...] = field(default_factory=tuple)

    @property
    def issued_x(self) -> frozenset[int]:
        """Return every x ever handed out."""
        return frozenset(r.index for r in self.shares)

    def to_dict(self) -> dict:
        """Return the JSON-ready form kept in the state file."""
        return {
            "threshold": self.threshold,
            "key_length": self.key_length,
            "share_limit": self.share_limit,
            "verifier": {"salt": self.verifier_salt.hex(), "hmac": self.verifier_mac.hex()},
            "custody_key": self.custody_key.hex(),
            "shares": [dict(vars(r)) for r in self.shares],  # asdict() deep-copies: slow here
        }

    @classmethod
    def from_dict(cls, doc: dict) -> State:
        """Parse the state file's form; ValueError names what is wrong."""
        try:
            shares = tuple(
                ShareRecord(
                    index=_int(r["index"], 1, 255),
                    origin=str(r["origin"]),
                    issued_at=str(r["issued_at"]),
                    pgp_fingerprint=str(r.get("pgp_fingerprint", "")),
                    digest=str(r.get("digest", "")),
                    verified_at=str(r.get("verified_at", "")),
                )
                for r in doc["shares"]
            )
            state = cls(
                threshold=_int(doc["threshold"], 1, 255),
                key_length=_int(doc["key_length"], 1, 64),
                share_limit=_int(doc["share_limit"], 1, 255),
                verifier_salt=bytes.fromhex(doc["verifier"]["salt"]),
                verifier_mac=bytes.fromhex(doc["verifier"]["hmac"]),
                custody_key=bytes.fromhex(doc["custody_key"]),
                shares=shares,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"missing or mistyped field {exc}") from None
        if len(state.issued_x) != len(shares):
            raise ValueError("the registry lists the same x twice")
        return state


@dataclass(frozen=True)
class Head:
    """The last line of the audit trail that the state file vouches for."""

    seq: int = 0
    digest: str = GENESIS


def encode_state_file(state: State | None, head: Head) -> bytes:
    """Serialize the whole state file."""
    doc = {
        "format": FORMAT,
        "audit": {"seq": head.seq, "head": head.digest},
        "state": state.to_dict() if state is not None else None,
    }
    # No indent: json only uses its C encoder without one, and this runs on every change.
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def parse_state_file(raw: bytes) -> tuple[State | None, Head]:
    """Parse the whole state file; ValueError names what is wrong."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValueError("it is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"unknown format (expected format {FORMAT})")
    try:
        head = Head(seq=_int(doc["audit"]["seq"], 0, 2**62), digest=str(doc["audit"]["head"]))
        raw_state = doc["state"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"missing or mistyped field {exc}") from None
    return (State.from_dict(raw_state) if raw_state is not None else None), head


def load_state_file(file: Path) -> dict:
    """Read a state file for verification: {"audit": ..., "state": ...} or ValueError."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return {"audit": {"seq": 0, "head": GENESIS}, "state": None}
    except OSError as exc:
        raise ValueError(f"cannot read the data file {file}: {exc.strerror}") from None
    try:
        state, head = parse_state_file(raw)
    except ValueError as exc:
        raise ValueError(f"the data file {file} is damaged ({exc})") from None
    return {
        "audit": {"seq": head.seq, "head": head.digest},
        "state": state.to_dict() if state is not None else None,
    }


def _int(value: object, low: int, high: int) -> int:
    """Return value if it is an int in [low, high], else raise ValueError."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value


class Store:
    """The data folder: state file, audit trail, exclusive lock, atomic writes."""

    def __init__(self, path: Path, lock_fd: int, trail: AuditTrail, state: State | None, head: Head, clock):
        self.path = path
        self._lock_fd = lock_fd
        self._trail = trail
        self._state = state
        self._head = head
        self._clock = clock

    @classmethod
    def open(cls, path: str | os.PathLike, *, clock=None) -> Store:
        """Take the data folder for this process and load its state."""
        path = Path(path).absolute()
        try:
            if path.exists() and not path.is_dir():
                raise StartupError(f"the data folder {path} is not a folder")
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the data folder {path}: {exc.strerror}") from None
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise StartupError(
                f"the data folder {path} is not readable and writable by this user "
                "(or its file system is read-only); fix its owner, permissions or mount: "
                "the service keeps it at 0700"
            )
        lock_fd = cls._lock(path)
        trail = None
        try:
            cls._remove_leftovers(path)
            state, head = cls._load(path / STATE_FILE)
            try:
                trail = AuditTrail(path / AUDIT_FILE)
            except OSError as exc:
                raise StartupError(
                    f"cannot open the audit trail {path / AUDIT_FILE}: {exc.strerror}"
                ) from None
            head = cls._reconcile(trail, head)
        except BaseException:
            if trail is not None:
                trail.close()
            os.close(lock_fd)
            raise
        return cls(path, lock_fd, trail, state, head, clock or _utc_now)

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
    def _load(file: Path) -> tuple[State | None, Head]:
        """Read the state file; refuse to start, untouched, if it is damaged."""
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None, Head()
        except OSError as exc:
            raise StartupError(f"cannot read the data file {file}: {exc.strerror}") from None
        try:
            return parse_state_file(raw)
        except ValueError as exc:
            raise StartupError(
                f"the data file {file} is damaged ({exc}); it was left untouched: "
                "restore it from a backup before starting the service"
            ) from None

    @staticmethod
    def _reconcile(trail: AuditTrail, head: Head) -> Head:
        """Find the trail's last line and check it against the state file's head."""
        raw = trail.read()
        lines = raw.split(b"\n")
        tail = lines.pop()
        problem = None
        if tail:
            problem = "its last line is incomplete"
        elif len(lines) < head.seq:
            problem = f"it ends at line {len(lines)} but the state file vouches for line {head.seq}"
        elif head.seq and line_hash(lines[head.seq - 1]) != head.digest:
            problem = f"line {head.seq} differs from the one the state file recorded"
        if problem is None and len(lines) > head.seq and _event_of(lines[-1]) in STATE_EVENTS:
            # A change of state whose line was written but whose state file was
            # not (a crash between the two writes): it never happened and no
            # reply was sent, so its line goes.
            trail.truncate(len(raw) - len(lines[-1]) - 1)
            log.warning("audit trail: removed line %d, a change the state file never recorded", len(lines))
            lines.pop()
        if problem is not None:
            raise StartupError(
                f"the audit trail {trail.path} does not match the data file ({problem}); "
                "it was left untouched: check it with 'python -m app.audit verify' and restore "
                "the data folder from a backup"
            )
        if len(lines) == head.seq:
            return head
        return Head(seq=len(lines), digest=line_hash(lines[-1]))

    @property
    def state(self) -> State | None:
        """Return the current state, or None before initialization."""
        return self._state

    @property
    def head(self) -> Head:
        """Return the audit trail's last line."""
        return self._head

    def record(self, event: str, /, **fields) -> None:
        """Append one event to the audit trail, durably, without a change of state."""
        self._commit(event, fields, None)

    def initialize(self, state: State, event: str, /, **fields) -> None:
        """Record the state of a freshly initialized service, with its event."""
        if self._state is not None:
            raise RuntimeError("the store is already initialized")
        self._commit(event, fields, state)

    def mark_verified(self, index: int, when: str, event: str, /, **fields) -> ShareRecord:
        """Record durably that the holder of ``index`` proved custody at ``when``."""
        state = self._require_state()
        shares = tuple(replace(r, verified_at=when) if r.index == index else r for r in state.shares)
        self._commit(event, fields, replace(state, shares=shares))
        return next(r for r in shares if r.index == index)

    def add_share(self, record: ShareRecord, event: str, /, **fields) -> None:
        """Record one newly issued x durably, with its event."""
        state = self._require_state()
        if record.index in state.issued_x:
            raise RuntimeError("that x was issued before")
        self._commit(event, fields, replace(state, shares=state.shares + (record,)))

    def _require_state(self) -> State:
        if self._state is None:
            raise RuntimeError("the store is not initialized")
        return self._state

    def _commit(self, event: str, fields: dict, state: State | None) -> None:
        """Append the event's line, then (for a change of state) the state file.

        Either both are durable when this returns, or neither changed: a failed
        state write cuts the line it follows back off the trail.
        """
        line = make_line(self._head.seq + 1, self._head.digest, self._clock(), event, fields)
        head = Head(seq=self._head.seq + 1, digest=line_hash(line))
        size = self._trail.size()
        try:
            self._trail.append(line)
            if state is not None:
                try:
                    self._write_atomic(STATE_FILE, encode_state_file(state, head))
                except OSError:
                    self._trail.truncate(size)
                    raise
        except OSError as exc:
            log.error("could not record %s: %s", event, exc.strerror or exc)
            raise Unavailable(
                f"the server could not record the change ({exc.strerror or 'I/O error'}); "
                "nothing was changed or issued: retry once the server's disk is fixed"
            ) from None
        self._head = head
        if state is not None:
            self._state = state

    def _write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``: temporary file, fsync, rename, fsync folder."""
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fdatasync(f.fileno())
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
            self._trail.close()
            os.close(self._lock_fd)
            self._lock_fd = -1


def _event_of(line: bytes) -> str | None:
    """Return the event name of a trail line, or None if it does not parse."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get("event") if isinstance(event, dict) else None


def _utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
