"""generate-share backup: a verified copy of a data folder taken while the real service writes to it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.backup import backup
from app.reading import verify
from tests.server import ROOT, Server

V1 = "/v1/sys"
SCRIPT = Path(sys.executable).parent / "generate-share"


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the generate-share console script."""
    return subprocess.run([SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def init(server: Server) -> list[str]:
    """Initialize 2 of 3 and return the shares."""
    r = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 200
    return r.json()["keys"]


def write_events(server: Server, share: str, rounds: int) -> None:
    """Make the service write: a refused update (a line) and a custody check (a change of state)."""
    for _ in range(rounds):
        assert server.put(f"{V1}/generate-share/update", json={"key": share}).status_code == 400
        assert server.put(f"{V1}/shares/verify", json={"key": share}).json()["valid"] is True


def registry(server: Server) -> list[int]:
    """Return the x of every share in the registry."""
    return sorted(s["index"] for s in server.get(f"{V1}/shares").json()["shares"])


def test_copies_taken_during_writes_verify_and_start_a_service(tmp_path):
    live = tmp_path / "data"
    # As many writes as the service takes: the per-client write limit would answer 429s instead.
    with Server(live, tmp_path / "live.log", env={"GENERATE_SHARE_RATE_LIMIT": "off"}) as server:
        shares = init(server)
        stop = threading.Event()
        failures: list[BaseException] = []

        def load(share: str) -> None:
            try:
                while not stop.is_set():
                    write_events(server, share, 1)
            except BaseException as exc:  # noqa: BLE001 (reported by the test below)
                failures.append(exc)

        writers = [threading.Thread(target=load, args=(s,)) for s in shares]
        for w in writers:
            w.start()
        try:
            copies = []
            for n in range(6):
                dest = tmp_path / f"copy{n}"
                done = cli("--format", "json", "backup", str(dest), "--data-dir", str(live))
                assert done.returncode == 0, done.stderr
                copies.append((dest, json.loads(done.stdout)))
        finally:
            stop.set()
            for w in writers:
                w.join()
        assert not failures, failures
        expected = registry(server)
        live_seq = server.get(f"{V1}/shares").json()["audit_head"]["seq"]

    seqs = [doc["audit_head"]["seq"] for _, doc in copies]
    assert seqs == sorted(seqs) and seqs[-1] > seqs[0], "the copies were not taken while the trail grew"
    assert seqs[-1] <= live_seq
    for dest, doc in copies:
        report = verify(dest)
        assert report.ok, report.message
        assert report.head.seq == doc["audit_head"]["seq"] and report.head.digest == doc["audit_head"]["hash"]
        assert stat.S_IMODE(dest.stat().st_mode) == 0o700
        assert sorted(p.name for p in dest.iterdir()) == ["audit.head", "audit.log", "state.json"]
        for f in dest.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
    restored, doc = copies[-1]
    with Server(restored, tmp_path / "restored.log") as server:
        assert registry(server) == expected
        assert server.get(f"{V1}/shares").json()["audit_head"]["seq"] == doc["audit_head"]["seq"]


def test_the_trail_is_cut_at_the_head_read_before_it(tmp_path):
    """Files read head, state, then trail while events land between: the copy is the folder at the head."""
    live = tmp_path / "data"
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir(mode=0o700)
    with Server(live, tmp_path / "live.log") as server:
        share = init(server)[0]
        write_events(server, share, 2)
        for name in ("audit.head", "state.json"):
            shutil.copy2(live / name, snapshot / name)
        then = server.get(f"{V1}/shares").json()["audit_head"]
        write_events(server, share, 3)  # six lines the heads copied above do not name
        shutil.copy2(live / "audit.log", snapshot / "audit.log")
    naive = verify(snapshot)
    assert not naive.ok  # copied as is, these files do not fit together
    copied = backup(snapshot, tmp_path / "copy")
    assert (copied.head.seq, copied.head.digest) == (then["seq"], then["hash"])
    assert copied.attempts == 1
    assert verify(tmp_path / "copy").ok


def test_an_existing_dest_is_never_touched(tmp_path):
    live = tmp_path / "data"
    with Server(live, tmp_path / "live.log") as server:
        init(server)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    done = cli("backup", str(dest), "--data-dir", str(live))
    assert done.returncode == 2
    assert f"{dest} already exists: name a new folder, a backup never overwrites" in done.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_no_such_data_folder_is_a_usage_error(tmp_path):
    done = cli("backup", str(tmp_path / "dest"), "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "no such data folder" in done.stderr
    assert not (tmp_path / "dest").exists()


def test_a_broken_trail_gives_no_copy(tmp_path):
    live = tmp_path / "data"
    with Server(live, tmp_path / "live.log") as server:
        share = init(server)[0]
        write_events(server, share, 1)
    log = live / "audit.log"
    log.write_bytes(log.read_bytes().replace(b'"init"', b'"tini"', 1))
    done = cli("backup", str(tmp_path / "dest"), "--data-dir", str(live))
    assert done.returncode == 1
    assert "no consistent copy" in done.stderr and "generate-share audit verify" in done.stderr
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_modes_do_not_depend_on_the_umask(tmp_path, umask):
    live = tmp_path / "data"
    with Server(live, tmp_path / "live.log") as server:
        init(server)
    dest = tmp_path / "dest"
    old = os.umask(umask)
    try:
        backup(live, dest)
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in dest.iterdir()} == {0o600}


def test_the_copy_never_includes_gnupg_or_the_lock(tmp_path):
    live = tmp_path / "data"
    with Server(live, tmp_path / "live.log") as server:
        init(server)
        (live / "gnupg").mkdir(exist_ok=True)
        copied = backup(live, tmp_path / "dest")
    assert (live / "lock").exists()
    assert sorted(p.name for p in Path(copied.dest).iterdir()) == ["audit.head", "audit.log", "state.json"]


def test_a_folder_of_the_released_format_is_copied_whole(tmp_path):
    """Format 1 recorded no head for refusals: its trail runs past the state's head, and all of it is kept."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "format1"
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    for name in ("state.json", "audit.log"):
        shutil.copyfile(fixture / name, folder / name)
    copied = backup(folder, tmp_path / "copy")
    assert (tmp_path / "copy" / "audit.log").read_bytes() == (fixture / "audit.log").read_bytes()
    assert copied.head.seq == (fixture / "audit.log").read_bytes().count(b"\n")
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["audit.log", "state.json"]
