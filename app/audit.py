"""The audit trail: one JSON line per event, chained by SHA-256.

Each line carries the hash of the line before it, so editing, deleting or
reordering any line breaks the chain. The head (the last line's number and
hash) is recorded durably with every event, so lines cut from the end show
too: the state file records it at every change of state, the head file
(``audit.head``) after every other event, and ``GET /v1/sys/shares`` shows it
to every holder for the minutes of a ceremony. No line ever holds key
material: events name x coordinates, nonces and PGP fingerprints only.

Every line also says which records format wrote it (``"format": 2``), so a
folder whose trail holds such a line never reads as format 1 again (format 1
recorded no head file). With an audit key (``app.anchor``), each copy of the
head carries the head's HMAC under that key.

The trail knows nothing of the state file: ``app.records`` checks the two
against each other (``generate-share audit verify DATA_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUDIT_FILE",
    "GENESIS",
    "LINE_FORMAT",
    "HEAD_FILE",
    "HeadFile",
    "blank_head_file",
    "read_head_file",
    "NOBODY",
    "RequestInfo",
    "AuditTrail",
    "BrokenTrail",
    "split_lines",
    "walk",
    "line_hash",
    "make_line",
]

AUDIT_FILE = "audit.log"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64
#: The records format that writes every line from now on (the state file's FORMAT).
LINE_FORMAT = 2

# The head file holds two copies of the head, each in its own file-system
# block, overwritten in place by turns (line n goes to copy n % 2). A crash
# can tear only the copy being written; the other still holds an earlier
# head, so the file is never without a valid one. Overwriting an allocated
# block in place needs one fdatasync and no new blocks, which is what makes
# recording the head with every refusal cheap (and immune to a full disk).
_SLOT = 4096
_RECORD = 256  # 192 before the anchor: the NUL padding of an older copy reads the same
_MAGIC = b"generate-share audit head 1"


@dataclass(frozen=True)
class RequestInfo:
    """Who asked: the request id, the client address (after trusted proxies), and what it asked for.

    The HTTP layer makes one for each request and passes it down with every
    call; a trail line names its request id and client. ``action`` names the
    write (the API's endpoint, such as "update") in a refusal's line.
    """

    request_id: str = ""
    client: str = "local"
    action: str = ""


#: Who a line names when no request caused it (a command run on the folder, a test).
NOBODY = RequestInfo()


def line_hash(line: bytes) -> str:
    """Return the SHA-256 of one line, without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def make_line(seq: int, prev: str, time: str, event: str, fields: dict, who: RequestInfo = NOBODY) -> bytes:
    """Serialize one event as a canonical JSON line, in the name of the request ``who``."""
    doc = {
        **fields,
        "format": LINE_FORMAT,
        "seq": seq,
        "time": time,
        "event": event,
        "request_id": who.request_id,
        "client": who.client,
        "prev": prev,
    }
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()


class AuditTrail:
    """The append-only file, reached through a descriptor; its owner serializes every call."""

    def __init__(self, fd: int, path: Path):
        self.path = path
        self._fd = fd

    def read(self) -> bytes:
        """Return the whole file, read through the open descriptor (never by name)."""
        size = self.size()
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(self._fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def size(self) -> int:
        """Return the file's length in bytes."""
        return os.fstat(self._fd).st_size

    def append(self, line: bytes) -> None:
        """Append one line and make it durable; on failure leave the file as it was."""
        size = self.size()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(28, "short write")
            # fdatasync: the data and the new size, which is all a reader needs;
            # cheaper than fsync on every event.
            os.fdatasync(self._fd)
        except OSError:
            self.truncate(size)
            raise

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (undo an append that did not commit)."""
        os.ftruncate(self._fd, size)
        os.fdatasync(self._fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def _encode_head(seq: int, digest: str, anchor: str | None = None) -> bytes:
    """Serialize one copy of the head (and its anchor), with a checksum that shows a torn write."""
    body = b"%s seq=%d hash=%s" % (_MAGIC, seq, digest.encode())
    if anchor is not None:
        body += b" anchor=" + anchor.encode()
    check = hashlib.sha256(body).hexdigest()[:32].encode()
    return (body + b" check=" + check + b"\n").ljust(_RECORD, b"\0")


def _decode_head(copy: bytes) -> tuple[int, str, str | None] | None:
    """Return (seq, hash, anchor or None) from one copy, or None if it is torn or damaged."""
    body, sep, rest = copy[:_RECORD].partition(b" check=")
    if not sep or rest[:33] != hashlib.sha256(body).hexdigest()[:32].encode() + b"\n":
        return None
    if not body.startswith(_MAGIC + b" "):
        return None
    fields = dict(item.partition(b"=")[::2] for item in body[len(_MAGIC) + 1 :].split(b" "))
    seq, digest, anchor = fields.get(b"seq", b""), fields.get(b"hash", b""), fields.get(b"anchor")
    if not seq.isdigit() or len(digest) != 64 or (anchor is not None and len(anchor) != 64):
        return None
    return int(seq), digest.decode(), anchor.decode() if anchor is not None else None


def blank_head_file(seq: int, digest: str, anchor: str | None = None) -> bytes:
    """Return a whole head file with both copies holding one head."""
    copy = _encode_head(seq, digest, anchor).ljust(_SLOT, b"\0")
    return copy + copy


def read_head_file(raw: bytes) -> tuple[int, str, str | None] | None:
    """Return the latest intact head (seq, hash, anchor) in a head file, or None if no copy is intact."""
    heads = [_decode_head(raw[at : at + _SLOT]) for at in (0, _SLOT)]
    return max((h for h in heads if h is not None), default=None, key=lambda h: h[0])


class HeadFile:
    """The head file, open for overwriting in place; its owner serializes every call."""

    def __init__(self, fd: int, path: Path, sign=None):
        self.path = path
        self._fd = fd
        self._sign = sign  # (seq, digest) -> anchor, with an audit key

    def write(self, seq: int, digest: str, *, copy: int | None = None) -> None:
        """Record the head durably in ``copy`` (by default the one that line ``seq`` owns)."""
        data = _encode_head(seq, digest, self._sign(seq, digest) if self._sign else None)
        at = (seq % 2 if copy is None else copy) * _SLOT
        if os.pwrite(self._fd, data, at) != len(data):
            raise OSError(28, "short write")
        os.fdatasync(self._fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


class BrokenTrail(Exception):
    """The trail is damaged or was tampered with at ``line`` (1-based)."""

    def __init__(self, line: int, why: str):
        super().__init__(f"audit trail broken at line {line}: {why}")
        self.line = line


def split_lines(raw: bytes) -> list[bytes]:
    """Split the trail into its lines; BrokenTrail if the last one was cut short."""
    lines = raw.split(b"\n")
    if lines.pop():  # after the last newline: empty unless a line was cut short
        raise BrokenTrail(len(lines) + 1, "the last line is incomplete (the file was truncated)")
    return lines


def walk(
    lines: list[bytes], *, parse: re.Pattern[bytes] | None = None
) -> Iterator[tuple[int, dict | None, str]]:
    """Yield (number, event, hash) for each line, checking the chain; BrokenTrail names a break.

    With ``parse``, a line is decoded only if the pattern occurs in it (or it
    is the last line, or fails the quick check); the others yield None.
    """
    prev = GENESIS.encode()
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        # The quick check: the service writes canonical JSON (sorted keys, no
        # spaces), so a line it wrote holds its own number and its
        # predecessor's hash verbatim, and json.loads (most of the cost of a
        # start on a long trail) is needed only for the events the caller
        # replays. Any edit to a line changes its hash, which the next line
        # or the recorded head no longer matches, so the quick check loses
        # nothing; a line that fails it gets the full check, for the message.
        if (
            parse is not None
            and number != last
            and b'"seq":%d,' % number in line
            and b'"prev":"' + prev + b'"' in line
            and not parse.search(line)
        ):
            prev = hashlib.sha256(line).hexdigest().encode()
            yield number, None, prev.decode()
            continue
        event = _check_line(number, line, prev.decode())
        prev = line_hash(line).encode()
        yield number, event, prev.decode()


def _check_line(number: int, line: bytes, prev: str) -> dict:
    """Decode one line and check its number and link; BrokenTrail names a break."""
    try:
        event = json.loads(line)
    except ValueError:
        raise BrokenTrail(number, "the line is not valid JSON (it was edited or damaged)") from None
    if not isinstance(event, dict):
        raise BrokenTrail(number, "the line is not a JSON object")
    if event.get("seq") != number:
        raise BrokenTrail(
            number,
            f"its sequence number is {event.get('seq')!r}, expected {number} "
            "(a line was deleted, inserted or moved)",
        )
    if event.get("prev") != prev:
        raise BrokenTrail(
            number, f"it does not chain to line {number - 1} (that line was edited, deleted or moved)"
        )
    return event
