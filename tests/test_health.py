"""Vault's health codes on /v1/sys/health: 200, 501, 503, and the query overrides."""

import errno
import os
import subprocess
from types import SimpleNamespace

import pytest
import requests

from app.ceremonies import oversight
from helpers import assert_error
from server import Server

V1 = "/v1/sys"
HEALTH = f"{V1}/health"


def init(client):
    assert client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200


def test_501_before_init_and_200_after_with_the_same_fields(client):
    before = client.get(HEALTH)
    assert before.status_code == 501
    assert before.get_json()["service"] == "generate-share" and before.get_json()["initialized"] is False
    init(client)
    after = client.get(HEALTH)
    assert after.status_code == 200
    assert set(after.get_json()) == set(before.get_json())
    assert after.get_json()["sealed"] is False and after.get_json()["standby"] is False


@pytest.mark.parametrize(
    ("query", "before", "after"),
    [
        ("uninitcode=200", 200, 200),
        ("uninitcode=299", 299, 200),
        ("activecode=203", 501, 203),
        ("sealedcode=200", 501, 200),  # the folder is writable: sealedcode changes nothing
        ("standbyok=true", 501, 200),  # never a standby
        ("standbyok", 501, 200),  # present without a value, as Vault takes it
        ("perfstandbyok=1&standbycode=200&performancestandbycode=200&drsecondarycode=200", 501, 200),
        ("uninitcode=503&activecode=201", 503, 201),
    ],
)
def test_the_overrides_are_honoured_as_vault_honours_them(client, query, before, after):
    first = client.get(f"{HEALTH}?{query}")
    assert first.status_code == before and first.get_json()["initialized"] is False
    init(client)
    assert client.get(f"{HEALTH}?{query}").status_code == after


def test_head_gives_the_status_and_no_body(client):
    r = client.head(HEALTH)
    assert r.status_code == 501 and r.data == b""
    assert client.head(f"{HEALTH}?uninitcode=200").status_code == 200
    init(client)
    assert client.head(HEALTH).status_code == 200
    assert client.head(f"{HEALTH}?activecode=299").status_code == 299


def test_a_status_that_takes_no_body_gets_none(client):
    r = client.get(f"{HEALTH}?uninitcode=204")
    assert r.status_code == 204 and r.data == b"" and "Content-Type" not in r.headers


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("uninitcode=abc", "uninitcode must be an HTTP status code, a whole number from 200 to 599"),
        ("uninitcode=", "uninitcode must be an HTTP status code"),
        ("activecode=2.5", "activecode must be an HTTP status code"),
        ("sealedcode=600", "sealedcode must be an HTTP status code, a whole number from 200 to 599"),
        ("sealedcode=100", "sealedcode must be an HTTP status code"),  # no final reply
        ("standbycode=-200", "standbycode must be an HTTP status code"),
        ("drsecondarycode=" + "9" * 400, "drsecondarycode must be an HTTP status code"),
        ("standbyok=maybe", "standbyok must be true or false (or given without a value, for true)"),
        ("perfstandbyok=yes please", "perfstandbyok must be true or false"),
    ],
)
def test_a_bad_override_is_a_400_that_says_what_is_expected(client, folder, query, sentence):
    before = sorted(p.name for p in folder.iterdir())
    assert_error(client.get(f"{HEALTH}?{query}"), 400, sentence)
    assert client.head(f"{HEALTH}?{query}").status_code == 400
    assert sorted(p.name for p in folder.iterdir()) == before


def test_503_when_the_data_folder_cannot_take_a_write_simulated(app, client, monkeypatch):
    init(client)
    real = os.statvfs

    def full(path):
        info = real(path)
        return SimpleNamespace(
            f_flag=info.f_flag, f_bfree=0, f_bavail=0, f_files=info.f_files, f_ffree=1, f_favail=1
        )

    monkeypatch.setattr(oversight, "STATVFS", full)
    r = client.get(HEALTH)
    assert r.status_code == 503 and r.get_json()["sealed"] is True and r.get_json()["initialized"] is True
    assert client.get(f"{HEALTH}?sealedcode=200").status_code == 200
    assert client.head(HEALTH).status_code == 503
    monkeypatch.setattr(oversight, "STATVFS", real)
    assert client.get(HEALTH).status_code == 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"f_flag": os.ST_RDONLY}, False),
        ({"f_bfree": 0, "f_bavail": 0}, False),
        ({"f_files": 100, "f_ffree": 0, "f_favail": 0}, False),
        ({"f_files": 0, "f_ffree": 0, "f_favail": 0}, True),  # a file system without inode counts
        ({}, True),
    ],
)
def test_writable_reads_the_file_system(tmp_path, monkeypatch, change, expected):
    fields = {"f_flag": 0, "f_bfree": 10, "f_bavail": 10, "f_files": 100, "f_ffree": 10, "f_favail": 10}
    monkeypatch.setattr(oversight, "STATVFS", lambda path: SimpleNamespace(**(fields | change)))
    assert oversight.writable(tmp_path) is expected


def test_writable_is_false_for_a_folder_that_is_gone(tmp_path):
    assert oversight.writable(tmp_path / "gone") is False


def _mount_tmpfs(path, size="256k"):
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_503_on_a_real_full_file_system_then_200_once_space_is_freed(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk):
        pytest.skip("mounting a tmpfs needs root; the simulated test above covers the behaviour")
    try:
        with Server(disk / "data", tmp_path / "gunicorn.log") as server:
            assert (
                server.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).status_code == 200
            )
            assert server.get(HEALTH).status_code == 200
            filler = disk / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            full = server.get(HEALTH)
            assert full.status_code == 503 and full.json()["sealed"] is True
            assert server.get(f"{HEALTH}?sealedcode=299").status_code == 299
            assert requests_head(server).status_code == 503
            filler.unlink()
            assert server.get(HEALTH).status_code == 200
            server.kill()
        assert "Traceback" not in server.output()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def requests_head(server):
    return requests.head(server.url + HEALTH, timeout=30)


def test_the_cli_still_initializes_a_server_that_answers_501(tmp_path):
    """The CLI checks health's body, not its status, before init."""
    from click.testing import CliRunner

    from app.cli import cli

    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        assert server.get(HEALTH).status_code == 501
        result = CliRunner().invoke(
            cli,
            ["--address", server.url, "init", "--shares", "3", "--threshold", "2"],
            prog_name="generate-share",
        )
        assert result.exit_code == 0  # its output holds the shares: never printed here
        assert server.get(HEALTH).status_code == 200
        server.kill()
