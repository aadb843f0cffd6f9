"""Amplification: whatever a request sends, its reply and its audit line stay a few KB."""

import json
import logging

import pytest

from app import audit, create_app
from app.api.errors import MAX_SENTENCE, MAX_SENTENCES, bounded
from helpers import assert_error

V1 = "/v1/sys"
LIMIT = 4096  # bytes: "a few KB"
INIT = {"secret_shares": 2, "secret_threshold": 2}


def _compact(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@pytest.fixture
def roomy(tmp_path):
    """An app whose operator raised the body limit to 8 MB: the caps must not lean on it."""
    app = create_app({"DATA_DIR": str(tmp_path / "roomy"), "MAX_CONTENT_LENGTH": 8 * 1024 * 1024})
    yield app
    app.extensions["generate_share_store"].close()


def _last_audit_line(app) -> bytes:
    folder = app.extensions["generate_share_store"].path
    return (folder / audit.AUDIT_FILE).read_bytes().splitlines()[-1]


# Each body is at most 64 KB (the default limit) unless it says "roomy".
WRITES = {
    "30000 pgp_keys": ("/init", _compact(INIT | {"pgp_keys": [1] * 30000}), False),
    "255 bad pgp_keys": ("/init", _compact(INIT | {"pgp_keys": [1] * 255}), False),
    "255 pgp_keys with long keys": (
        "/init",
        _compact(INIT | {"pgp_keys": [{"k" * 30000: 1}] * 255}),
        True,
    ),
    "30000 known_indices": (
        "/adopt/attempt",
        _compact({"secret_threshold": 3, "known_indices": [0] * 30000}),
        False,
    ),
    "255 bad known_indices": (
        "/adopt/attempt",
        _compact({"secret_threshold": 3, "known_indices": [0] * 255}),
        False,
    ),
    "30000 unknown fields with long names": (
        "/init",
        _compact({f"{'u' * 200}{i}": 1 for i in range(30000)}),
        True,
    ),
    "a huge key in a nested object": (
        "/init",
        _compact({"secret_shares": {"\u2603" * 1_000_000: 1}, "secret_threshold": {"\x01" * 100000: [1]}}),
        True,
    ),
    "a huge unknown field of control characters": (
        "/generate-share/update",
        _compact({"\x01" * 1_000_000: 1}),
        True,
    ),
}


@pytest.mark.parametrize("path, body, roomy_app", WRITES.values(), ids=WRITES.keys())
def test_a_refused_write_has_a_short_reply_and_a_short_audit_line(app, roomy, path, body, roomy_app):
    target = roomy if roomy_app else app
    if path == "/generate-share/update":
        assert target.test_client().put(f"{V1}/init", json=INIT).status_code == 200
    r = target.test_client().put(V1 + path, data=body, content_type="application/json")
    assert_error(r, 400)
    assert len(r.data) < LIMIT, len(r.data)
    line = _last_audit_line(target)
    assert json.loads(line)["event"] == "refused"
    assert len(line) < LIMIT, len(line)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sys/" + "%01" * 20000,  # a control character: six characters of JSON each
        "/v1/sys/" + "%F0%9F%98%80" * 5000,  # an emoji: twelve characters of JSON each
        "/v1/sys/" + "a" * 100000,
    ],
    ids=["control", "emoji", "plain"],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_long_path_is_not_echoed_whole(client, path, method, caplog):
    logging.getLogger("app").addHandler(caplog.handler)
    try:
        r = client.open(path, method=method)
    finally:
        logging.getLogger("app").removeHandler(caplog.handler)
    assert_error(r, 404)
    assert len(r.data) < LIMIT, len(r.data)
    (access,) = [rec for rec in caplog.records if rec.name == "app.access"]
    assert len(access.path) < LIMIT // 2, len(access.path)


def test_twenty_problems_give_ten_sentences_and_a_count():
    out = bounded([f"problem {i}" for i in range(20)])
    assert out == [f"problem {i}" for i in range(MAX_SENTENCES)] + [
        "and 10 more problems; fix the ones above and send again"
    ]
    assert bounded(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize("char", ["a", "\x01", "\u2603", "\U0001f600", '"'])
def test_a_long_sentence_is_cut_by_its_json_length(char):
    (cut,) = bounded([char * 5000])
    assert cut.endswith("\u2026") and cut.startswith(char * 10)
    assert MAX_SENTENCE - 12 < len(json.dumps(cut)) - 2 <= MAX_SENTENCE
    (short,) = bounded([char * 10])
    assert short == char * 10


def test_the_list_length_is_checked_before_its_entries(client):
    r = client.put(
        f"{V1}/init", data=_compact(INIT | {"pgp_keys": [1] * 256}), content_type="application/json"
    )
    assert assert_error(r, 400) == (
        "pgp_keys has 256 entries; it must have one PGP key per share, and there are at most 255 shares"
    )
    r = client.put(
        f"{V1}/adopt/attempt",
        data=_compact({"secret_threshold": 3, "known_indices": [None] * 256}),
        content_type="application/json",
    )
    assert "known_indices has 256 entries" in assert_error(r, 400)
    # 255 are still read entry by entry, and the reply names the first ten.
    r = client.put(
        f"{V1}/init", data=_compact(INIT | {"pgp_keys": [1] * 255}), content_type="application/json"
    )
    errors = r.get_json()["errors"]
    assert len(errors) == MAX_SENTENCES + 1
    assert errors[0].startswith("pgp_keys[0]: ") and errors[-1].startswith("and 245 more problems")
