"""A bounded soak of the real server: run with `make soak` (CI runs it too).

200 PGP ceremonies, one after the other as the service allows, while 15 more
threads send 20,000 mixed requests that must not disturb them. Afterwards:
no 5xx, no temporary GnuPG home or gpg-agent left behind, and the worker's
resident memory grew by less than 20 MB. A webhook receiver is attached the
whole time: at the end it holds every line of the trail, in order, and the
notification backlog has drained to 0. The figures are printed.
"""

import base64
import collections
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from receiver import Receiver

from app import reading, shamir
from app.notify import cursor_name
from server import Server

pytestmark = pytest.mark.soak

V1 = "/v1/sys"
CEREMONIES = 200
MIXED = 20_000
MIXED_THREADS = 15
RSS_LIMIT_KB = 20 * 1024


def rss_kb(pid: int) -> int:
    """Return a process's resident memory in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def worker_pid(master: int) -> int:
    """Return the pid of gunicorn's one worker."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def gnupg_homes(folder: Path) -> set[str]:
    """Return the names of the temporary GnuPG homes in folder."""
    return {p.name for p in folder.glob("generate-share-gnupg-*")}


def service_agents(folder: Path) -> set[str]:
    """Return the pids of gpg processes running in a GnuPG home under folder (this soak's own only)."""
    pattern = f"{folder}/generate-share-gnupg-"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return set(found.split())


def mixed_request(session, url, keys, rng):
    """Send one request that must never disturb a ceremony; return its status."""
    choice = rng.randrange(8)
    if choice == 0:
        return session.get(f"{url}{V1}/health", timeout=30).status_code
    if choice == 1:
        return session.get(f"{url}{V1}/shares", timeout=30).status_code
    if choice == 2:
        return session.get(f"{url}{V1}/generate-share/attempt", timeout=30).status_code
    if choice == 3:
        body = {"key": rng.choice(keys), "nonce": "00000000-0000-4000-8000-000000000000"}
        return session.put(f"{url}{V1}/generate-share/update", json=body, timeout=30).status_code
    if choice == 4:
        body = {"key": "not a share", "nonce": "00000000-0000-4000-8000-000000000000"}
        return session.put(f"{url}{V1}/generate-share/update", json=body, timeout=30).status_code
    if choice == 5:
        body = {"secret_shares": 3, "secret_threshold": 2}
        return session.put(f"{url}{V1}/init", json=body, timeout=30).status_code
    if choice == 6:
        return session.get(f"{url}{V1}/no-such-path", timeout=30).status_code
    return session.patch(f"{url}{V1}/generate-share/attempt", timeout=30).status_code


