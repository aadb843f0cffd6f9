"""Reading a data folder's records: one reader, and one set of checks in one wording.

Three callers read a data folder: the service at start (``Store.open``,
through the folder it has locked), ``generate-share audit verify`` and
``generate-share backup`` (by path, never following a link, while the service
may be running). All three read through :func:`read_records`, in the order
the service writes backwards (head file, state file, trail): while the
service runs, the trail read last can only be longer, never shorter.

:func:`check` makes every check of the records against each other (the
state file's and the head file's heads, the chain of every line, the
registry replayed from the trail against the state file's) and raises a
:class:`Problem` that says, in one sentence, what is wrong; each caller adds
only what to do about it (start: restore from a backup; verify: nothing). It
changes nothing: settling an interrupted write at start is ``app.records``'
job, with what :class:`Checked` reports.

The recorded head is the later of the state file's and the head file's. A
crash between appending a line and recording it leaves the trail exactly one
line past the recorded head: a change of state there is :attr:`Pending.CUT`
(the state file never took it, and no reply was sent), any other event
:attr:`Pending.KEPT` (a refusal or an accepted share that did happen, whose
reply may not have left). Anything else that does not match (a line edited,
moved or cut anywhere, two lines or more past the head, the state file
missing beside a trail) is a Problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

from .anchor import AuditKey, check_anchors
from .audit import AUDIT_FILE, HEAD_FILE, BrokenTrail, read_head_file, split_lines, walk
from .folder import SymlinkError, read_file
from .state import FORMAT, STATE_FILE, Head, State, parse_state_file

__all__ = [
    "STATE_EVENTS",
    "Checked",
    "Pending",
    "Problem",
    "Records",
    "Report",
    "Unreadable",
    "check",
    "examine",
    "read_heads",
    "read_records",
    "verify",
]

#: Events that change the state file; every other event only appends a line.
STATE_EVENTS = frozenset({"init", "adopted", "share_issued", "share_verified", "root_token_reset"})
#: What a line of a state event holds verbatim: only such lines need decoding to replay the trail.
_STATE_WORDS = re.compile(b"|".join(re.escape(b'"%s"' % name.encode()) for name in sorted(STATE_EVENTS)))


class Problem(Exception):
    """What is wrong with a data folder's records, in one sentence that names the file."""


class Unreadable(Problem):
    """A file of the records could not be read; ``link`` when it is a symbolic link."""

    def __init__(self, message: str, *, link: bool = False):
        super().__init__(message)
        self.link = link


class Pending(Enum):
    """What a line past the recorded head is, and what the service does with it at start."""

    NONE = "none"  # there is none
    CUT = "cut"  # a change of state the state file never took: removed
    KEPT = "kept"  # any other event, written but not yet recorded: kept


@dataclass(frozen=True)
class Records:
    """A data folder's three files as read, None for one that is missing (the trail: empty)."""

    folder: Path
    head_file: bytes | None
    state_file: bytes | None
    trail: bytes


def read_records(folder: str | os.PathLike, read: Callable[[str], bytes | None] | None = None) -> Records:
    """Read head file, state file and trail, in that order, with ``read`` (by path, never through a link)."""
    folder = Path(folder)
    read = read or partial(read_file, folder)
    found = []
    for name in (HEAD_FILE, STATE_FILE, AUDIT_FILE):
        try:
            found.append(read(name))
        except SymlinkError as exc:
            raise Unreadable(str(exc), link=True) from None
        except OSError as exc:
            raise Unreadable(f"cannot read {folder / name}: {exc.strerror}") from None
    return Records(folder, found[0], found[1], found[2] or b"")


@dataclass(frozen=True)
class Heads:
    """What the state file and the head file say, parsed."""

    state: State | None
    state_head: Head
    format: int
    file_head: Head | None


def read_heads(records: Records) -> Heads:
    """Parse the state file and the head file; a Problem names the one that is damaged."""
    folder = records.folder
    state, state_head, form = None, Head(), FORMAT
    if records.state_file is not None:
        try:
            state, state_head, form = parse_state_file(records.state_file)
        except ValueError as exc:
            raise Problem(f"the data file {folder / STATE_FILE} is damaged ({exc})") from None
    file_head = None
    if records.head_file is not None:
        found = read_head_file(records.head_file)
        if found is None:
            raise Problem(
                f"the audit head file {folder / HEAD_FILE} is damaged (neither of its two copies is intact)"
            )
        file_head = Head(*found)
    return Heads(state, state_head, form, file_head)


@dataclass(frozen=True)
class Checked:
    """Records that passed every check: what they hold, and what to do with a line past the head."""

    records: Records
    heads: Heads
    lines: list[bytes]
    head: Head
    shares: int
    pending: Pending


