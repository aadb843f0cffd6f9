"""Adoption bound to a raft snapshot: t shares suffice, the set must open it, and so must every minted one."""

from __future__ import annotations

import base64
import json

import pytest
from snapshots import Cluster

from app import create_app, shamir
from app.ceremonies import generate
from helpers import assert_error

# Open mode: snapshot adoption as the seed does it, without the lead's token.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"
ADOPT, ADOPT_UPDATE = f"{V1}/adopt/attempt", f"{V1}/adopt/update"
ATTEMPT, UPDATE = f"{V1}/generate-share/attempt", f"{V1}/generate-share/update"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def snapshot_field(cluster: Cluster, **layout) -> dict:
    """What `adopt start --snapshot` sends for this cluster's snapshot."""
    m = cluster.members(**layout)
    body = {
        "seal_config": {
            "type": cluster.kind,
            "secret_shares": cluster.count,
            "secret_threshold": cluster.threshold,
        },
        "meta": b64(m["meta.json"]),
        "sha256sums": b64(m["SHA256SUMS"]),
        "sealed": b64(m["SHA256SUMS.sealed"]),
    }
    if cluster.kind != "shamir":
        body["recovery_seal_config"] = {
            "type": "shamir",
            "secret_shares": cluster.count,
            "secret_threshold": cluster.recovery_threshold,
        }
    return body


def start(client, cluster: Cluster, **extra) -> dict:
    r = client.put(ADOPT, json={"snapshot": snapshot_field(cluster), **extra})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def submit(client, url: str, nonce: str, shares: list[bytes]):
    for share in shares:
        r = client.put(url, json={"key": share.hex(), "nonce": nonce})
        if r.status_code != 200:
            return r
    return r


def trail(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "audit.log").read_text().splitlines()]


@pytest.mark.parametrize(
    "layout", [{}, {"vault": True}, {"multi": True}], ids=["openbao", "vault", "seal HA"]
)
def test_t_shares_adopt_the_set_and_every_minted_share_opens_the_snapshot(client, folder, layout):
    cluster = Cluster()
    snap = snapshot_field(cluster, **layout)
    away = [s[-1] for s in cluster.shares[3:]]
    started = client.put(ADOPT, json={"snapshot": snap, "known_indices": away}).get_json()
    assert (started["secret_threshold"], started["required"], started["check"]) == (3, 3, "snapshot")
    done = submit(client, ADOPT_UPDATE, started["nonce"], cluster.shares[:3]).get_json()
    assert done["complete"] is True and done["indices"] == sorted(s[-1] for s in cluster.shares)
    registry = client.get(f"{V1}/shares").get_json()
    assert registry["snapshot"] == {"index": 29, "term": 3} and registry["threshold"] == 3
    adopted = [e for e in trail(folder) if e["event"] == "adopted"][-1]
    assert (adopted["check"], adopted["snapshot_index"], adopted["snapshot_term"]) == ("snapshot", 29, 3)
    # A replacement, minted from three of the shares, rebuilds the cluster's key with the two away.
    nonce = client.put(ATTEMPT, json={}).get_json()["nonce"]
    new = bytes.fromhex(submit(client, UPDATE, nonce, cluster.shares[:3]).get_json()["key"])
    assert shamir.combine([new, *cluster.shares[3:]]) == cluster.key


def test_another_clusters_shares_adopt_nothing_and_progress_returns_to_0(client, folder):
    cluster, stranger = Cluster(), Cluster()
    started = start(client, cluster)
    r = submit(client, ADOPT_UPDATE, started["nonce"], stranger.shares[:3])
    text = assert_error(r, 400, "these 3 shares do not open this cluster's snapshot")
    assert "or the snapshot is older than a rekey" in text and "nothing was adopted" in text
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}
    assert client.get(ADOPT).get_json()["progress"] == 0
    assert trail(folder)[-1]["event"] == "adoption_failed" and trail(folder)[-1]["check"] == "snapshot"
    # The right holders can go on with the same adoption.
    done = submit(client, ADOPT_UPDATE, started["nonce"], cluster.shares[2:]).get_json()
    assert done["complete"] is True


def test_one_altered_share_is_refused(client):
    cluster = Cluster()
    started = start(client, cluster)
    wrong = bytearray(cluster.shares[1])
    wrong[4] ^= 1
    r = submit(client, ADOPT_UPDATE, started["nonce"], [cluster.shares[0], bytes(wrong), cluster.shares[2]])
    assert_error(r, 400, "do not open this cluster's snapshot")
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}


def test_more_than_t_shares_must_agree_and_open_it(client):
    cluster = Cluster()
    started = start(client, cluster, required=4)
    assert started["required"] == 4
    done = submit(client, ADOPT_UPDATE, started["nonce"], cluster.shares[:4]).get_json()
    assert done["complete"] is True


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (
            {"secret_threshold": 4},
            "secret_threshold is 4, but the snapshot's seal config says 3: the threshold comes from the "
            "snapshot",
        ),
        ({"required": 2}, "required must be from the snapshot's threshold (3) to 255"),
    ],
)
def test_numbers_that_disagree_with_the_snapshot_are_refused(client, extra, fragment):
    r = client.put(ADOPT, json={"snapshot": snapshot_field(Cluster()), **extra})
    assert_error(r, 400, fragment)
    assert client.get(ADOPT).get_json()["started"] is False


