"""The data folder: refused at start when others could change it; no symlink is ever followed."""

import os
import stat

import pytest

from app.errors import StartupError
from app.reading import verify
from app.records import Store
from app.state import Head, encode_state_file
from server import Server

PRECIOUS = b"a file outside the data folder\n"


@pytest.fixture
def outside(tmp_path):
    """A file outside the data folder for symlinks to point at; it must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    target = folder / "target"
    target.write_bytes(PRECIOUS)
    return target


def refused(folder, *words) -> str:
    """Open the folder, expect a refusal that says each of ``words``, and return its message."""
    with pytest.raises(StartupError) as err:
        Store.open(folder).close()
    message = str(err.value)
    for word in words:
        assert word in message
    return message


# -- who may write the folder ----------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o730, 0o703, 0o1777])
def test_a_folder_that_others_can_write_is_refused_untouched(tmp_path, mode):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(mode)  # mkdir's mode is cut by the umask
    refused(folder, f"the data folder {folder} is writable by", f"mode {stat.S_IMODE(mode):o}", "chmod 700")
    assert list(folder.iterdir()) == []
    assert stat.S_IMODE(folder.stat().st_mode) == mode


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755])
def test_a_folder_only_its_owner_can_write_is_used(tmp_path, mode):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(mode)
    Store.open(folder).close()
    assert sorted(p.name for p in folder.iterdir()) == ["audit.head", "audit.log", "lock", "state.json"]


def test_a_folder_of_another_user_is_refused_even_for_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root (the suite runs as root in CI)")
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    # Root ignores modes, so only the owner check can stop it here.
    os.chown(folder, 65534, 65534)
    refused(folder, f"the data folder {folder} belongs to uid 65534", f"uid {os.geteuid()}")
    assert list(folder.iterdir()) == []


def test_a_missing_folder_is_made_private(tmp_path):
    folder = tmp_path / "new" / "data"
    Store.open(folder).close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.geteuid()


# -- symlinks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["lock", "audit.log", "audit.head", "state.json", ".state.json.abc123.tmp", "notes.txt"]
)
def test_a_symlink_in_the_folder_is_refused_and_never_followed(tmp_path, outside, name):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    if name == "state.json":
        # A well-formed state file, so that only the symlink can be the reason for a refusal.
        outside.write_bytes(encode_state_file(None, Head()))
    before = outside.read_bytes()
    (folder / name).symlink_to(outside)
    refused(folder, f"{folder / name} is a symbolic link")
    assert outside.read_bytes() == before
    assert sorted(p.name for p in outside.parent.iterdir()) == ["target"]
    assert sorted(p.name for p in folder.iterdir()) == [name]


@pytest.mark.parametrize("name", ["lock", "audit.log"])
def test_a_dangling_symlink_creates_nothing_outside(tmp_path, name):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    (folder / name).symlink_to(target)
    refused(folder, f"{folder / name} is a symbolic link")
    assert not target.exists()


def test_a_folder_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "data"
    link.symlink_to(real)
    refused(link, f"the data folder {link} is a symbolic link", str(real))
    assert list(real.iterdir()) == []


def test_verify_does_not_follow_a_symlinked_trail(tmp_path, outside):
    folder = tmp_path / "data"
    Store.open(folder).close()
    (folder / "audit.log").unlink()
    (folder / "audit.log").symlink_to(outside)
    report = verify(folder)
    assert not report.ok
    assert f"{folder / 'audit.log'} is a symbolic link" in report.message


# -- through the real server ------------------------------------------------------


def test_the_server_exits_naming_a_world_writable_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)
    server = Server(folder, tmp_path / "g.log")
    server.spawn()
    try:
        assert server.wait() != 0
    finally:
        server.kill()  # a server that wrongly started must not outlive the test
    assert f"the data folder {folder} is writable by its group or by others (mode 777)" in server.output()
    assert list(folder.iterdir()) == []


def test_the_server_exits_naming_a_symlinked_lock(tmp_path, outside):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    (folder / "lock").symlink_to(outside)
    server = Server(folder, tmp_path / "g.log")
    server.spawn()
    try:
        assert server.wait() != 0
    finally:
        server.kill()  # a server that wrongly started must not outlive the test
    assert f"{folder / 'lock'} is a symbolic link" in server.output()
    assert outside.read_bytes() == PRECIOUS
