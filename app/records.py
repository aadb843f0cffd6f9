"""The records: the audit trail and the state file, kept and checked together.

``Store`` is what the service writes through: it opens the data folder
(``app.folder``), loads the state file (``app.state``), checks the whole trail
(``app.audit``) against it, and commits each event's line together with the
record of the new head: for a change of state the state file (replaced
atomically: temporary file, fdatasync, rename, fsync of the folder), for any
other event the head file (one copy overwritten in place, fdatasync). Either
both are durable or neither changed. ``Store`` is not thread-safe: the
service calls it under its own lock.

The recorded head is the later of the state file's and the head file's. A
crash between appending a line and recording it leaves the trail exactly one
line past the recorded head; at start that line is cut if it is a change of
state (the state file never took it, and no reply was sent), and kept
otherwise (a refusal or an accepted share that did happen, whose reply may
not have left; keeping it loses no evidence). Anything else that does not
match (a line edited, moved or cut anywhere, two lines or more past the
head, the state file missing beside a trail) stops the start.

``verify(data_dir)`` (``generate-share audit verify DATA_DIR``) makes the same
checks without changing anything, and reports the head. It only reads.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from .audit import (
    AUDIT_FILE,
    HEAD_FILE,
    NOBODY,
    AuditTrail,
    BrokenTrail,
    HeadFile,
    RequestInfo,
    blank_head_file,
    line_hash,
    make_line,
    read_head_file,
    split_lines,
    walk,
)
from .errors import StartupError, Unavailable
from .folder import DataFolder, SymlinkError, read_file
from .state import FORMAT, STATE_FILE, Head, ShareRecord, State, encode_state_file, parse_state_file

__all__ = ["STATE_EVENTS", "Report", "Store", "verify"]

log = logging.getLogger(__name__)

#: Events that change the state file; every other event only appends a line.
STATE_EVENTS = frozenset({"init", "adopted", "share_issued", "share_verified", "root_token_reset"})
#: What a line of a state event holds verbatim: only such lines need decoding to replay the trail.
_STATE_WORDS = re.compile(b"|".join(re.escape(b'"%s"' % name.encode()) for name in sorted(STATE_EVENTS)))


class Store:
    """The data folder's records: state file, head file and audit trail, committed together."""

    def __init__(
        self, folder: DataFolder, trail: AuditTrail, heads: HeadFile, state: State | None, head: Head, clock
    ):
        self.path = folder.path
        self._folder = folder
        self._trail = trail
        self._heads = heads
        self._state = state
        self._head = head
        self._clock = clock
        self._watchers: list = []

    @classmethod
    def open(cls, path: str | os.PathLike, *, clock=None) -> Store:
        """Take the data folder for this process, load its state and check the whole trail against it."""
        folder = DataFolder.open(path)
        trail = heads = None
        try:
            folder.remove_leftovers(STATE_FILE)
            folder.remove_leftovers(HEAD_FILE)
            loaded = _load(folder)
            trail = _open_trail(folder)
            recorded = _load_head_file(folder)
            state, head, heads = _settle(folder, trail, loaded, recorded)
        except BaseException:
            for file in (heads, trail):
                if file is not None:
                    file.close()
            folder.close()
            raise
        return cls(folder, trail, heads, state, head, clock or _utc_now)

    @property
    def state(self) -> State | None:
        """Return the current state, or None before initialization."""
        return self._state

    @property
    def head(self) -> Head:
        """Return the audit trail's last line."""
        return self._head

    @property
    def folder(self) -> DataFolder:
        """Return the open, locked data folder (for files beside the records, such as notify cursors)."""
        return self._folder

    def watch(self, callback) -> None:
        """Call ``callback(seq)`` after each event is committed (under the caller's lock: keep it cheap)."""
        self._watchers.append(callback)

    # Each write names who caused it (``who``: the request's id and client), passed
    # by the caller; a line no request caused names nobody.

    def record(self, event: str, /, *, who: RequestInfo = NOBODY, **fields) -> None:
        """Append one event to the audit trail, durably, without a change of state."""
        self._commit(event, fields, None, who)

    def initialize(self, state: State, event: str, /, *, who: RequestInfo = NOBODY, **fields) -> None:
        """Record the state of a freshly initialized service, with its event."""
        if self._state is not None:
            raise RuntimeError("the store is already initialized")
        self._commit(event, fields, state, who)

    def mark_verified(
        self, index: int, when: str, event: str, /, *, who: RequestInfo = NOBODY, **fields
    ) -> ShareRecord:
        """Record durably that the holder of ``index`` proved custody at ``when``."""
        state = self._require_state()
        shares = tuple(replace(r, verified_at=when) if r.index == index else r for r in state.shares)
        self._commit(event, fields, replace(state, shares=shares), who)
        return next(r for r in shares if r.index == index)

    def add_share(self, record: ShareRecord, event: str, /, *, who: RequestInfo = NOBODY, **fields) -> None:
        """Record one newly issued x durably, with its event."""
        state = self._require_state()
        if record.index in state.issued_x:
            raise RuntimeError("that x was issued before")
        self._commit(event, fields, replace(state, shares=state.shares + (record,)), who)

    def replace_token_hash(
        self, token_hash: str, event: str, /, *, who: RequestInfo = NOBODY, **fields
    ) -> None:
        """Record durably that the operator token is now the one hashing to ``token_hash``."""
        self._commit(event, fields, replace(self._require_state(), token_hash=token_hash), who)

    def _require_state(self) -> State:
        if self._state is None:
            raise RuntimeError("the store is not initialized")
        return self._state

    def _commit(self, event: str, fields: dict, state: State | None, who: RequestInfo) -> None:
        """Append the event's line, then record the new head: in the state file or the head file.

        Either both are durable when this returns, or neither changed: a failed
        second write cuts the line it follows back off the trail.
        """
        line = make_line(self._head.seq + 1, self._head.digest, self._clock(), event, fields, who)
        head = Head(seq=self._head.seq + 1, digest=line_hash(line))
        size = self._trail.size()
        try:
            self._trail.append(line)
            try:
                if state is not None:
                    self._write_atomic(STATE_FILE, encode_state_file(state, head))
                else:
                    self._heads.write(head.seq, head.digest)
            except OSError:
                self._trail.truncate(size)
                if state is None:
                    self._restore_head_copy(head.seq)
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
        for callback in self._watchers:
            callback(head.seq)

    def _restore_head_copy(self, seq: int) -> None:
        """Put the current head back into the copy a failed write may have changed."""
        # The copy may hold the new head even though its fdatasync failed;
        # left so, the next start would see a head past the trail's end.
        try:
            self._heads.write(self._head.seq, self._head.digest, copy=seq % 2)
        except OSError:
            log.error("could not restore the audit head file after a failed write")

    def _write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` in the folder with ``data``, atomically and durably."""
        self._folder.replace(name, data)

    def close(self) -> None:
        """Release the data folder (app.refusals' Trail writes what it holds first)."""
        if self._folder.fd >= 0:
            self._heads.close()
            self._trail.close()
            self._folder.close()


@dataclass(frozen=True)
class _Loaded:
    """The state file as read at start: None fields when it is missing."""

    present: bool
    state: State | None = None
    head: Head = field(default_factory=Head)
    format: int = FORMAT


def _read_at_start(folder: DataFolder, name: str, what: str) -> bytes | None:
    """Read one file of the folder (None if missing); refuse to start, naming it, if it cannot be read."""
    try:
        return folder.read(name)
    except SymlinkError as exc:
        raise StartupError(f"{exc}; remove it") from None
    except OSError as exc:
        raise StartupError(f"cannot read {what} {folder.path / name}: {exc.strerror}") from None


def _load(folder: DataFolder) -> _Loaded:
    """Read the state file; refuse to start, untouched, if it is damaged."""
    file = folder.path / STATE_FILE
    raw = _read_at_start(folder, STATE_FILE, "the data file")
    if raw is None:
        return _Loaded(present=False)
    try:
        state, head, form = parse_state_file(raw)
    except ValueError as exc:
        raise StartupError(
            f"the data file {file} is damaged ({exc}); it was left untouched: "
            "restore it from a backup before starting the service"
        ) from None
    return _Loaded(True, state, head, form)


def _load_head_file(folder: DataFolder) -> Head | None:
    """Read the head file: None if it is missing; refuse to start if no copy is intact."""
    file = folder.path / HEAD_FILE
    raw = _read_at_start(folder, HEAD_FILE, "the audit head file")
    if raw is None:
        return None
    found = read_head_file(raw)
    if found is None:
        raise StartupError(
            f"the audit head file {file} is damaged (neither of its two copies is intact); "
            f"it was left untouched: {_VERIFY_HINT.format(dir=folder.path)}"
        )
    return Head(*found)


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


_VERIFY_HINT = (
    "run 'generate-share audit verify {dir}' to see what is wrong, and restore the data folder from a backup"
)


def _settle(
    folder: DataFolder, trail: AuditTrail, loaded: _Loaded, recorded: Head | None
) -> tuple[State | None, Head, HeadFile]:
    """Check the whole trail against the records, settle an interrupted write, and open the head file."""
    raw = trail.read()
    count = raw.count(b"\n")
    if not loaded.present and raw:
        raise StartupError(
            f"the data file {folder.path / STATE_FILE} is missing, but the audit trail "
            f"{trail.path} holds {count} lines: the service will not start afresh "
            "over the records of another; restore the data file from a backup (both files "
            "were left untouched)"
        )
    if recorded is None and raw and loaded.format == FORMAT:
        raise StartupError(
            f"the audit head file {folder.path / HEAD_FILE} is missing, but the data file "
            f"{folder.path / STATE_FILE} says it was written; lines cut from the end of the "
            f"audit trail {trail.path} could not be noticed without it: "
            + _VERIFY_HINT.format(dir=folder.path)
        )
    try:
        lines = split_lines(raw)
        legacy = recorded is None and loaded.format != FORMAT
        found = examine(lines, loaded.state, loaded.head, recorded, legacy=legacy)
    except BrokenTrail as exc:
        raise StartupError(
            f"the audit trail {trail.path} does not match the records ({exc}); it was left "
            f"untouched: {_VERIFY_HINT.format(dir=folder.path)}"
        ) from None
    if found.pending == "cut":
        # A change of state whose line was written but whose state file was
        # not (a crash between the two writes): it never happened and no
        # reply was sent, so its line goes.
        trail.truncate(len(raw) - len(lines[-1]) - 1)
        log.warning("audit trail: removed line %d, a change the state file never recorded", len(lines))
    elif found.pending == "kept":
        log.warning("audit trail: line %d was written but its head not recorded (a crash); kept", len(lines))
    heads = _open_head_file(folder, recorded, found.head)
    if not loaded.present or loaded.format != FORMAT:
        # A new folder, or one from before the head file: from now on the
        # state file says the head file exists, so deleting it shows.
        folder.replace(STATE_FILE, encode_state_file(loaded.state, loaded.head))
    return loaded.state, found.head, heads


def _open_head_file(folder: DataFolder, recorded: Head | None, head: Head) -> HeadFile:
    """Open the head file (made if missing) and record ``head`` in it."""
    path = folder.path / HEAD_FILE
    try:
        if recorded is None:
            folder.replace(HEAD_FILE, blank_head_file(head.seq, head.digest))
        fd = folder.open_file(HEAD_FILE, os.O_RDWR)
    except SymlinkError as exc:
        raise StartupError(f"{exc}; remove it") from None
    except OSError as exc:
        raise StartupError(f"cannot write the audit head file {path}: {exc.strerror}") from None
    heads = HeadFile(fd, path)
    if recorded is not None and recorded != head:
        try:
            heads.write(head.seq, head.digest)
        except OSError as exc:
            heads.close()
            raise StartupError(f"cannot write the audit head file {path}: {exc.strerror}") from None
    return heads


# -- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class Examined:
    """What a whole check of the trail found: its head, and what to do with a line past it."""

    head: Head
    shares: int
    #: "none"; "cut" (a change of state the state file never took); "kept" (any other event).
    pending: str


def examine(
    lines: list[bytes], state: State | None, state_head: Head, file_head: Head | None, *, legacy: bool = False
) -> Examined:
    """Check every line's chain and the replayed registry against the records; BrokenTrail names a break.

    ``legacy``: a format-1 folder, whose code recorded the head only with a change of state.
    """
    end = len(lines)
    recorded = state_head if file_head is None or state_head.seq >= file_head.seq else file_head
    pending = end == recorded.seq + 1
    registry: dict[int, str] = {}
    digest = before = ""
    last: dict = {}
    for number, event, digest in walk(lines, parse=_STATE_WORDS):
        if number == state_head.seq and digest != state_head.digest:
            raise BrokenTrail(number, "the line differs from the one the state file recorded as head")
        if file_head is not None and number == file_head.seq and digest != file_head.digest:
            raise BrokenTrail(number, f"the line differs from the one the head file {HEAD_FILE} recorded")
        if number == end:
            last = event
        else:
            before = digest
            if event is not None:
                _apply(event, registry, number)
    if state_head.seq > end:
        raise BrokenTrail(
            end + 1,
            f"the state file's head is line {state_head.seq}, but the trail ends at line {end} "
            "(lines were cut from the end)",
        )
    if file_head is not None and file_head.seq > end:
        raise BrokenTrail(
            end + 1,
            f"the head file {HEAD_FILE} records line {file_head.seq}, but the trail ends at line {end} "
            "(lines were cut from the end)",
        )
    if end > recorded.seq + 1 and legacy:
        # Format 1 appended refusals, accepted shares and cancels without recording a
        # head: they were written and answered. Only a last change of state may be
        # uncommitted (cut below); one before it is caught by the registry check.
        pending = last.get("event") in STATE_EVENTS
    elif end > recorded.seq + 1:
        raise BrokenTrail(
            recorded.seq + 2,
            f"the recorded head is line {recorded.seq}, but the trail goes on to line {end} "
            "(lines were added that the service never recorded)",
        )
    outcome = "none"
    head = Head(end, digest) if end else Head()
    if pending and last.get("event") in STATE_EVENTS:
        outcome, head = "cut", Head(end - 1, before) if end > 1 else Head()
    elif pending:
        outcome = "kept"
    if end and outcome != "cut":
        _apply(last, registry, end)
    _compare(state, registry, head.seq)
    return Examined(head=head, shares=len(registry), pending=outcome)


@dataclass(frozen=True)
class Report:
    """The outcome of a verification; ``found`` is False when DATA_DIR holds no records at all."""

    ok: bool
    lines: int
    message: str
    head: Head | None = None
    found: bool = True


def verify(data_dir: str | os.PathLike) -> Report:
    """Check the whole trail, its head and the registry against the state file; change nothing."""
    folder = Path(data_dir)
    if not folder.is_dir():
        return Report(
            False,
            0,
            f"{folder} is not a folder (no such data folder): name the service's DATA_DIR",
            found=False,
        )
    # Read in the order the service writes backwards (head, state, trail):
    # while it runs, the trail read last can only be longer, never shorter.
    try:
        head_raw = read_file(folder, HEAD_FILE)
        state_raw = read_file(folder, STATE_FILE)
        raw = read_file(folder, AUDIT_FILE)
    except SymlinkError as exc:
        return Report(False, 0, f"{exc}; verify never follows a link")
    except OSError as exc:
        return Report(False, 0, f"cannot read {exc.filename or folder}: {exc.strerror}")
    if state_raw is None and not raw:
        return Report(
            False,
            0,
            f"{folder} holds no records (no {STATE_FILE}, no {AUDIT_FILE}): name the service's DATA_DIR",
            found=False,
        )
    raw = raw or b""
    count = raw.count(b"\n")
    if state_raw is None:
        return Report(
            False,
            count,
            f"the data file {folder / STATE_FILE} is missing, but the audit trail "
            f"{folder / AUDIT_FILE} holds {count} lines",
        )
    try:
        state, state_head, form = parse_state_file(state_raw)
    except ValueError as exc:
        return Report(False, 0, f"the data file {folder / STATE_FILE} is damaged ({exc})")
    recorded = None
    if head_raw is not None:
        found = read_head_file(head_raw)
        if found is None:
            return Report(
                False, count, f"the audit head file {folder / HEAD_FILE} is damaged (no copy is intact)"
            )
        recorded = Head(*found)
    elif raw and form == FORMAT:
        return Report(
            False,
            count,
            f"the audit head file {folder / HEAD_FILE} is missing, but the data file says it was written",
        )
    try:
        lines = split_lines(raw)
        found = examine(lines, state, state_head, recorded, legacy=recorded is None and form != FORMAT)
    except BrokenTrail as exc:
        return Report(False, count, str(exc))
    notes = {
        "none": "",
        "cut": f"; line {len(lines)} is a change of state never committed: the service removes it at start",
        "kept": f"; line {len(lines)} was written, its head not yet recorded: the service keeps it at start",
    }[found.pending]
    if head_raw is None and raw:
        notes += f"; no head file yet (from before format {FORMAT}): the service writes it at its next start"
    head = found.head
    return Report(
        True,
        head.seq,
        f"audit trail verified: {head.seq} lines, {found.shares} shares in the registry match the state file"
        f"{notes}\naudit head: seq {head.seq}, hash {head.digest}",
        head=head,
    )


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


def _compare(state: State | None, registry: dict[int, str], end: int) -> None:
    """Check the state file's registry against the one replayed from the trail."""
    held = {s.index: s.origin for s in state.shares} if state else {}
    if held != registry:
        missing = sorted(set(registry) ^ set(held))
        raise BrokenTrail(
            max(end, 1),
            f"the registry in the state file does not match the trail (x = {missing or 'origins differ'})",
        )


def _utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