def check(
    records: Records, key: AuditKey | None = None, *, anchors: bool = False, adopting: bool = False
) -> Checked:
    """Check the records against each other; a Problem says in one sentence what does not match.

    With ``anchors`` (always at start) or a ``key``, the recorded heads must also stand under the
    audit key: anchored records need it, and with it every head needs its anchor (``adopting``:
    records from before the key may have none yet; app.anchor.check_anchors).
    """
    folder = records.folder
    raw = records.trail
    if records.state_file is None and raw:
        count = raw.count(b"\n")
        raise Problem(
            f"the data file {folder / STATE_FILE} is missing, but the audit trail {folder / AUDIT_FILE} "
            f"holds {count} lines (a service started afresh would write over the records of another)"
        )
    heads = read_heads(records)
    if anchors or key is not None:
        problem = check_anchors(key, heads.state_head, heads.file_head, written=bool(raw), adopting=adopting)
        if problem:
            raise Problem(f"the audit trail {folder / AUDIT_FILE} cannot be trusted: {problem}")
    if heads.file_head is None and raw and heads.format == FORMAT:
        raise Problem(
            f"the audit head file {folder / HEAD_FILE} is missing, but the data file {folder / STATE_FILE} "
            f"says it was written (lines cut from the end of the audit trail could not be noticed without it)"
        )
    try:
        lines = split_lines(raw)
        legacy = heads.file_head is None and heads.format != FORMAT
        head, shares, pending = examine(lines, heads.state, heads.state_head, heads.file_head, legacy=legacy)
    except BrokenTrail as exc:
        raise Problem(str(exc)) from None  # "audit trail broken at line N: why"
    return Checked(records, heads, lines, head, shares, pending)


def examine(
    lines: list[bytes], state: State | None, state_head: Head, file_head: Head | None, *, legacy: bool = False
) -> tuple[Head, int, Pending]:
    """Check every line's chain and the replayed registry against the records; BrokenTrail names a break.

    Return the trail's head, the shares in the registry, and what a line past
    the recorded head is. ``legacy``: a format-1 folder, whose code recorded
    the head only with a change of state.
    """
    end = len(lines)
    recorded = state_head if file_head is None or state_head.seq >= file_head.seq else file_head
    pending = end == recorded.seq + 1
    registry: dict[int, str] = {}
    digest = before = ""
    last: dict = {}
    # A format-1 folder is read line by line: no line may say a later format wrote it.
    for number, event, digest in walk(lines, parse=None if legacy else _STATE_WORDS):
        if legacy and event.get("format", 1) != 1:
            raise BrokenTrail(
                number,
                f"the line was written in records format {event.get('format')}, but the data file says "
                f"format 1 and there is no head file {HEAD_FILE}: a folder never goes back to format 1 "
                "(the data file's format was changed and the head file deleted)",
            )
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
    outcome = Pending.NONE
    head = Head(end, digest) if end else Head()
    if pending and last.get("event") in STATE_EVENTS:
        outcome, head = Pending.CUT, Head(end - 1, before) if end > 1 else Head()
    elif pending:
        outcome = Pending.KEPT
    if end and outcome is not Pending.CUT:
        _apply(last, registry, end)
    _compare(state, registry, head.seq)
    return head, len(registry), outcome


def _apply(event: dict, registry: dict[int, str], number: int) -> None:
    """Apply one event to the replayed registry."""
    kind = event.get("event")
    if kind in ("init", "adopted"):
        if registry:
            raise BrokenTrail(number, f"an {kind} event after the service was initialized")
        for x in event.get("indices", []):
            registry[x] = kind
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


# -- generate-share audit verify -----------------------------------------------------


@dataclass(frozen=True)
class Report:
    """The outcome of a verification; ``found`` is False when DATA_DIR holds no records at all."""

    ok: bool
    lines: int
    message: str
    head: Head | None = None
    found: bool = True


_NOTES = {
    Pending.NONE: "",
    Pending.CUT: "; line {n} is a change of state never committed: the service removes it at start",
    Pending.KEPT: "; line {n} was written, its head not yet recorded: the service keeps it at start",
}


def verify(data_dir: str | os.PathLike, audit_key: AuditKey | None = None) -> Report:
    """Make the checks of a start on ``data_dir`` without changing anything, and report the head.

    With ``audit_key``, the recorded heads must carry their anchors under it; the message names
    the anchor it checked, or says that none was.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        return Report(
            False,
            0,
            f"{folder} is not a folder (no such data folder): name the service's DATA_DIR",
            found=False,
        )
    try:
        records = read_records(folder)
    except Unreadable as exc:
        return Report(False, 0, f"{exc}; verify never follows a link" if exc.link else str(exc))
    if records.state_file is None and not records.trail:
        return Report(
            False,
            0,
            f"{folder} holds no records (no {STATE_FILE}, no {AUDIT_FILE}): name the service's DATA_DIR",
            found=False,
        )
    try:
        checked = check(records, audit_key)
    except Problem as exc:
        return Report(False, records.trail.count(b"\n"), str(exc))
    notes = _NOTES[checked.pending].format(n=len(checked.lines))
    if records.head_file is None and records.trail:
        notes += f"; no head file yet (from before format {FORMAT}): the service writes it at its next start"
    head, shares = checked.head, checked.shares
    return Report(
        True,
        head.seq,
        f"audit trail verified: {head.seq} lines, {shares} shares in the registry match the state file"
        f"{notes}\n{_anchor_note(checked.heads, audit_key)}\naudit head: seq {head.seq}, hash {head.digest}",
        head=head,
    )


def _anchor_note(heads: Heads, key: AuditKey | None) -> str:
    """Say which anchor verify checked."""
    if key is not None:
        return f"anchor checked: the audit key {key.key_id} vouches for the recorded heads"
    if heads.state_head.anchor or (heads.file_head and heads.file_head.anchor):
        return (
            "anchor not checked: the heads are anchored under an audit key, which was not given (--key-file)"
        )
    return (
        "anchor checked: none (no audit key): the chain and the two recorded heads only, which whoever "
        "can write the data folder can recompute"
    )
