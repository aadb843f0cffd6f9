"""The records: the audit trail and the state file, kept and checked together.

``Store`` is what the service writes through: it opens the data folder
(``app.folder``), loads the state file (``app.store``), checks the trail
(``app.audit``) against it, and commits each event's line and, for a change
of state, the state file, so that both are durable or neither changed. Every
write of the state file replaces it atomically (temporary file, fdatasync,
rename, fsync of the folder), so after a crash it is the old state or the new
one, never a mix. ``Store`` is not thread-safe: the service calls it under
its own lock.

``verify(data_dir)`` (``generate-share audit verify DATA_DIR``) checks the
trail's chain, replays the registry from it and compares the result with the
state file. It only reads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .audit import AUDIT_FILE, AuditTrail, BrokenTrail, event_name, line_hash, make_line, split_lines, walk
from .errors import StartupError, Unavailable
from .folder import DataFolder, SymlinkError, read_file
from .store import STATE_FILE, Head, ShareRecord, State, encode_state_file, parse_state_file

__all__ = ["STATE_EVENTS", "Report", "Store", "verify"]

log = logging.getLogger(__name__)

#: Events that change the state file; every other event only appends a line.
STATE_EVENTS = frozenset({"init", "adopted", "share_issued", "share_verified", "root_token_reset"})


class Store:
    """The data folder's records: state file and audit trail, committed together."""

    def __init__(self, folder: DataFolder, trail: AuditTrail, state: State | None, head: Head, clock):
        self.path = folder.path
        self._folder = folder
        self._trail = trail
        self._state = state
        self._head = head
        self._clock = clock

    @classmethod
    def open(cls, path: str | os.PathLike, *, clock=None) -> Store:
        """Take the data folder for this process, load its state and check the trail against it."""
        folder = DataFolder.open(path)
        trail = None
        try:
            folder.remove_leftovers(STATE_FILE)
            state, head = _load(folder)
            trail = _open_trail(folder)
            head = _reconcile(trail, head)
        except BaseException:
            if trail is not None:
                trail.close()
            folder.close()
            raise
        return cls(folder, trail, state, head, clock or _utc_now)

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

    def replace_token_hash(self, token_hash: str, event: str, /, **fields) -> None:
        """Record durably that the operator token is now the one hashing to ``token_hash``."""
        self._commit(event, fields, replace(self._require_state(), token_hash=token_hash))

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
        """Replace ``name`` in the folder with ``data``, atomically and durably."""
        self._folder.replace(name, data)

    def close(self) -> None:
        """Release the data folder."""
        if self._folder.fd >= 0:
            self._trail.close()
            self._folder.close()


def _load(folder: DataFolder) -> tuple[State | None, Head]:
    """Read the state file; refuse to start, untouched, if it is damaged."""
    file = folder.path / STATE_FILE
    try:
        raw = folder.read(STATE_FILE)
    except SymlinkError as exc:
        raise StartupError(f"{exc}; remove it") from None
    except OSError as exc:
        raise StartupError(f"cannot read the data file {file}: {exc.strerror}") from None
    if raw is None:
        return None, Head()
    try:
        return parse_state_file(raw)
    except ValueError as exc:
        raise StartupError(
            f"the data file {file} is damaged ({exc}); it was left untouched: "
            "restore it from a backup before starting the service"
        ) from None


