"""gpg behind a guard: python-gnupg with a time limit and a concurrency cap, in private GnuPG homes.

python-gnupg drives the real ``gpg`` binary. Every run goes through
``_gpg_run``, which holds one of a few slots and kills gpg at a deadline; every
run happens in a fresh private GnuPG home made here, and ``set_home_root``
points the homes into the data folder and removes any a killed process left.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator

import gnupg

from ..errors import StartupError
from .errors import PGPUnavailable

__all__ = [
    "GPG_CONCURRENCY",
    "GPG_OPTIONS",
    "GPG_TIMEOUT_SECONDS",
    "GPG_WAIT_SECONDS",
    "INSTALL_HINT",
    "set_home_root",
]

# python-gnupg logs gpg's stderr, its command lines and data snippets at DEBUG
# (and stdout chunks when its ``log_everything`` switch is on). Version 0.5.7
# never logs what it feeds gpg's stdin, but pin its logger to WARNING anyway so
# that turning on DEBUG for the service can never put a share in a log record.
logging.getLogger("gnupg").setLevel(logging.WARNING)

INSTALL_HINT = "gpg is not installed; install it with 'apt-get install gnupg'"

# --no-autostart: public-key work needs neither gpg-agent nor dirmngr, and
# without it merely scanning a secret key starts an agent that outlives the home.
GPG_OPTIONS = ["--no-autostart"]

# Every gpg run is killed after GPG_TIMEOUT_SECONDS (python-gnupg 0.5.7 has no
# time limit of its own), and at most GPG_CONCURRENCY run at once: a request
# that waits GPG_WAIT_SECONDS for a slot gets PGPUnavailable (503, "gpg is
# busy"), so a few expensive keys cannot hold every thread of the service.
GPG_TIMEOUT_SECONDS = 10.0
GPG_CONCURRENCY = 2
GPG_WAIT_SECONDS = 1.0
_SLOTS = threading.BoundedSemaphore(GPG_CONCURRENCY)

# Temporary GnuPG homes are made in this folder (None: the system's temporary
# folder). set_home_root points it into the data folder, so that homes left by
# a killed worker are found and removed at the next start.
_HOME_PREFIX = "generate-share-gnupg-"
_home_root: str | None = None


class _Run:
    """The gpg processes started by one call into python-gnupg, each killed at the deadline."""

    def __init__(self) -> None:
        """Start with no process and no timeout."""
        self.timed_out = False
        self._timers: list[threading.Timer] = []

    def watch(self, process: subprocess.Popen) -> None:
        """Kill process if it still runs GPG_TIMEOUT_SECONDS from now."""
        timer = threading.Timer(GPG_TIMEOUT_SECONDS, self._kill, (process,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _kill(self, process: subprocess.Popen) -> None:
        """Kill a gpg that ran too long; python-gnupg's readers then see end of file."""
        if process.poll() is None:
            self.timed_out = True
            with contextlib.suppress(OSError):
                process.kill()

    def cancel(self) -> None:
        """Stop watching: the call returned."""
        for timer in self._timers:
            timer.cancel()


_running = threading.local()  # .run: the _Run of the calling thread's gpg call


class _TimedGPG(gnupg.GPG):
    """python-gnupg's GPG, with each process it starts watched by the calling thread's _Run."""

    def _open_subprocess(self, args, *rest, **kwargs):
        """Start gpg as python-gnupg does, then arm its deadline."""
        # python-gnupg starts every process from the calling thread, inside _gpg_run.
        run = getattr(_running, "run", None)
        if run is None:  # a run outside _gpg_run would have no time limit and no slot
            raise ValueError("gpg was about to run outside _gpg_run")
        process = super()._open_subprocess(args, *rest, **kwargs)
        run.watch(process)
        return process

    def import_and_list(self, data: bytes):
        """Import the key in data into this home and return gpg's listing of it, in one gpg run."""
        # scan_keys_mem is this same call with --dry-run; without it the key is
        # stored as listed, and gpg caches its checked self-signatures, so the
        # encrypt that follows need not check them again. python-gnupg has no
        # public call for it, hence its internals (pinned below 0.6 in setup.cfg).
        result = self.result_map["scan"](self)
        stream = gnupg._make_binary_stream(data, self.encoding)
        try:
            self._handle_io(["--import-options", "import-show", "--import"], stream, result, binary=True)
        finally:
            stream.close()
        return self._decode_result(result)