def _altered(field: str, value) -> dict:
    snap = snapshot_field(Cluster())
    snap[field] = value
    return snap


@pytest.mark.parametrize(
    "snap, fragment",
    [
        ("not an object", "snapshot: must be a JSON object"),
        (_altered("meta", b64(b'{"Index": 1, "Term": 1}')), "snapshot: meta.json does not match its SHA-256"),
        (_altered("meta", "not base64!"), "meta must be standard padded base64 of the snapshot's meta.json"),
        (_altered("sealed", b64(b"\x0a\x02ab")), "holds no AES-GCM ciphertext"),
        (_altered("sha256sums", b64(b"junk")), "SHA256SUMS must hold two lines"),
        (_altered("seal_config", {"type": "shamir", "secret_shares": 5}), "secret_threshold is required"),
        (_altered("seal_config", [1]), "seal_config: must be a JSON object"),
        (
            _altered("seal_config", {"type": "shamir", "secret_shares": 1, "secret_threshold": 1}),
            "threshold 1: that key is not split into shares",
        ),
        (
            _altered("seal_config", {"type": "awskms", "secret_shares": 1, "secret_threshold": 1}),
            "send recovery_seal_config",
        ),
    ],
)
def test_a_bad_snapshot_field_is_refused_with_a_sentence(client, snap, fragment):
    r = client.put(ADOPT, json={"snapshot": snap})
    assert_error(r, 400, fragment)
    assert client.get(ADOPT).get_json()["started"] is False


def test_recovery_keys_cannot_be_proved_and_keep_the_t_plus_1_check(client):
    cluster = Cluster(kind="awskms", recovery_threshold=3)
    started = start(client, cluster)
    assert (started["check"], started["secret_threshold"], started["required"]) == ("consistency", 3, 4)
    assert "the snapshot cannot prove recovery keys" in started["warnings"][0]
    done = submit(client, ADOPT_UPDATE, started["nonce"], cluster.shares[:4]).get_json()
    assert done["complete"] is True and done["check"] == "consistency"
    assert client.get(f"{V1}/shares").get_json()["snapshot"] is None


@pytest.mark.parametrize("kind, part", [("shamir", "seal_config"), ("awskms", "recovery_seal_config")])
def test_a_snapshot_threshold_of_255_leaves_no_x_for_a_new_share(client, kind, part):
    snap = snapshot_field(Cluster(kind=kind))
    snap[part] |= {"secret_shares": 255, "secret_threshold": 255}
    r = client.put(ADOPT, json={"snapshot": snap})
    assert_error(r, 400, "has threshold 255: every one of the 255 x coordinates then holds a share")
    assert client.get(ADOPT).get_json()["started"] is False


def test_without_a_snapshot_the_threshold_is_still_required(client):
    assert_error(client.put(ADOPT, json={}), 400, "secret_threshold is required")
    started = client.put(ADOPT, json={"secret_threshold": 3}).get_json()
    assert (started["required"], started["check"]) == (4, "consistency") and "warnings" not in started


def test_the_binding_survives_a_restart_and_checks_every_mint(tmp_path, monkeypatch):
    cluster = Cluster()
    data = str(tmp_path / "data")
    app = create_app({"DATA_DIR": data, "CEREMONY_AUTH": "open"})
    client = app.test_client()
    submit(client, ADOPT_UPDATE, start(client, cluster)["nonce"], cluster.shares[:3])
    app.extensions["generate_share_store"].close()
    app = create_app({"DATA_DIR": data, "CEREMONY_AUTH": "open"})
    try:
        client = app.test_client()
        assert client.get(f"{V1}/shares").get_json()["snapshot"] == {"index": 29, "term": 3}
        # A share that does not open the snapshot is never handed out (a fault made on purpose).
        real = shamir.interpolate

        def off_by_one(shares, x):
            share = bytearray(real(shares, x))
            share[0] ^= 1
            return bytes(share)

        monkeypatch.setattr(generate.shamir, "interpolate", off_by_one)
        before = client.get(f"{V1}/shares").get_json()["issued"]
        nonce = client.put(ATTEMPT, json={}).get_json()["nonce"]
        r = submit(client, UPDATE, nonce, cluster.shares[:3])
        assert_error(r, 503, "did not open the cluster snapshot the share set was adopted with")
        assert "key" not in r.get_data(as_text=True) or "key_base64" not in r.get_json()
        assert client.get(f"{V1}/shares").get_json()["issued"] == before
    finally:
        app.extensions["generate_share_store"].close()


def test_a_set_adopted_without_a_snapshot_is_not_bound(client):
    cluster = Cluster()
    started = client.put(ADOPT, json={"secret_threshold": 3}).get_json()
    submit(client, ADOPT_UPDATE, started["nonce"], cluster.shares[:4])
    assert client.get(f"{V1}/shares").get_json()["snapshot"] is None