def test_soak(tmp_path, keyring):
    # The server's own temporary folder: the soak checks that nothing is left in
    # it, and another suite on the machine cannot add to it or take from it.
    temp = tmp_path / "tmp"
    temp.mkdir()
    receiver = Receiver().start()
    env = {
        "TMPDIR": str(temp),
        "GENERATE_SHARE_THREADS": "16",
        "GENERATE_SHARE_NOTIFY_URL": receiver.url,
        "GENERATE_SHARE_NOTIFY_SECRET": "soak-secret-0123456789abcdef",
    }
    with Server(tmp_path / "data", tmp_path / "g.log", env=env) as server:
        # Token mode, the default: the lead's token starts each attempt; strangers hold nothing.
        init = server.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).json()
        keys, lead = init["keys"], {"X-Vault-Token": init["root_token"]}
        old = [bytes.fromhex(k) for k in keys]
        secret = shamir.combine(old[:3])
        pgp_key = base64.b64encode(keyring.public_binary(keyring.ECC)).decode()
        worker = worker_pid(server.proc.pid)
        statuses = collections.Counter()
        lock = threading.Lock()
        issued = []

        def ceremony(session, n):
            nonce = session.put(
                f"{server.url}{V1}/generate-share/attempt",
                json={"pgp_key": pgp_key},
                headers=lead,
                timeout=30,
            )
            assert nonce.status_code == 200, nonce.text
            nonce = nonce.json()["nonce"]
            for key in random.Random(n).sample(keys, 3):
                r = session.put(
                    f"{server.url}{V1}/generate-share/update", json={"key": key, "nonce": nonce}, timeout=30
                )
                assert r.status_code == 200, r.text
            body = r.json()
            assert body["complete"] is True
            return keyring.decrypt(base64.b64decode(body["key_base64"]))

        # Warm up before the baseline, so that imports and caches are not counted as growth.
        warm = requests.Session()
        for n in range(3):
            ceremony(warm, n)
        for n in range(300):
            mixed_request(warm, server.url, keys, random.Random(n))
        baseline = rss_kb(worker)
        started = time.monotonic()

        def ceremonies():
            session = requests.Session()
            for n in range(CEREMONIES):
                issued.append(ceremony(session, n))

        def mixed(seed):
            session, rng = requests.Session(), random.Random(seed)
            counts = collections.Counter()
            for _ in range(MIXED // MIXED_THREADS + (seed < MIXED % MIXED_THREADS)):
                counts[mixed_request(session, server.url, keys, rng)] += 1
            with lock:
                statuses.update(counts)

        threads = [threading.Thread(target=ceremonies)]
        threads += [threading.Thread(target=mixed, args=(seed,)) for seed in range(MIXED_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        growth = rss_kb(worker) - baseline
        lines = (tmp_path / "data" / "audit.log").read_bytes().count(b"\n")
        receiver.wait(lambda r: r.has_seq(lines), f"line {lines}", timeout=120)
        drained = time.monotonic() - started - elapsed
        backlog = server.get(f"{V1}/metrics", params={"format": "prometheus"})
        if backlog.status_code == 200 and "generate_share_notify_backlog" in backlog.text:
            assert "generate_share_notify_backlog 0.0" in backlog.text
    receiver.stop()
    seqs = [seq for seq, _ in receiver.events()]
    # Refusals still being counted when the load ended become trail lines a second
    # later, or at shutdown: the trail may end a few lines after `lines`.
    final = (tmp_path / "data" / "audit.log").read_bytes().count(b"\n")
    delivered = max(seqs)
    # At least once, in order: a line may come twice only after a retry; a ceremony's
    # events may overtake a backlog of strangers' (app/notify.py), but each kind keeps
    # its order; every line up to `lines` arrived, and nothing the trail does not hold.
    strangers = [seq for seq, event in receiver.events() if event in ("refused", "share_verify_failed")]
    ceremony = [seq for seq, event in receiver.events() if event not in ("refused", "share_verify_failed")]
    assert sorted(set(seqs)) == list(range(1, delivered + 1))
    assert strangers == sorted(strangers) and ceremony == sorted(ceremony)
    assert lines <= delivered <= final
    # The backlog on disk: the cursor written at shutdown names the last line delivered.
    cursor = (tmp_path / "data" / cursor_name(receiver.url)).read_bytes()
    assert f" seq={delivered} ".encode() in cursor

    assert len(issued) == CEREMONIES
    assert all(shamir.combine([new, *old[:2]]) == secret for new in issued)
    assert len({new[-1] for new in issued}) == CEREMONIES
    assert sum(statuses.values()) == MIXED
    assert not [code for code in statuses if code >= 500], statuses
    # The service makes its GnuPG homes under <data>/gnupg, none in the temporary folder.
    assert (tmp_path / "data" / "gnupg").is_dir()
    assert gnupg_homes(tmp_path / "data" / "gnupg") == set()
    assert gnupg_homes(temp) == set()
    assert service_agents(tmp_path) == set()
    report = reading.verify(tmp_path / "data")
    assert report.ok, report.message
    print(
        f"\nsoak: {CEREMONIES} PGP ceremonies and {MIXED} mixed requests from {1 + MIXED_THREADS} threads "
        f"in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}; worker RSS {baseline} KiB -> "
        f"{baseline + growth} KiB (growth {growth} KiB); audit trail {report.lines} lines verified; "
        f"{len(seqs)} notifications, backlog drained {drained:.1f} s after the load ended"
    )
    assert growth < RSS_LIMIT_KB
