"""The data folder: who may write it, its lock, and file access that never follows a symlink.

The service refuses to start on a folder that anyone but its own user could
change (another owner, or group- or world-writable) and on any entry in it
that is a symbolic link: a link would let whoever planted it point the lock,
the trail or the state file at a file outside. The folder is opened once and
every file in it is reached through that open folder with ``O_NOFOLLOW``, so
what was checked is what is used, even if the path is swapped later.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import stat
import time
from pathlib import Path

from .errors import StartupError

__all__ = [
    "DataFolder",
    "LowDiskGuard",
    "SymlinkError",
    "free_bytes",
    "read_file",
    "refuse_if_served",
    "served_by",
]

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkError(OSError):
    """A name in the data folder is a symbolic link, which is never followed."""

    def __init__(self, path: Path):
        super().__init__(errno.ELOOP, f"{path} is a symbolic link")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


class DataFolder:
    """One data folder, opened, checked and locked for this process."""

    def __init__(self, path: Path, fd: int, lock_fd: int):
        self.path = path
        self.fd = fd
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, path: str | os.PathLike) -> DataFolder:
        """Make the folder if missing (0700), check it, and lock it; StartupError says why not."""
        path = Path(path).absolute()
        _make(path)
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise StartupError(
                f"the data folder {path} is not readable and writable by this user "
                "(or its file system is read-only); fix its owner, permissions or mount: "
                "the service keeps it at 0700"
            )
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _symlinked_folder(path) from None
            raise StartupError(f"cannot open the data folder {path}: {exc.strerror}") from None
        try:
            _check(path, fd)
            lock_fd = _lock(path, fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, lock_fd)

    def open_file(self, name: str, flags: int, mode: int = 0o600) -> int:
        """Open ``name`` in the folder without following a symlink; SymlinkError if it is one."""
        try:
            return os.open(name, flags | _NOFOLLOW, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkError(self.path / name) from None
            raise

    def read(self, name: str) -> bytes | None:
        """Return the whole file ``name``, or None if it does not exist."""
        try:
            fd = self.open_file(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        return _read_fd(fd)

    def replace(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``: temporary file, fdatasync, rename, fsync of the folder."""
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        fd = self.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fdatasync(f.fileno())
            # rename never follows a symlink at either name
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            _unlink(tmp, self.fd)
            raise
        os.fsync(self.fd)

    def remove_leftovers(self, name: str) -> None:
        """Delete temporary files of a ``replace(name, ...)`` that a crash interrupted."""
        prefix = f".{name}."
        for entry in os.listdir(self.fd):
            if entry.startswith(prefix) and entry.endswith(".tmp"):
                _unlink(entry, self.fd)

    def close(self) -> None:
        """Release the lock and the folder."""
        if self.fd >= 0:
            os.close(self._lock_fd)
            os.close(self.fd)
            self.fd = self._lock_fd = -1


def free_bytes(path: str | os.PathLike) -> int:
    """Return the bytes an unprivileged writer may still use in the file system of ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


#: How often, at most, the guard asks the file system for its free space.
DISK_CHECK_SECONDS = 1.0


class LowDiskGuard:
    """Tell whether the data folder has less room than ``min_free`` bytes (0: never), asked once a second.

    What a stranger can make the service write (refusals, failed custody
    checks) is held back below this floor; the events of a ceremony are
    always written. Thread-safe: one tuple, replaced whole.
    """

    def __init__(
        self, path: str | os.PathLike, min_free: int = 0, *, free=free_bytes, monotonic=time.monotonic
    ):
        self.path = path
        self.min_free = min_free
        self._free = free
        self._monotonic = monotonic
        self._low: tuple[float, bool] = (float("-inf"), False)  # (checked at, low)

    def low(self) -> bool:
        """Tell whether the folder is below the floor (a cached statvfs: a race costs one more call)."""
        if not self.min_free:
            return False
        checked, low = self._low
        tick = self._monotonic()
        if tick - checked < DISK_CHECK_SECONDS:
            return low
        try:
            low = self._free(self.path) < self.min_free
        except OSError:
            low = True  # cannot tell: assume the worst, a ceremony's events are written anyway
        if low and not self._low[1]:
            log.warning(
                "the data folder has less than %d MB free: what strangers cause is counted in memory only",
                self.min_free // (1024 * 1024),
            )
        self._low = (tick, low)
        return low


def read_file(folder: str | os.PathLike, name: str) -> bytes | None:
    """Read ``name`` in a folder without taking it or following a symlink; None if missing."""
    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkError(path) from None
        raise
    return _read_fd(fd)


def _make(path: Path) -> None:
    """Create the folder 0700 if it is missing; refuse a path that is not a folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise StartupError(f"cannot create the data folder {path}: {exc.strerror}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise _symlinked_folder(path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"the data folder {path} is not a folder")
    if st is None:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the data folder {path}: {exc.strerror}") from None


def _symlinked_folder(path: Path) -> StartupError:
    # Refused rather than resolved: the folder checked must be the folder
    # used, and a link someone else can re-point would move the records at
    # the next start without the operator noticing.
    return StartupError(
        f"the data folder {path} is a symbolic link (to {os.path.realpath(path)}); "
        "set GENERATE_SHARE_DATA_DIR to the real folder"
    )


def _check(path: Path, fd: int) -> None:
    """Refuse a folder others could change, and any symlink in it."""
    st = os.fstat(fd)
    uid = os.geteuid()
    if st.st_uid != uid:
        raise StartupError(
            f"the data folder {path} belongs to uid {st.st_uid}, not to the service's user "
            f"(uid {uid}); give it to that user (chown) or run the service as its owner"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StartupError(
            f"the data folder {path} is writable by its group or by others (mode {mode:o}); "
            f"anyone who can write it could replace the records: chmod 700 {path}"
        )
    with os.scandir(fd) as entries:
        links = sorted(entry.name for entry in entries if entry.is_symlink())
    if links:
        raise StartupError(
            f"{path / links[0]} is a symbolic link; the service never follows links in its "
            "data folder: remove it (and put the real file there if it belongs to the service)"
        )


def _served_sentence(path: Path, holder: str) -> str:
    """Say that another process serves the folder, and what to do."""
    return (
        f"the data folder {path} is already served by another process (pid {holder}): stop that "
        "one first, or serve another folder (GENERATE_SHARE_DATA_DIR); exactly one process, with "
        "one worker, may serve a data folder, because a ceremony lives in its memory"
    )


def served_by(folder: str | os.PathLike) -> str | None:
    """Return the pid (as written) of the process serving folder, or None; creates nothing.

    gunicorn's master asks this before it forks a worker, so that a second
    ``make run`` says so in one line instead of a worker's traceback.
    """
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # no folder or no lock file yet: nobody serves it; a link is Store.open's to refuse
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)  # closing drops the probe's lock
    return None


def refuse_if_served(folder: str | os.PathLike) -> None:
    """Raise StartupError, in one sentence, when another process serves folder."""
    holder = served_by(folder)
    if holder is not None:
        raise StartupError(_served_sentence(Path(folder).absolute(), holder))


def _lock(path: Path, folder_fd: int) -> int:
    """Hold an exclusive lock on the folder for the life of this process."""
    lock_path = path / LOCK_FILE
    try:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StartupError(f"{lock_path} is a symbolic link; remove it") from None
        raise StartupError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise StartupError(f"cannot lock {lock_path}: {exc.strerror}") from None
        raise StartupError(_served_sentence(path, holder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_fd(fd: int) -> bytes:
    """Read an open file to its end and close it."""
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _unlink(name: str, folder_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        pass
