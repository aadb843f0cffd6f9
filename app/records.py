"""The records' commit protocol: the audit trail and the state file, written together.

``Store`` is what the service writes through. It opens the data folder
(``app.folder``), has ``app.reading`` read and check the records (the state
file, ``app.state``; the trail, ``app.audit``), settles a write a crash
interrupted, and then commits each event's line together with the record of
the new head: for a change of state the state file (replaced atomically:
temporary file, fdatasync, rename, fsync of the folder), for any other event
the head file (one copy overwritten in place, fdatasync). Either both are
durable or neither changed. With an audit key (``app.anchor``), every head
recorded carries its anchor, and the records must carry theirs to start.
``Store`` is not thread-safe: the service calls it under its own lock.

At start a line past the recorded head that ``app.reading`` calls
``Pending.CUT`` (a change of state the state file never took, whose reply
was never sent) is cut; one it calls ``Pending.KEPT`` is kept. Any other
mismatch stops the start, in ``app.reading``'s words, with what to do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC, datetime

from .anchor import AuditKey, anchored
from .audit import (
    AUDIT_FILE,
    HEAD_FILE,
    NOBODY,
    AuditTrail,
    HeadFile,
    RequestInfo,
    blank_head_file,
    line_hash,
    make_line,
)
from .errors import StartupError, Unavailable
from .folder import DataFolder, SymlinkError
from .reading import Checked, Pending, Problem, Unreadable, check, read_records
from .state import FORMAT, STATE_FILE, Head, ShareRecord, State, encode_state_file

__all__ = ["Store"]

log = logging.getLogger(__name__)


class Store:
    """The data folder's records: state file, head file and audit trail, committed together."""

    def __init__(
        self,
        folder: DataFolder,
        trail: AuditTrail,
        heads: HeadFile,
        state: State | None,
        head: Head,
        clock,
        key: AuditKey | None = None,
    ):
        self.path = folder.path
        self._key = key
        self._folder = folder
        self._trail = trail
        self._heads = heads
        self._state = state
        self._head = head
        self._clock = clock
        self._watchers: list = []

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        clock=None,
        audit_key: AuditKey | None = None,
        anchor_now: bool = False,
    ) -> Store:
        """Take the data folder for this process, load its state and check the whole trail against it.

        With ``audit_key``, every recorded head must carry its anchor under that key; ``anchor_now``
        (``generate-share audit anchor``) anchors records written before the key was set, once
        the rest of the check has passed.
        """
        folder = DataFolder.open(path)
        trail = heads = None
        try:
            folder.remove_leftovers(STATE_FILE)
            folder.remove_leftovers(HEAD_FILE)
            checked = _check_at_start(folder, audit_key, anchor_now)
            trail = _open_trail(folder)
            state, head, heads = _settle(folder, trail, checked, audit_key, anchor_now)
        except BaseException:
            for file in (heads, trail):
                if file is not None:
                    file.close()
            folder.close()
            raise
        return cls(folder, trail, heads, state, head, clock or _utc_now, audit_key)

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
        """Call ``callback(seq, line)`` after each event is committed (under the caller's lock: be cheap)."""
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
        head = anchored(Head(seq=self._head.seq + 1, digest=line_hash(line)), self._key)
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
            callback(head.seq, line)

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


_RESTORE = (
    "the records were left untouched: run 'generate-share audit verify {dir}' to see what is wrong, "
    "and restore the data folder from a backup"
)


def _check_at_start(folder: DataFolder, key: AuditKey | None, adopting: bool) -> Checked:
    """Read and check the records through the locked folder; refuse to start, in app.reading's words."""
    try:
        return check(read_records(folder.path, folder.read), key, anchors=True, adopting=adopting)
    except Unreadable as exc:
        raise StartupError(f"{exc}; remove it" if exc.link else str(exc)) from None
    except Problem as exc:
        raise StartupError(f"{exc}; {_RESTORE.format(dir=folder.path)}") from None


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


def _settle(
    folder: DataFolder, trail: AuditTrail, checked: Checked, key: AuditKey | None, anchor_now: bool
) -> tuple[State | None, Head, HeadFile]:
    """Settle an interrupted write that the checks found, and open the head file."""
    lines, heads = checked.lines, checked.heads
    if checked.pending is Pending.CUT:
        # A change of state whose line was written but whose state file was
        # not (a crash between the two writes): it never happened and no
        # reply was sent, so its line goes.
        trail.truncate(len(checked.records.trail) - len(lines[-1]) - 1)
        log.warning("audit trail: removed line %d, a change the state file never recorded", len(lines))
    elif checked.pending is Pending.KEPT:
        log.warning("audit trail: line %d was written but its head not recorded (a crash); kept", len(lines))
    head = anchored(checked.head, key)
    # Anchored anew: records adopted under the key, or a head file from before the key beside an
    # empty trail (the checks let both through).
    unanchored = key is not None and heads.file_head is not None and heads.file_head.anchor is None
    head_file = _open_head_file(folder, heads.file_head, head, key, rewrite=anchor_now or unanchored)
    if (
        checked.records.state_file is None
        or heads.format != FORMAT
        or (key and heads.state_head.anchor is None)
    ):
        # A new folder, one from before the head file, or records anchored now: from now
        # on the state file says the head file exists (and carries the anchor), so deleting
        # the head file (or the anchors) shows.
        folder.replace(STATE_FILE, encode_state_file(heads.state, anchored(heads.state_head, key)))
    return heads.state, head, head_file


def _open_head_file(
    folder: DataFolder, recorded: Head | None, head: Head, key: AuditKey | None, *, rewrite: bool = False
) -> HeadFile:
    """Open the head file (made if missing, or anew with ``rewrite``) and record ``head`` in it."""
    path = folder.path / HEAD_FILE
    try:
        if recorded is None or rewrite:
            folder.replace(HEAD_FILE, blank_head_file(head.seq, head.digest, head.anchor))
        fd = folder.open_file(HEAD_FILE, os.O_RDWR)
    except SymlinkError as exc:
        raise StartupError(f"{exc}; remove it") from None
    except OSError as exc:
        raise StartupError(f"cannot write the audit head file {path}: {exc.strerror}") from None
    heads = HeadFile(fd, path, key.sign if key else None)
    if recorded is not None and not rewrite and recorded != head:
        try:
            heads.write(head.seq, head.digest)
        except OSError as exc:
            heads.close()
            raise StartupError(f"cannot write the audit head file {path}: {exc.strerror}") from None
    return heads


def _utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