def _open_trail(folder: DataFolder) -> AuditTrail:
    """Open the trail for appending, never through a symlink."""
    path = folder.path / AUDIT_FILE
    try:
        fd = folder.open_file(AUDIT_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    except SymlinkError as exc:
        raise StartupError(f"{exc}; remove it") from None
    except OSError as exc:
        raise StartupError(f"cannot open the audit trail {path}: {exc.strerror}") from None
    return AuditTrail(fd, path)


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
    if problem is None and len(lines) > head.seq and event_name(lines[-1]) in STATE_EVENTS:
        # A change of state whose line was written but whose state file was
        # not (a crash between the two writes): it never happened and no
        # reply was sent, so its line goes.
        trail.truncate(len(raw) - len(lines[-1]) - 1)
        log.warning("audit trail: removed line %d, a change the state file never recorded", len(lines))
        lines.pop()
    if problem is not None:
        raise StartupError(
            f"the audit trail {trail.path} does not match the data file ({problem}); "
            "it was left untouched: check it with 'generate-share audit verify DATA_DIR' and "
            "restore the data folder from a backup"
        )
    if len(lines) == head.seq:
        return head
    return Head(seq=len(lines), digest=line_hash(lines[-1]))


# -- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """The outcome of a verification."""

    ok: bool
    lines: int
    message: str


def verify(data_dir: str | os.PathLike) -> Report:
    """Check the chain, and the registry of the state file against it."""
    folder = Path(data_dir)
    try:
        raw = read_file(folder, AUDIT_FILE) or b""
    except SymlinkError as exc:
        return Report(False, 0, f"{exc}; verify never follows a link")
    except OSError as exc:
        return Report(False, 0, f"cannot read {folder / AUDIT_FILE}: {exc.strerror}")
    file = folder / STATE_FILE
    try:
        state_raw = read_file(folder, STATE_FILE)
    except SymlinkError as exc:
        return Report(False, 0, f"{exc}; verify never follows a link")
    except OSError as exc:
        return Report(False, 0, f"cannot read the data file {file}: {exc.strerror}")
    try:
        state, head = parse_state_file(state_raw) if state_raw is not None else (None, Head())
    except ValueError as exc:
        return Report(False, 0, f"the data file {file} is damaged ({exc})")
    lines = raw.split(b"\n")[:-1]
    try:
        lines = split_lines(raw)
        registry, hashes = _replay(lines)
        _compare(state, head, registry, hashes)
    except BrokenTrail as exc:
        return Report(False, len(lines), str(exc))
    top = f"{len(lines)}:{hashes[-1]}" if hashes else "empty"
    return Report(
        True,
        len(lines),
        f"audit trail verified: {len(lines)} lines, {len(registry)} shares in the registry "
        f"match the state file; head {top}",
    )


def _replay(lines: list[bytes]) -> tuple[dict[int, str], list[str]]:
    """Walk the chain and rebuild the registry {x: origin} from its events."""
    registry: dict[int, str] = {}
    hashes: list[str] = []
    for number, event, digest in walk(lines):
        _apply(event, registry, number)
        hashes.append(digest)
    return registry, hashes


def _apply(event: dict, registry: dict[int, str], number: int) -> None:
    """Apply one event to the replayed registry."""
    kind = event.get("event")
    if kind in ("init", "adopted"):
        if registry:
            raise BrokenTrail(number, f"an {kind} event after the service was initialized")
        origin = "init" if kind == "init" else "adopted"
        for x in event.get("indices", []):
            registry[x] = origin
    elif kind == "share_verified":
        if event.get("index") not in registry:
            raise BrokenTrail(number, f"share x = {event.get('index')} verified but never issued")
    elif kind == "share_issued":
        x = event.get("index")
        if not registry or x in registry:
            raise BrokenTrail(number, f"share x = {x} issued before init or twice")
        registry[x] = "generate-share"


def _compare(state: State | None, head: Head, registry: dict[int, str], hashes: list[str]) -> None:
    """Check the state file's head and registry against the replayed chain."""
    if head.seq > len(hashes):
        raise BrokenTrail(
            len(hashes) + 1,
            f"the state file's head is line {head.seq}, but the trail "
            f"ends at line {len(hashes)} (lines were cut from the end)",
        )
    if head.seq and hashes[head.seq - 1] != head.digest:
        raise BrokenTrail(head.seq, "the line differs from the one the state file recorded as head")
    held = {s.index: s.origin for s in state.shares} if state else {}
    if held != registry:
        missing = sorted(set(registry) ^ set(held))
        raise BrokenTrail(
            len(hashes),
            f"the registry in the state file does not match the trail (x = {missing or 'origins differ'})",
        )


def _utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
