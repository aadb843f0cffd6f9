"""Process hygiene: the real worker turns core dumps off and is non-dumpable, whatever it was started with."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.server import Server

NOBODY = 65534
# Started the way a careless shell would start it: `ulimit -c unlimited`, then
# as an ordinary user (as root, the kernel's checks below would not show).
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
UNLIMITED = ["sh", "-c", 'ulimit -c unlimited && exec "$@"', "sh", *AS_NOBODY]


def core_limit(pid: int) -> tuple[str, str]:
    """Return the soft and hard core file size limits of pid, as /proc/PID/limits shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError(f"no core limit for {pid}")


def uid(pid: int) -> int:
    """Return the real user ID of pid, from /proc/PID/status."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[1])


def nobody_reads_environ(pid: int) -> subprocess.CompletedProcess:
    """Try to read pid's /proc/PID/environ as user nobody (the same user), without any capability."""
    return subprocess.run([*AS_NOBODY, "head", "-c", "1", f"/proc/{pid}/environ"], capture_output=True)


@pytest.fixture
def nobody_folder():
    """A folder nobody can reach and owns (the test's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="gs-hygiene-"))
    folder.chmod(0o755)
    data = folder / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder)


def test_the_way_the_test_starts_processes_leaves_them_dumpable_with_core_dumps_on() -> None:
    # The control: a plain process started exactly like the server below.
    proc = subprocess.Popen([*UNLIMITED, "sh", "-c", "echo ready; exec sleep 30"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"  # past ulimit and setpriv
        assert core_limit(proc.pid) == ("unlimited", "unlimited")
        assert uid(proc.pid) == NOBODY and Path(f"/proc/{proc.pid}/status").stat().st_uid == NOBODY
        assert nobody_reads_environ(proc.pid).returncode == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_the_worker_has_no_core_dumps_and_is_not_dumpable_under_ulimit_unlimited(nobody_folder) -> None:
    server = Server(nobody_folder / "data", nobody_folder / "server.log", prefix=UNLIMITED)
    with server:
        master = server.proc.pid
        [worker] = [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
        assert uid(worker) == NOBODY
        assert core_limit(worker) == ("0", "0")
        # Non-dumpable: the kernel gives /proc/PID to root and refuses the process's own
        # user its memory and environment (what a dumpable process of nobody allows, above).
        assert Path(f"/proc/{worker}/status").stat().st_uid == 0
        refused = nobody_reads_environ(worker)
        assert refused.returncode != 0 and b"Permission denied" in refused.stderr
        # And it still serves.
        assert server.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200
