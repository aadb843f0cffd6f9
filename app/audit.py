"""The audit trail: one JSON line per event, chained by SHA-256.

Each line carries the hash of the line before it, so editing, deleting or
reordering any line breaks the chain. The state file records the head of the
chain at every change of state, and ``GET /v1/sys/shares`` shows the current
head to every holder: a head noted in the minutes of a ceremony also catches
lines cut from the end. No line ever holds key material: events name x
coordinates, nonces and PGP fingerprints only.

The trail knows nothing of the state file: ``app.records`` checks the two
against each other (``generate-share audit verify DATA_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUDIT_FILE",
    "GENESIS",
    "REQUEST",
    "RequestInfo",
    "AuditTrail",
    "BrokenTrail",
    "event_name",
    "split_lines",
    "walk",
    "line_hash",
    "make_line",
]

AUDIT_FILE = "audit.log"
GENESIS = "0" * 64


@dataclass(frozen=True)
class RequestInfo:
    """Who asked: the request id and the client address (after trusted proxies)."""

    request_id: str = ""
    client: str = "local"


#: Set by the HTTP layer for each request; the service and store never see Flask.
REQUEST: ContextVar[RequestInfo] = ContextVar(
    "generate_share_request",
    default=RequestInfo(),  # noqa: B039 (a frozen dataclass, immutable)
)


def line_hash(line: bytes) -> str:
    """Return the SHA-256 of one line, without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def make_line(seq: int, prev: str, time: str, event: str, fields: dict) -> bytes:
    """Serialize one event as a canonical JSON line."""
    who = REQUEST.get()
    doc = {
        **fields,
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


def walk(lines: list[bytes]) -> Iterator[tuple[int, dict, str]]:
    """Yield (number, event, hash) for each line, checking the chain; BrokenTrail names a break."""
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
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
        prev = line_hash(line)
        yield number, event, prev


def event_name(line: bytes) -> str | None:
    """Return the event name of one line, or None if it does not parse."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get("event") if isinstance(event, dict) else None