@contextlib.contextmanager
def _gpg_run() -> Iterator[None]:
    """Hold a gpg slot for one python-gnupg call, with a deadline; failures become PGPUnavailable."""
    if not _SLOTS.acquire(timeout=GPG_WAIT_SECONDS):
        raise PGPUnavailable("gpg is busy with other requests; try again in a moment.")
    run = _running.run = _Run()
    try:
        try:
            yield
        except (OSError, ValueError) as exc:
            if run.timed_out:
                raise PGPUnavailable(_timeout_message()) from None
            # python-gnupg raises these when gpg cannot be run, fails on start-up
            # (the constructor runs it once) or a pipe to it breaks.
            raise PGPUnavailable(f"gpg failed unexpectedly: {exc}") from exc
        if run.timed_out:
            raise PGPUnavailable(_timeout_message())
    finally:
        run.cancel()
        _running.run = None
        _SLOTS.release()


def _timeout_message() -> str:
    """Say that gpg was stopped at its time limit."""
    return f"gpg took longer than {GPG_TIMEOUT_SECONDS:g} seconds and was stopped; try again later."


def _new_home() -> tuple[str, gnupg.GPG]:
    """Make a fresh private GnuPG home and return its path and a GPG bound to it."""
    binary = shutil.which("gpg")
    if binary is None:
        raise PGPUnavailable(INSTALL_HINT)
    try:
        if _home_root is not None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(_home_root, 0o700)
        home = tempfile.mkdtemp(prefix=_HOME_PREFIX, dir=_home_root)  # mode 0700
    except OSError as exc:
        raise PGPUnavailable(f"Cannot create a temporary GnuPG home: {exc}") from exc
    try:
        return home, _bind(binary, home)
    except BaseException:
        _remove_home(home)
        raise


# python-gnupg's constructor runs `gpg --list-config` to learn gpg's version,
# which is the same for every home: probe once per gpg binary, and give each
# home a copy of the probed GPG (plain attributes only) with its own path.
_PROBED: dict[str, gnupg.GPG] = {}
_PROBED_LOCK = threading.Lock()


def _bind(binary: str, home: str) -> gnupg.GPG:
    """Return a GPG running binary in home; gpg's start-up probe runs once per binary."""
    with _PROBED_LOCK:
        probed = _PROBED.get(binary)
        if probed is None:
            with _gpg_run():
                probed = _TimedGPG(gpgbinary=binary, gnupghome=home, options=GPG_OPTIONS)
            _PROBED[binary] = probed  # only once the probe succeeded
    gpg = copy.copy(probed)
    gpg.gnupghome = home
    gpg.options = list(GPG_OPTIONS)
    return gpg


@contextlib.contextmanager
def _gnupg() -> Iterator[gnupg.GPG]:
    """Yield a GPG bound to a fresh private home, removed afterwards."""
    home, gpg = _new_home()
    try:
        yield gpg
    finally:
        _remove_home(home)


def set_home_root(path: str) -> None:
    """Make temporary GnuPG homes in path from now on, removing any a killed process left there."""
    global _home_root
    # The folder is made with the first home, so a service that never sees a
    # PGP key keeps its data folder as it was.
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _home_root = path
        return
    except OSError as exc:
        raise StartupError(f"cannot read the GnuPG folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StartupError(f"the GnuPG folder {path} is not a folder (a symlink or a file); remove it")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        # The homes hold the holders' public keys and gpg's sockets: this user's alone.
        raise StartupError(
            f"the GnuPG folder {path} must belong to this user with mode 0700; fix it with "
            f"chmod 700 {path} (and chown), or remove it"
        )
    for name in os.listdir(path):
        if name.startswith(_HOME_PREFIX):  # the data folder's lock says no live process uses it
            _remove_home(os.path.join(path, name))
    _home_root = path


def _remove_home(home: str) -> None:
    """Stop any daemon serving home, then delete it."""
    _stop_daemons(home)
    shutil.rmtree(home, ignore_errors=True)


def _stop_daemons(home: str) -> None:
    """Stop any gpg-agent or dirmngr serving home, so none outlives it."""
    # --no-autostart means none should exist; a socket in the home says one does.
    try:
        names = os.listdir(home)
    except OSError:  # already gone: nothing can serve it
        return
    if any(name.startswith("S.") for name in names):
        gpgconf = shutil.which("gpgconf") or "gpgconf"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [gpgconf, "--homedir", home, "--kill", "all"],
                capture_output=True,
                timeout=10,
                check=False,
            )
