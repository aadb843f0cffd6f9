"""A consistent copy of a data folder, taken while the service runs.

The running service holds the folder's lock for its whole life, so the copy
cannot be taken under it. It needs none: the service appends a trail line
first and records the head after (in the state file for a change of state,
in the head file otherwise), and every file is read here in the opposite
order: the head file, then the state file, then the trail. The trail read
last holds every line either head names, and perhaps lines written since;
the copy keeps the trail only up to the later of the two heads, so it is the
folder exactly as it stood when the head was read. The copy is then checked
with ``app.reading.verify`` (chain, heads, registry against the state file)
and taken again, a few times, if a write still raced it.

The PGP homes (``gnupg/``) and the lock are not copied: the service makes
both at start. The copy holds what the state file holds (the verifier, the
custody key, the token's hash): keep it like the data folder itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .audit import AUDIT_FILE, HEAD_FILE
from .errors import StartupError
from .reading import Problem, Unreadable, read_heads, read_records, verify
from .state import FORMAT, STATE_FILE, Head

__all__ = ["ATTEMPTS", "BackupError", "Copied", "backup"]

#: How many times a copy is taken before giving up on a folder that keeps changing under it.
ATTEMPTS = 5


class BackupError(StartupError):
    """The copy could not be made; the message says why and what to do."""

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage  # the arguments were wrong (no such folder, DEST exists), not the records


@dataclass(frozen=True)
class Copied:
    """What a finished copy holds."""

    dest: Path
    head: Head
    attempts: int
    message: str


def backup(data_dir: str | os.PathLike, dest: str | os.PathLike) -> Copied:
    """Copy the records of ``data_dir`` into the new folder ``dest`` (0700, files 0600) and verify it."""
    source, target = Path(data_dir), Path(dest)
    if not source.is_dir():
        raise BackupError(
            f"{source} is not a folder (no such data folder): name the service's DATA_DIR", usage=True
        )
    try:
        os.mkdir(target, 0o700)  # never into or over anything that exists
    except FileExistsError:
        raise BackupError(
            f"{target} already exists: name a new folder, a backup never overwrites", usage=True
        ) from None
    except OSError as exc:
        raise BackupError(f"cannot create {target}: {exc.strerror}") from None
    os.chmod(target, 0o700)  # mkdir's mode is cut by the umask, never widened: make it exact
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            files, head = _read(source)
            _write(target, files)
        except BackupError:
            _empty(target)
            os.rmdir(target)
            raise
        report = verify(target)
        if report.ok and head in (None, report.head):
            return Copied(target, report.head, attempt, report.message)
        problem = report.message
        _empty(target)
    os.rmdir(target)
    raise BackupError(
        f"no consistent copy of {source} after {ATTEMPTS} attempts; the last one failed: {problem}. "
        f"Run generate-share audit verify {source}"
    )


def _read(source: Path) -> tuple[dict[str, bytes], Head | None]:
    """Read head file, state file and trail (app.reading's one reader); cut the trail at the later head.

    The head is None for a format-1 folder, copied whole: verify then says where its head is.
    """
    try:
        records = read_records(source)
        if records.state_file is None:
            raise BackupError(f"{source} holds no {STATE_FILE}: name the service's DATA_DIR")
        heads = read_heads(records)
    except Unreadable as exc:
        raise BackupError(f"{exc}; a backup never follows a link" if exc.link else str(exc)) from None
    except Problem as exc:
        raise BackupError(str(exc)) from None
    head = heads.state_head
    if heads.file_head is not None and heads.file_head.seq > head.seq:
        head = heads.file_head
    if records.head_file is None and heads.format != FORMAT:
        # Written by format 1, which recorded no head for events that change nothing, so
        # its trail runs past the state's head; no service of today runs on it unchanged.
        return {STATE_FILE: records.state_file, AUDIT_FILE: records.trail}, None
    files = {STATE_FILE: records.state_file, AUDIT_FILE: _first_lines(records.trail, head.seq)}
    if records.head_file is not None:
        files[HEAD_FILE] = records.head_file
    return files, head


def _first_lines(trail: bytes, count: int) -> bytes:
    """Return the first ``count`` whole lines of the trail (all of it if it is shorter)."""
    end = 0
    for _ in range(count):
        end = trail.find(b"\n", end) + 1
        if end == 0:
            return trail  # shorter than its head says: verify names the break
    return trail[:end]


def _write(target: Path, files: dict[str, bytes]) -> None:
    """Write each file 0600, durably, never through a link; then sync the folder."""
    folder = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name, data in files.items():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.fsync(folder)
    except OSError as exc:
        raise BackupError(f"cannot write the copy in {target}: {exc.strerror}") from None
    finally:
        os.close(folder)


def _empty(target: Path) -> None:
    """Remove what an attempt wrote in ``target``."""
    for name in (STATE_FILE, AUDIT_FILE, HEAD_FILE):
        try:
            os.unlink(target / name)
        except FileNotFoundError:
            pass
