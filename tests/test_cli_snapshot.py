"""generate-share snapshot check: t holders type their shares at one terminal; offline, no server."""

from __future__ import annotations

import base64
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from snapshots import Cluster, archive, gzip_bomb, write

from app.cli import cli

SCRIPT = Path(sys.executable).parent / "generate-share"


def check(path: Path, shares: list[bytes], *, encode=bytes.hex):
    """Run snapshot check in-process with the shares on stdin, one a line."""
    typed = "".join(encode(s) + "\n" for s in shares)
    result = CliRunner().invoke(cli, ["snapshot", "check", "--snapshot", str(path)], input=typed)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    for share in shares:  # never repeated, in either encoding
        assert share.hex() not in result.output and base64.b64encode(share).decode() not in result.output
    return result


@pytest.mark.parametrize(
    "layout", [{}, {"vault": True}, {"multi": True}], ids=["openbao", "vault", "seal HA"]
)
def test_a_right_quorum_opens_the_snapshot(tmp_path, layout):
    cluster = Cluster()
    path = write(tmp_path / "raft.snap", archive(cluster.members(**layout)))
    result = check(path, cluster.shares[1:4], encode=lambda s: base64.b64encode(s).decode())
    assert result.exit_code == 0, result.output
    assert "YES: these 3 shares open this cluster's snapshot" in result.stdout
    assert "a shamir seal with 5 shares, 3 needed; taken at raft index 29, term 3" in result.stderr


def test_one_wrong_share_says_no(tmp_path):
    cluster = Cluster()
    path = write(tmp_path / "raft.snap", archive(cluster.members()))
    wrong = bytearray(cluster.shares[2])
    wrong[0] ^= 0x80
    result = check(path, [cluster.shares[0], cluster.shares[1], bytes(wrong)])
    assert result.exit_code == 1, result.output
    assert "NO: these 3 shares do not open this cluster's snapshot" in result.stdout
    assert "older than a rekey" in result.stdout


def test_another_clusters_shares_say_no(tmp_path):
    path = write(tmp_path / "raft.snap", archive(Cluster().members()))
    result = check(path, Cluster().shares[:3])
    assert result.exit_code == 1 and "NO:" in result.stdout


def test_recovery_keys_cannot_be_proved(tmp_path):
    path = write(tmp_path / "raft.snap", archive(Cluster(kind="awskms").members()))
    result = check(path, [])
    assert result.exit_code == 2
    assert "auto-unsealed (awskms)" in result.stderr and "cannot prove recovery keys" in result.stderr


@pytest.mark.parametrize(
    "typed, fragment",
    [
        (["zz!"], "share 1 is neither hex nor standard base64"),
        ([""], "no share was given"),
        ("same x twice", "has the x of an earlier share"),
    ],
)
def test_a_bad_share_is_a_usage_error(tmp_path, typed, fragment):
    cluster = Cluster()
    path = write(tmp_path / "raft.snap", archive(cluster.members()))
    text = [cluster.shares[0].hex()] * 2 if typed == "same x twice" else typed
    result = CliRunner().invoke(
        cli, ["snapshot", "check", "--snapshot", str(path)], input="\n".join(text) + "\n"
    )
    assert result.exit_code == 2 and fragment in result.stderr, result.output


def _hostile(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    members = Cluster().members()
    truncated = archive(members)
    escaping = [("../meta.json", members["meta.json"]), *list(members.items())[1:]]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {
        "junk": (write(tmp_path / "junk", os.urandom(5000)), "is not gzip"),
        "gzip bomb": (write(tmp_path / "bomb", gzip_bomb(256 << 20)), "decompression bomb"),
        "truncated": (write(tmp_path / "cut", truncated[: len(truncated) // 2]), "truncated"),
        "../ member": (write(tmp_path / "escape", archive(escaping)), "'../meta.json'"),
        "missing file": (tmp_path / "nowhere.snap", "No such file or directory"),
        "a folder": (tmp_path, "not a regular file"),
        "a fifo": (fifo, "not a regular file"),
    }


@pytest.mark.parametrize(
    "case", ["junk", "gzip bomb", "truncated", "../ member", "missing file", "a folder", "a fifo"]
)
def test_a_hostile_file_exits_2_with_a_sentence(tmp_path, case):
    path, fragment = _hostile(tmp_path)[case]
    result = check(path, [])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and result.stderr.startswith("Error: "), result.stderr
    assert result.stdout == ""


def test_the_console_script_refuses_a_bomb_without_a_traceback(tmp_path):
    """The real program, bounded by a timeout: a hang or a traceback fails, a slow machine does not."""
    path, fragment = _hostile(tmp_path)["gzip bomb"]
    done = subprocess.run(
        [str(SCRIPT), "snapshot", "check", "--snapshot", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_shares_typed_at_a_real_terminal_are_not_shown(tmp_path):
    cluster = Cluster()
    path = write(tmp_path / "raft.snap", archive(cluster.members()))
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execv(str(SCRIPT), [str(SCRIPT), "snapshot", "check", "--snapshot", str(path)])  # noqa: S606
    seen = bytearray()

    def until(marker: bytes) -> None:
        while marker not in seen:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, bytes(seen)
            seen.extend(os.read(fd, 4096))

    try:
        for i, share in enumerate(cluster.shares[:3], start=1):
            until(f"Share {i} of 3".encode())
            until(b"it is not shown):")
            os.write(fd, share.hex().encode() + b"\r")
        until(b"this cluster's snapshot")
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen.extend(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, bytes(seen)
    assert b"YES: these 3 shares open" in seen
    assert all(share.hex().encode() not in seen for share in cluster.shares)
