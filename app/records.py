"""The records: the audit trail and the state file, checked against each other.

``verify(data_dir)`` (``generate-share audit verify DATA_DIR``) checks the
trail's chain, replays the registry from it and compares the result with the
state file. It only reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .audit import AUDIT_FILE, GENESIS, line_hash
from .store import STATE_FILE, load_state_file

__all__ = ["Report", "verify"]


@dataclass(frozen=True)
class Report:
    """The outcome of a verification."""

    ok: bool
    lines: int
    message: str


class _Broken(Exception):
    def __init__(self, line: int, why: str):
        super().__init__(f"audit trail broken at line {line}: {why}")
        self.line = line


def verify(data_dir: str | os.PathLike) -> Report:
    """Check the chain, and the registry of the state file against it."""
    folder = Path(data_dir)
    try:
        raw = (folder / AUDIT_FILE).read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        return Report(False, 0, f"cannot read {folder / AUDIT_FILE}: {exc.strerror}")
    try:
        doc = load_state_file(folder / STATE_FILE)
    except ValueError as exc:
        return Report(False, 0, str(exc))
    lines = raw.split(b"\n")
    tail = lines.pop()  # after the last newline: empty unless a line was cut short
    try:
        if tail:
            raise _Broken(len(lines) + 1, "the last line is incomplete (the file was truncated)")
        registry, hashes = _replay(lines)
        _compare(doc, registry, hashes)
    except _Broken as exc:
        return Report(False, len(lines), str(exc))
    head = f"{len(lines)}:{hashes[-1]}" if hashes else "empty"
    return Report(
        True,
        len(lines),
        f"audit trail verified: {len(lines)} lines, {len(registry)} shares in the registry "
        f"match the state file; head {head}",
    )


def _replay(lines: list[bytes]) -> tuple[dict[int, str], list[str]]:
    """Walk the chain and rebuild the registry {x: origin} from its events."""
    registry: dict[int, str] = {}
    hashes: list[str] = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except ValueError:
            raise _Broken(number, "the line is not valid JSON (it was edited or damaged)") from None
        if not isinstance(event, dict):
            raise _Broken(number, "the line is not a JSON object")
        if event.get("seq") != number:
            raise _Broken(
                number,
                f"its sequence number is {event.get('seq')!r}, expected {number} "
                "(a line was deleted, inserted or moved)",
            )
        if event.get("prev") != prev:
            raise _Broken(
                number, f"it does not chain to line {number - 1} (that line was edited, deleted or moved)"
            )
        _apply(event, registry, number)
        prev = line_hash(line)
        hashes.append(prev)
    return registry, hashes


def _apply(event: dict, registry: dict[int, str], number: int) -> None:
    """Apply one event to the replayed registry."""
    kind = event.get("event")
    if kind in ("init", "adopted"):
        if registry:
            raise _Broken(number, f"an {kind} event after the service was initialized")
        origin = "init" if kind == "init" else "adopted"
        for x in event.get("indices", []):
            registry[x] = origin
    elif kind == "share_verified":
        if event.get("index") not in registry:
            raise _Broken(number, f"share x = {event.get('index')} verified but never issued")
    elif kind == "share_issued":
        x = event.get("index")
        if not registry or x in registry:
            raise _Broken(number, f"share x = {x} issued before init or twice")
        registry[x] = "generate-share"


def _compare(doc: dict, registry: dict[int, str], hashes: list[str]) -> None:
    """Check the state file's head and registry against the replayed chain."""
    head = doc["audit"]
    seq, digest = head["seq"], head["head"]
    if seq > len(hashes):
        raise _Broken(
            len(hashes) + 1,
            f"the state file's head is line {seq}, but the trail "
            f"ends at line {len(hashes)} (lines were cut from the end)",
        )
    if seq and hashes[seq - 1] != digest:
        raise _Broken(seq, "the line differs from the one the state file recorded as head")
    state = doc["state"]
    held = {s["index"]: s["origin"] for s in state["shares"]} if state else {}
    if held != registry:
        missing = sorted(set(registry) ^ set(held))
        raise _Broken(
            len(hashes),
            f"the registry in the state file does not match the trail (x = {missing or 'origins differ'})",
        )
