"""generate-share snapshot check: t holders type their shares at one terminal; offline, no server."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from snapshots import Cluster, archive, gzip_bomb, write

from app.cli import cli
from app.cli import client as client_module
from server import Server

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


# -- adopt start --snapshot: only the seal config and the small files leave; a bad file sends nothing --


class Recorder:
    """A real listening socket on loopback: any connection the CLI opens is counted, none answered."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def connections(self) -> int:
        """Accept and count every connection already made (the kernel queued them)."""
        count = 0
        self.sock.setblocking(False)
        while select.select([self.sock], [], [], 0)[0]:
            conn, _ = self.sock.accept()
            conn.close()
            count += 1
        return count

    def close(self):
        self.sock.close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def test_a_hostile_snapshot_sends_nothing_and_exits_2(tmp_path, recorder):
    """Every case against a real listener: exit 2, a sentence, no traceback, and no connection at all."""
    cases = _hostile(tmp_path)
    good = write(tmp_path / "good.snap", archive(Cluster().members()))
    cases["a --threshold that disagrees"] = (good, "--threshold is 4, but the snapshot's seal config says 3")
    for case, (path, fragment) in cases.items():
        args = ["--address", recorder.url, "adopt", "start", "--snapshot", str(path)]
        if case == "a --threshold that disagrees":
            args += ["--threshold", "4"]
        result = CliRunner().invoke(cli, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert result.exit_code == 2, (case, result.output)
        assert fragment in result.stderr and result.stderr.startswith("Error: "), (case, result.stderr)
        assert "Traceback" not in result.output and result.stdout == "", case
        assert recorder.connections() == 0, case
    # The control: the listener does count a connection.
    socket.create_connection(("127.0.0.1", int(recorder.url.rsplit(":", 1)[1])), timeout=5).close()
    assert recorder.connections() == 1


def test_the_console_script_refuses_a_bomb_for_adopt_start_and_sends_nothing(tmp_path, recorder):
    """The real program, bounded by a timeout: exit 2 with a sentence, no traceback, no connection."""
    path, fragment = _hostile(tmp_path)["gzip bomb"]
    done = subprocess.run(
        [str(SCRIPT), "--address", recorder.url, "adopt", "start", "--snapshot", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert recorder.connections() == 0


def test_adopt_start_sends_only_the_seal_config_and_the_small_files(tmp_path, monkeypatch):
    cluster = Cluster()
    members = cluster.members()
    path = write(tmp_path / "raft.snap", archive(members))
    sent = []

    def call(self, method, path_, body=None, **kwargs):
        sent.append((method, path_, body))
        raise SystemExit(0)

    monkeypatch.setattr(client_module.Client, "call", call)
    CliRunner().invoke(cli, ["--address", "http://127.0.0.1:9", "adopt", "start", "--snapshot", str(path)])
    ((method, route, body),) = sent
    assert (method, route) == ("PUT", "/v1/sys/adopt/attempt") and set(body) == {"snapshot"}
    assert body["snapshot"] == {
        "seal_config": {"type": "shamir", "secret_shares": 5, "secret_threshold": 3},
        "meta": base64.b64encode(members["meta.json"]).decode(),
        "sha256sums": base64.b64encode(members["SHA256SUMS"]).decode(),
        "sealed": base64.b64encode(members["SHA256SUMS.sealed"]).decode(),
    }
    assert len(json.dumps(body)) < 2000  # the encrypted store (state.bin) never leaves


# Open: the holders' CLI steps, read without the lead's token (token mode's are in tests/test_cli_token.py).
@pytest.mark.ceremony_auth("open")
def test_t_holders_adopt_through_the_cli_against_the_real_server(tmp_path):
    cluster = Cluster()
    path = write(tmp_path / "raft.snap", archive(cluster.members()))
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        away = ",".join(str(s[-1]) for s in cluster.shares[3:])
        run = CliRunner().invoke
        started = run(
            cli, ["--address", server.url, "adopt", "start", "--snapshot", str(path), "--known", away]
        )
        assert started.exit_code == 0, started.output
        assert (
            "Snapshot:  a shamir seal with 5 shares, 3 needed; taken at raft index 29, term 3"
            in started.output
        )
        assert "adopted only if the 3 shares open this cluster's snapshot" in started.output
        nonce = server.get("/v1/sys/adopt/attempt").json()["nonce"]
        for share in cluster.shares[:3]:
            done = run(
                cli, ["--address", server.url, "adopt", "update", "--nonce", nonce], input=share.hex() + "\n"
            )
            assert done.exit_code == 0, done.output
        assert "its 3 shares open this cluster's snapshot" in done.output
        shares = run(cli, ["--address", server.url, "shares"])
        assert "bound to the cluster snapshot taken at raft index 29, term 3" in shares.output
        server.kill()
