"""generate-share audit show: the trail as a table for the people who read it, offline."""

import json

import pytest
from click.testing import CliRunner

from app import create_app
from app.cli import cli
from app.records import Store

# Open mode: the trails read here are written by open ceremonies.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"


def show(*args: str, env: dict | None = None):
    """Run audit show in-process; return the result."""
    result = CliRunner().invoke(cli, ["audit", "show", *args], env=env, prog_name="generate-share")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


@pytest.fixture
def trail(tmp_path):
    """A data folder after a ceremony, a refusal and a coalesced refusal; return (folder, shares)."""
    folder = tmp_path / "data"
    app = create_app({"DATA_DIR": str(folder)})
    client = app.test_client()
    keys = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).get_json()["keys"]
    nonce = client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]
    for key in keys[:2]:
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    client.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": nonce})  # refused: no attempt
    app.extensions["generate_share_store"].close()
    store = Store.open(folder)
    try:  # the line a burst of refusals leaves: one line with how many, from when to when
        store.record(
            "refused",
            action="update",
            reason="too many requests",
            count=7,
            first="2026-11-26T13:00:00.000Z",
            last="2026-11-26T13:00:05.000Z",
        )
    finally:
        store.close()
    return folder, keys


def test_the_table_shows_every_event_with_a_short_summary(trail):
    folder, keys = trail
    result = show(str(folder))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "EVENT", "CLIENT", "SUMMARY"]
    events = [line.split()[2] for line in lines[1:]]
    assert events == ["init", "attempt_started", "share_accepted", "share_issued", "refused", "refused"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert "threshold=2" in lines[1] and "shares=3" in lines[1]
    assert "progress=1" in lines[3]
    assert "action=update reason=no share generation attempt is in progress" in lines[5]
    assert "count=1" not in lines[5]  # a single refusal needs no count, whether or not its line has one
    assert "count=7 from 2026-11-26T13:00:00.000Z to 2026-11-26T13:00:05.000Z" in lines[6]
    assert "127.0.0.1" in lines[1]
    for key in keys:
        assert key not in result.output


def test_event_filters_and_is_repeatable(trail):
    folder, _ = trail
    result = show("--event", "share_issued", "--event", "init", str(folder))
    assert result.exit_code == 0
    assert [line.split()[2] for line in result.output.splitlines()[1:]] == ["init", "share_issued"]


def test_since_keeps_the_events_at_or_after_it(trail):
    folder, _ = trail
    events = json.loads(CliRunner().invoke(cli, ["--format", "json", "audit", "show", str(folder)]).output)[
        "events"
    ]
    third = events[2]["time"]
    result = CliRunner().invoke(cli, ["--format", "json", "audit", "show", "--since", third, str(folder)])
    assert [e["seq"] for e in json.loads(result.output)["events"]] == [3, 4, 5, 6]
    assert show("--since", "2999-01-01T00:00:00+02:00", str(folder)).output.splitlines()[1:] == []


def test_json_gives_every_line_whole(trail):
    folder, _ = trail
    result = CliRunner().invoke(cli, ["--format", "json", "audit", "show", "--event", "refused", str(folder)])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["broken"] is None
    assert [e["seq"] for e in doc["events"]] == [5, 6]
    assert doc["events"][1]["count"] == 7 and doc["events"][1]["event"] == "refused"


def test_the_data_folder_comes_from_the_environment(trail, tmp_path, monkeypatch):
    folder, _ = trail
    result = show(env={"GENERATE_SHARE_DATA_DIR": str(folder)})
    assert result.exit_code == 0 and len(result.output.splitlines()) == 7


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--since", "yesterday"), "is not an RFC 3339 time with a zone"),
        (("--since", "2026-11-26T13:00:00"), "is not an RFC 3339 time with a zone"),
        (("--event", "share_minted"), "share_minted is not an event of the trail; use one of"),
    ],
)
def test_bad_options_are_usage_errors(trail, args, fragment):
    folder, _ = trail
    result = show(*args, str(folder))
    assert result.exit_code == 2 and fragment in result.output


def test_a_missing_folder_or_one_without_records_exits_2(tmp_path):
    missing = show(str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no such data folder" in missing.output
    (tmp_path / "empty").mkdir()
    empty = show(str(tmp_path / "empty"))
    assert empty.exit_code == 2 and "holds no records" in empty.output


def test_a_broken_chain_shows_the_lines_before_it_and_exits_1(trail):
    folder, _ = trail
    path = folder / "audit.log"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"progress":1', b'"progress":2')  # an edited line
    path.write_bytes(b"".join(lines))
    result = show(str(folder))
    assert result.exit_code == 1
    assert [line.split()[0] for line in result.output.splitlines()[1:3]] == ["1", "2"]
    assert "audit trail broken at line 4" in result.output and "audit verify" in result.output


def test_a_symlinked_trail_is_never_followed(trail, tmp_path):
    folder, _ = trail
    elsewhere = tmp_path / "elsewhere.log"
    (folder / "audit.log").rename(elsewhere)
    (folder / "audit.log").symlink_to(elsewhere)
    result = show(str(folder))
    assert result.exit_code == 1 and "never follows a link" in result.output
