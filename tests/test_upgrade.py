"""Upgrades: today's service on a data folder written by the released version (state format 1), and restarts.

tests/fixtures/format1/ was written by commit f2bfab3 through its own gunicorn
(tests/fixtures/make_format1.py): init 2 of 3, one generate-share ceremony,
one custody check, then three refusals, which format 1 appended without
recording a head.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.reading import verify
from tests.helpers import same_key
from tests.server import Server

# Open mode: the released version (format 1) ran in open mode, and its folder still does.
pytestmark = pytest.mark.ceremony_auth("open")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format1"
SCRIPT = Path(sys.executable).parent / "generate-share"
V1 = "/v1/sys"


@pytest.fixture
def released(tmp_path) -> Path:
    """A copy of the released version's data folder, with the modes the service keeps."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    for name in ("state.json", "audit.log"):
        shutil.copyfile(FIXTURE / name, folder / name)
        (folder / name).chmod(0o600)
    return folder


@pytest.fixture
def old_shares() -> dict:
    return json.loads((FIXTURE / "shares.json").read_text())


def test_the_fixture_is_format_1_with_lines_past_its_head():
    doc = json.loads((FIXTURE / "state.json").read_text())
    lines = (FIXTURE / "audit.log").read_bytes().splitlines()
    assert doc["format"] == 1
    assert len(lines) == doc["audit"]["seq"] + 3
    assert not (FIXTURE / "audit.head").exists()


def test_todays_service_starts_on_it_keeps_the_registry_and_the_trail(released, tmp_path):
    before = json.loads((released / "state.json").read_text())["state"]
    trail_before = (released / "audit.log").read_bytes()
    with Server(released, tmp_path / "g.log") as server:
        reply = server.get(f"{V1}/shares").json()
    registry = {s["index"]: s["origin"] for s in reply["shares"]}
    assert registry == {s["index"]: s["origin"] for s in before["shares"]}
    assert sorted(registry.values()) == ["generate-share", "init", "init", "init"]
    assert reply["audit_head"]["seq"] == trail_before.count(b"\n")  # every released line kept
    assert (released / "audit.log").read_bytes().startswith(trail_before)
    upgraded = json.loads((released / "state.json").read_text())
    assert upgraded["format"] == 2
    assert upgraded["state"]["verifier"] == before["verifier"]
    assert upgraded["state"]["custody_key"] == before["custody_key"]
    assert (released / "audit.head").exists()
    report = verify(released)
    assert report.ok, report.message
    done = subprocess.run(
        [SCRIPT, "audit", "verify", str(released)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_released_shares_still_work_after_the_upgrade(released, old_shares, tmp_path):
    keys, new = old_shares["keys"], old_shares["new"]
    with Server(released, tmp_path / "g.log") as server:
        # The share the released version issued passes the custody check today.
        r = server.put(f"{V1}/shares/verify", json={"key": new})
        assert r.json()["valid"] is True and r.json()["origin"] == "generate-share"
        # A new ceremony with two released shares mints a share of the same key.
        nonce = server.put(f"{V1}/generate-share/attempt", json={}).json()["nonce"]
        for key in (keys[1], new):
            r = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
            assert r.status_code == 200, r.text
        minted = r.json()["key"]
    assert same_key(minted, keys, 2)
    assert verify(released).ok


def test_a_second_start_after_the_upgrade_is_a_plain_format_2_start(released, tmp_path):
    with Server(released, tmp_path / "first.log"):
        pass
    with Server(released, tmp_path / "second.log") as server:
        assert len(server.get(f"{V1}/shares").json()["shares"]) == 4
    assert "audit trail:" not in server.output()  # nothing cut or kept: a clean start


def test_a_restart_cancels_an_attempt(released, old_shares, tmp_path):
    keys = old_shares["keys"]
    with Server(released, tmp_path / "first.log") as server:
        nonce = server.put(f"{V1}/generate-share/attempt", json={}).json()["nonce"]
        r = server.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": nonce})
        assert r.json()["progress"] == 1
    with Server(released, tmp_path / "second.log") as server:
        status = server.get(f"{V1}/generate-share/attempt").json()
        assert status["started"] is False and status["progress"] == 0
        assert (
            server.put(f"{V1}/generate-share/update", json={"key": keys[1], "nonce": nonce}).status_code
            == 400
        )
