"""The records cannot be quietly replaced: a deleted state file, an edited line, a cut trail."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import reading
from app.audit import AUDIT_FILE, HEAD_FILE, blank_head_file
from app.errors import StartupError
from app.records import Store
from app.state import STATE_FILE, ShareRecord, State
from server import Server

XS = (4, 9, 200)
ROOT = Path(__file__).resolve().parent.parent
# The CLI of this checkout (what `generate-share` runs once installed).
VERIFY = [sys.executable, "-c", "from app.cli import main; main()", "audit", "verify"]


def make_state(*xs) -> State:
    shares = tuple(ShareRecord(index=x, origin="init", issued_at="t") for x in (*XS, *xs))
    return State(3, 32, b"s" * 32, b"m" * 32, b"c" * 32, shares=shares)


def build(folder, tail):
    """Record init, then each event of ``tail`` through the real Store; return the head."""
    store = Store.open(folder)
    try:
        store.initialize(make_state(), "init", indices=list(XS), threshold=3)
        issued = []
        for event in tail:
            if event == "share_issued":
                issued.append(77 + len(issued))
                store.add_share(ShareRecord(issued[-1], "generate-share", "t"), event, index=issued[-1])
            elif event == "share_verified":
                store.mark_verified(XS[0], "t", event, index=XS[0])
            else:
                store.record(event, reason="a reason", index=XS[1])
        return store.head
    finally:
        store.close()


def cut(folder, count):
    path = folder / AUDIT_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) - count]))


def refused_at_start(folder, *words):
    with pytest.raises(StartupError) as err:
        Store.open(folder).close()
    for word in words:
        assert word in str(err.value), str(err.value)
    return str(err.value)


def verify_cli(folder, *options):
    command = [*VERIFY[:3], *options, *VERIFY[3:], str(folder)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)


# -- the state file deleted, the trail kept ----------------------------------------


def test_a_deleted_state_file_beside_a_trail_is_refused_naming_both(tmp_path):
    folder = tmp_path / "data"
    build(folder, ["refused"])
    (folder / STATE_FILE).unlink()
    trail = (folder / AUDIT_FILE).read_bytes()
    refused_at_start(folder, str(folder / STATE_FILE), str(folder / AUDIT_FILE), "is missing", "2 lines")
    assert not (folder / STATE_FILE).exists() and (folder / AUDIT_FILE).read_bytes() == trail
    report = reading.verify(folder)
    assert not report.ok and f"{folder / STATE_FILE} is missing" in report.message


def test_the_server_does_not_start_afresh_over_a_trail(tmp_path):
    data = tmp_path / "data"
    build(data, [])
    (data / STATE_FILE).unlink()
    server = Server(data, tmp_path / "g.log")
    server.spawn()
    try:
        assert server.wait() != 0
    finally:
        server.kill()  # a server that wrongly started would accept a fresh init
    assert f"the data file {data / STATE_FILE} is missing, but the audit trail" in server.output()


# -- an edited middle line ----------------------------------------------------------


@pytest.mark.parametrize("number", [2, 3])
def test_an_edited_middle_line_is_refused_at_start_naming_it(tmp_path, number):
    folder = tmp_path / "data"
    build(folder, ["attempt_started", "share_accepted", "refused", "refused"])
    path = folder / AUDIT_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = lines[number - 1].replace(b"a reason", b"b reason")
    path.write_bytes(b"".join(lines))
    message = refused_at_start(
        folder,
        f"broken at line {number + 1}",
        f"does not chain to line {number}",
        "generate-share audit verify",
    )
    assert f"'generate-share audit verify {folder}'" in message
    report = reading.verify(folder)
    assert not report.ok and report.message.startswith(f"audit trail broken at line {number + 1}:")


def test_an_edited_state_event_in_the_middle_is_refused(tmp_path):
    folder = tmp_path / "data"
    build(folder, ["share_issued", "refused"])
    path = folder / AUDIT_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"index":77', b'"index":78')
    path.write_bytes(b"".join(lines))
    refused_at_start(folder, "broken at line 2", "differs from the one the state file recorded")


# -- lines cut from the end -----------------------------------------------------------

TAILS = {
    "refusals": ["refused", "refused", "refused"],
    "accepted": ["attempt_started", "share_accepted", "share_accepted"],
    "verify-failed": ["share_verify_failed", "share_verify_failed", "share_verify_failed"],
    "mixed": ["share_issued", "attempt_started", "share_verify_failed"],
    "state-events": ["share_issued", "share_verified", "share_issued"],
}


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("tail", TAILS, ids=list(TAILS))
def test_lines_cut_from_the_end_are_caught_at_start_and_by_verify(tmp_path, tail, count):
    folder = tmp_path / "data"
    head = build(folder, TAILS[tail])
    ok = verify_cli(folder)
    assert ok.returncode == 0 and f"audit head: seq {head.seq}, hash {head.digest}" in ok.stdout, ok
    cut(folder, count)
    refused_at_start(folder, "lines were cut from the end", "generate-share audit verify")
    report = reading.verify(folder)
    assert not report.ok and "lines were cut from the end" in report.message, report.message
    assert report.message.startswith(f"audit trail broken at line {head.seq - count + 1}:")
    broken = verify_cli(folder)
    assert broken.returncode == 1 and "lines were cut from the end" in broken.stdout


def test_a_deleted_head_file_is_refused(tmp_path):
    folder = tmp_path / "data"
    build(folder, ["refused"])
    (folder / HEAD_FILE).unlink()
    cut(folder, 1)
    refused_at_start(folder, f"{folder / HEAD_FILE} is missing")
    assert not reading.verify(folder).ok


def test_both_copies_of_the_head_damaged_is_refused(tmp_path):
    folder = tmp_path / "data"
    build(folder, ["refused", "refused"])
    (folder / HEAD_FILE).write_bytes(b"\0" * 8192)
    refused_at_start(folder, f"the audit head file {folder / HEAD_FILE} is damaged")


def test_lines_added_past_the_head_are_refused(tmp_path):
    folder = tmp_path / "data"
    build(folder, ["refused"])
    store = Store.open(folder)
    head = store.head
    store.record("refused", reason="x")
    store.record("refused", reason="y")
    store.close()
    (folder / HEAD_FILE).write_bytes(blank_head_file(head.seq, head.digest))
    refused_at_start(folder, f"broken at line {head.seq + 2}", "never recorded")


# -- a crash between a line and its head ----------------------------------------------


def test_one_line_past_the_head_is_kept_for_an_event_and_cut_for_a_change_of_state(tmp_path):
    folder = tmp_path / "data"
    head = build(folder, ["refused"])
    # As if the process died after the next line was durable, before its head was.
    store = Store.open(folder)
    store.record("refused", reason="late")
    store.close()
    (folder / HEAD_FILE).write_bytes(blank_head_file(head.seq, head.digest))
    report = reading.verify(folder)
    assert report.ok and "the service keeps it at start" in report.message, report.message
    store = Store.open(folder)
    assert store.head.seq == head.seq + 1
    store.close()
    assert reading.verify(folder).ok and reading.verify(folder).head.seq == head.seq + 1


# -- audit verify on no records --------------------------------------------------------


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "empty"])
def test_verify_on_a_missing_or_empty_folder_exits_2(tmp_path, make):
    folder = tmp_path / "data"
    make(folder)
    done = verify_cli(folder)
    assert done.returncode == 2, done
    assert str(folder) in done.stderr and "verified" not in done.stdout + done.stderr
    assert not reading.verify(folder).ok


def test_verify_prints_the_head_in_json(tmp_path):
    folder = tmp_path / "data"
    head = build(folder, ["refused"])
    done = verify_cli(folder, "--format", "json")
    assert done.returncode == 0, done
    reply = json.loads(done.stdout)
    assert reply["ok"] is True and reply["audit_head"] == {"seq": head.seq, "hash": head.digest}


# -- messages name the command that exists ---------------------------------------------


def test_no_message_names_a_command_that_does_not_exist():
    root = ROOT
    stale = "python -m app." + "audit"  # split, so this file does not match itself
    found = [
        str(p.relative_to(root))
        for top in ("app", "tests", "docs", "README.md", "SECURITY.md")
        for p in ([root / top] if (root / top).is_file() else (root / top).rglob("*"))
        if p.is_file() and p.suffix in {".py", ".md", ".json", ""} and stale in p.read_text(errors="replace")
    ]
    assert found == []
