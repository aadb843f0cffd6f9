"""The trail cannot go back: an anchor under a key outside the data folder, and no way back to format 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import reading
from app.anchor import AuditKey, load_audit_key
from app.audit import AUDIT_FILE, HEAD_FILE, blank_head_file, line_hash
from app.errors import StartupError
from app.records import Store
from app.state import STATE_FILE, ShareRecord, State
from server import Server

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from app.cli import main; main()"]
V1 = "/v1/sys"


@pytest.fixture
def key_file(tmp_path) -> Path:
    """An audit key file outside the data folder, 0600."""
    path = tmp_path / "audit.key"
    path.write_text("5f" * 32 + "\n")
    path.chmod(0o600)
    return path


def audit_key(path: Path, folder: Path) -> AuditKey:
    """Load the key as the service does."""
    key = load_audit_key(str(path), folder)
    assert key is not None
    return key


def build(folder: Path, key: AuditKey | None, *, events: int = 3) -> None:
    """Record init and then ``events`` events that change no state, through the real Store."""
    store = Store.open(folder, audit_key=key)
    try:
        shares = tuple(ShareRecord(index=x, origin="init", issued_at="t") for x in (1, 2, 3))
        store.initialize(
            State(2, 32, b"s" * 32, b"m" * 32, b"c" * 32, shares=shares), "init", indices=[1, 2, 3]
        )
        for number in range(events):
            store.record("attempt_cancelled", reason=f"event {number}")
    finally:
        store.close()


def cut_and_recompute(folder: Path, count: int) -> None:
    """Do what someone who can write the folder, but lacks the key, can: cut lines, recompute the head."""
    trail = folder / AUDIT_FILE
    lines = trail.read_bytes().splitlines(keepends=True)[:-count]
    trail.write_bytes(b"".join(lines))
    (folder / HEAD_FILE).write_bytes(blank_head_file(len(lines), line_hash(lines[-1])))


def downgrade(folder: Path) -> None:
    """Set the state file's format to 1 (before the head file) and delete the head file."""
    state = json.loads((folder / STATE_FILE).read_text())
    state["format"] = 1
    state["audit"].pop("anchor", None)
    (folder / STATE_FILE).write_text(json.dumps(state))
    (folder / HEAD_FILE).unlink()


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI of this checkout."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def refused_at_start(folder: Path, key: AuditKey | None, *words: str) -> str:
    with pytest.raises(StartupError) as err:
        Store.open(folder, audit_key=key).close()
    for word in words:
        assert word in str(err.value), str(err.value)
    return str(err.value)


# -- without a key: what the chain and the two heads catch, and what they cannot ----------


def test_without_a_key_a_cut_tail_with_a_recomputed_head_passes_and_verify_says_no_anchor(tmp_path):
    # The control: this is what the anchor is for.
    folder = tmp_path / "data"
    build(folder, None)
    cut_and_recompute(folder, 2)
    Store.open(folder).close()
    report = reading.verify(folder)
    assert report.ok and "anchor checked: none (no audit key)" in report.message, report.message


def test_a_folder_that_was_format_2_never_reads_as_format_1(tmp_path):
    folder = tmp_path / "data"
    build(folder, None)
    cut_and_recompute(folder, 2)
    downgrade(folder)
    message = refused_at_start(folder, None, "never goes back to format 1", "line 1")
    assert "generate-share audit verify" in message
    report = reading.verify(folder)
    assert not report.ok and "never goes back to format 1" in report.message


# -- with a key ---------------------------------------------------------------------------


def test_a_cut_tail_with_a_recomputed_head_is_caught_at_start_and_by_verify(tmp_path, key_file):
    folder = tmp_path / "data"
    key = audit_key(key_file, folder)
    build(folder, key)
    ok = cli("audit", "verify", "--key-file", str(key_file), str(folder))
    assert ok.returncode == 0 and f"anchor checked: the audit key {key.key_id}" in ok.stdout, ok
    cut_and_recompute(folder, 2)
    refused_at_start(folder, key, "the audit head file's head (line 2) carries no anchor", key.key_id)
    broken = cli("audit", "verify", "--key-file", str(key_file), str(folder))
    assert broken.returncode == 1 and "carries no anchor under the audit key" in broken.stdout, broken
    # A made-up anchor is no better than none.
    raw = (folder / HEAD_FILE).read_bytes()
    seq, digest = 2, raw.split(b"hash=")[1][:64].decode()
    (folder / HEAD_FILE).write_bytes(blank_head_file(seq, digest, "ab" * 32))
    refused_at_start(folder, key, "does not match its anchor")
    assert "does not match its anchor" in reading.verify(folder, key).message


def test_format_1_and_no_head_file_is_caught_with_a_key(tmp_path, key_file):
    folder = tmp_path / "data"
    key = audit_key(key_file, folder)
    build(folder, key)
    cut_and_recompute(folder, 2)
    downgrade(folder)
    refused_at_start(folder, key, "carries no anchor")
    assert not reading.verify(folder, key).ok


