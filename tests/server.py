"""Run the real service under gunicorn, on a free loopback port, for tests."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BOOT_SECONDS = 30


def free_port() -> int:
    """Ask the kernel for a loopback port nobody uses right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(server, name: str, seconds: float = BOOT_SECONDS) -> None:
    """Return once server.url answers /v1/sys/health with any status; kill it and raise if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.proc.returncode}:\n{server.output()}")
        try:
            # Any status (501 uninitialized, 503 sealed) means the listener is up.
            requests.get(server.url + "/v1/sys/health", timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):
            # Timeout too: on a loaded machine a worker still booting may accept and not answer in 1 s.
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
    server.kill()
    raise RuntimeError(f"{name} did not answer within {seconds:g}s:\n{server.output()}")


class Server:
    """One gunicorn master with the production configuration."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        env: dict | None = None,
        args=(),
        prefix=(),
        app_spec: str = "wsgi:app",
    ):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No rate limit (tests send many writes from one address) unless the
        # caller's env names one; a variable set to None is left out, so a test can
        # run the real default. The mode is the service's default, token, unless
        # the test's ceremony_auth marker put another in os.environ (tests/conftest.py).
        merged = {
            **os.environ,
            "GENERATE_SHARE_DATA_DIR": str(self.data_dir),
            "GENERATE_SHARE_BIND": f"127.0.0.1:{self.port}",
            "GENERATE_SHARE_RATE_LIMIT": "off",
            **(env or {}),
        }
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.args = list(args)
        self.prefix = list(prefix)  # e.g. setpriv, to run with fewer privileges
        self.app_spec = app_spec  # the service, or a benchmark's bare app
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> subprocess.Popen:
        """Start gunicorn in its own process group without waiting for it."""
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "gunicorn.conf.py",
                    *self.args,
                    self.app_spec,
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self.proc

    def start(self) -> Server:
        """Start gunicorn and return once it answers HTTP."""
        self.spawn()
        wait_for_http(self, "gunicorn")
        return self

    def get(self, path: str, timeout: float = 30, **kwargs) -> requests.Response:
        """GET a path of the server, within 30 s unless ``timeout`` says otherwise."""
        return requests.get(self.url + path, timeout=timeout, **kwargs)

    def put(self, path: str, timeout: float = 30, **kwargs) -> requests.Response:
        """PUT to a path of the server, within 30 s unless ``timeout`` says otherwise."""
        return requests.put(self.url + path, timeout=timeout, **kwargs)

    def delete(self, path: str, timeout: float = 30, **kwargs) -> requests.Response:
        """DELETE a path of the server, within 30 s unless ``timeout`` says otherwise."""
        return requests.delete(self.url + path, timeout=timeout, **kwargs)

    def wait(self, timeout: float = BOOT_SECONDS) -> int:
        """Wait for the master to exit and return its exit code."""
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """Return everything gunicorn and the app printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Shut down gracefully (SIGTERM) and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=BOOT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Kill master and worker at once (SIGKILL), as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=BOOT_SECONDS)
        self._reap_group()

    def _reap_group(self) -> None:
        """Make sure no process of the group is left holding the data folder."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        # The killed worker is reparented and may linger as a zombie; what
        # matters is that it no longer holds the data folder's lock.
        lock = self.data_dir / "lock"
        if not lock.exists():
            return
        deadline = time.monotonic() + BOOT_SECONDS
        with lock.open("rb") as f:
            while time.monotonic() < deadline:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                    return
                except BlockingIOError:
                    time.sleep(0.02)

    def __enter__(self) -> Server:  # noqa: PYI034 (never subclassed)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._reap_group()
