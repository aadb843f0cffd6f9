"""The data folder: atomic writes, permissions, refusal of damage, the lock."""

import json
import os
import stat

import pytest

from app.errors import StartupError, Unavailable
from app.records import Store
from app.state import STATE_FILE, Head, ShareRecord, State, encode_state_file


def make_state(**changes) -> State:
    fields = {
        "threshold": 3,
        "key_length": 32,
        "verifier_salt": b"s" * 32,
        "verifier_mac": b"m" * 32,
        "custody_key": b"c" * 32,
        "shares": tuple(
            ShareRecord(index=x, origin="init", issued_at="2026-11-26T13:00:00Z") for x in (4, 9, 200)
        ),
    }
    fields.update(changes)
    return State(**fields)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


def test_a_new_folder_is_private_and_uninitialized(tmp_path, store):
    assert store.state is None
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "lock").st_mode) == 0o600


def test_state_survives_reopening_and_files_are_0600(tmp_path, store):
    store.initialize(make_state(), "init", indices=[4, 9, 200])
    record = ShareRecord(index=77, origin="generate-share", issued_at="t", pgp_fingerprint="ab")
    store.add_share(record, "share_issued", index=77)
    store.close()
    again = Store.open(tmp_path / "data")
    try:
        assert again.state == make_state(
            shares=make_state().shares + (ShareRecord(77, "generate-share", "t", "ab"),)
        )
        assert again.state.issued_x == {4, 9, 200, 77}
    finally:
        again.close()
    assert stat.S_IMODE(os.stat(tmp_path / "data" / STATE_FILE).st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "audit.head",
        "audit.log",
        "lock",
        STATE_FILE,
    ]


def test_a_second_open_of_the_same_folder_is_refused(tmp_path, store):
    with pytest.raises(StartupError, match=r"already served by another process \(pid \d+\).*one worker"):
        Store.open(tmp_path / "data")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"format": 2}',
        json.dumps({"format": 1, "threshold": 3}).encode(),
        json.dumps({"format": 1, "audit": {"seq": "1", "head": ""}, "state": None}).encode(),
        encode_state_file(make_state(), Head()).replace(b'"threshold": 3', b'"threshold": "3"'),
        encode_state_file(make_state(), Head()).replace(b'"index": 9', b'"index": 4'),
        encode_state_file(make_state(), Head()).replace(b'"index": 9', b'"index": 0'),
    ],
)
def test_a_damaged_state_file_stops_the_start_and_is_left_untouched(tmp_path, content):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    (folder / STATE_FILE).write_bytes(content)
    with pytest.raises(StartupError) as err:
        Store.open(folder)
    assert str(folder / STATE_FILE) in str(err.value)
    assert "left untouched" in str(err.value)
    assert (folder / STATE_FILE).read_bytes() == content
    # The refusal released the lock: a repaired folder can be opened.
    (folder / STATE_FILE).write_bytes(encode_state_file(None, Head()))
    Store.open(folder).close()


def test_a_folder_that_cannot_be_made_is_refused_by_name(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(StartupError, match=f"cannot create the data folder {file / 'sub'}"):
        Store.open(file / "sub")
    with pytest.raises(StartupError, match=f"data folder {file} is not a folder"):
        Store.open(file)


def test_a_failed_write_changes_nothing(tmp_path, store, monkeypatch):
    store.initialize(make_state(), "init", indices=[4, 9, 200])
    before = (tmp_path / "data" / STATE_FILE).read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", disk_full)
    with pytest.raises(Unavailable, match="nothing was changed or issued"):
        store.add_share(ShareRecord(index=5, origin="generate-share", issued_at="t"), "share_issued", index=5)
    monkeypatch.undo()
    assert store.state == make_state()
    assert (tmp_path / "data" / STATE_FILE).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "audit.head",
        "audit.log",
        "lock",
        STATE_FILE,
    ]


def test_leftover_temporary_files_of_a_crash_are_removed(tmp_path, store):
    store.initialize(make_state(), "init", indices=[4, 9, 200])
    store.close()
    leftover = tmp_path / "data" / f".{STATE_FILE}.abc123.tmp"
    leftover.write_bytes(b'{"half": ')
    again = Store.open(tmp_path / "data")
    try:
        assert not leftover.exists()
        assert again.state == make_state()
    finally:
        again.close()


def test_an_x_cannot_be_recorded_twice(store):
    store.initialize(make_state(), "init", indices=[4, 9, 200])
    with pytest.raises(RuntimeError):
        store.add_share(ShareRecord(index=9, origin="generate-share", issued_at="t"), "share_issued", index=9)