def test_anchored_records_need_their_key_and_no_other(tmp_path, key_file):
    folder = tmp_path / "data"
    build(folder, audit_key(key_file, folder))
    refused_at_start(
        folder, None, "anchored under an audit key, which is not given", "GENERATE_SHARE_AUDIT_KEY_FILE"
    )
    other = tmp_path / "other.key"
    other.write_text("6a" * 32)
    other.chmod(0o400)
    refused_at_start(folder, audit_key(other, folder), "does not match its anchor")
    # verify without the key still checks the chain, and says the anchor was not checked.
    report = reading.verify(folder)
    assert report.ok and "anchor not checked" in report.message


def test_records_from_before_the_key_are_anchored_once_with_audit_anchor(tmp_path, key_file):
    folder = tmp_path / "data"
    build(folder, None)
    key = audit_key(key_file, folder)
    refused_at_start(folder, key, "written before the key was set", "generate-share audit anchor")
    done = cli("audit", "anchor", "--key-file", str(key_file), str(folder))
    assert done.returncode == 0 and f"anchored under the audit key {key.key_id}" in done.stdout, done
    assert "audit head: seq 4" in done.stdout
    Store.open(folder, audit_key=key).close()
    assert reading.verify(folder, key).ok
    # From now on a cut is caught.
    cut_and_recompute(folder, 1)
    refused_at_start(folder, key, "carries no anchor")


def test_a_folder_started_once_without_the_key_and_still_empty_is_anchored_at_the_next_start(
    tmp_path, key_file
):
    folder = tmp_path / "data"
    Store.open(folder).close()  # a first start without the key: empty trail, unanchored head file
    key = audit_key(key_file, folder)
    build(folder, key, events=0)  # the next start, with the key, then init: no head file write
    Store.open(folder, audit_key=key).close()
    assert reading.verify(folder, key).ok


def test_audit_anchor_checks_the_trail_first(tmp_path, key_file):
    folder = tmp_path / "data"
    build(folder, None)
    trail = folder / AUDIT_FILE
    trail.write_bytes(trail.read_bytes().replace(b"event 1", b"event 9"))
    done = cli("audit", "anchor", "--key-file", str(key_file), str(folder))
    assert done.returncode == 1 and "does not chain to line" in done.stderr + done.stdout, done
    assert "anchor" not in json.loads((folder / STATE_FILE).read_text())["audit"]


BAD_KEYS = [
    pytest.param(
        lambda tmp, data: (data / "audit.key", "5f" * 32, 0o600), "inside the data folder", id="inside"
    ),
    pytest.param(lambda tmp, data: (tmp / "k", "5f" * 32, 0o644), "group or others", id="readable"),
    pytest.param(lambda tmp, data: (tmp / "k", "5f" * 8, 0o600), "holds 16 bytes", id="short"),
    pytest.param(lambda tmp, data: (tmp / "missing", None, 0), "cannot be read", id="missing"),
]


@pytest.mark.parametrize(("make", "reason"), BAD_KEYS)
def test_a_bad_key_file_refuses_the_start_naming_the_setting(tmp_path, make, reason):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path, text, mode = make(tmp_path, data)
    if text is not None:
        path.write_text(text)
        path.chmod(mode)
    with pytest.raises(StartupError, match=reason) as err:
        load_audit_key(str(path), data)
    assert "GENERATE_SHARE_AUDIT_KEY_FILE" in str(err.value)


def test_the_key_never_reaches_a_message(key_file, tmp_path):
    key = audit_key(key_file, tmp_path / "data")
    assert "5f5f" not in repr(key) and key.key_id in repr(key)


# -- against the real server ----------------------------------------------------------------


def records_through_the_server(folder: Path, log: Path, env: dict) -> None:
    """Init, then start and cancel an attempt as the lead (two lines after the last change of state)."""
    with Server(folder, log, env=env) as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})
        assert init.status_code == 200
        lead = {"X-Vault-Token": init.json()["root_token"]}
        assert server.put(f"{V1}/generate-share/attempt", json={}, headers=lead).status_code == 200
        assert server.delete(f"{V1}/generate-share/attempt", headers=lead).status_code in (200, 204)


def refused_server_start(folder: Path, log: Path, env: dict) -> str:
    server = Server(folder, log, env=env)
    server.spawn()
    try:
        assert server.wait() == 3  # WORKER_BOOT_ERROR: the unit does not restart
    finally:
        server.kill()
    return server.output()


def test_the_real_server_refuses_a_cut_tail_with_a_recomputed_head(tmp_path, key_file):
    folder = tmp_path / "data"
    env = {"GENERATE_SHARE_AUDIT_KEY_FILE": str(key_file)}
    records_through_the_server(folder, tmp_path / "first.log", env)
    cut_and_recompute(folder, 2)
    output = refused_server_start(folder, tmp_path / "second.log", env)
    assert "carries no anchor under the audit key" in output, output


def test_the_real_server_refuses_a_folder_set_back_to_format_1(tmp_path):
    folder = tmp_path / "data"
    records_through_the_server(folder, tmp_path / "first.log", {})
    cut_and_recompute(folder, 2)
    downgrade(folder)
    output = refused_server_start(folder, tmp_path / "second.log", {})
    assert "never goes back to format 1" in output, output
