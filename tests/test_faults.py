"""The machine misbehaves: a full disk, a crash mid-write, a bad data folder, SIGTERM."""

import base64
import errno
import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from app import create_app, reading
from app.records import Store
from helpers import assert_error, same_key, unmask
from server import ROOT, Server

V1 = "/v1/sys"


def snapshot(folder):
    # The records are the files; a folder in it (GnuPG homes) is not a record.
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "lock"}


def mount_tmpfs(path, size="256k"):
    """Mount a small tmpfs at ``path`` (root only); return False where not permitted."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real, tiny file system to fill up."""
    path = tmp_path / "disk"
    if not mount_tmpfs(path):
        pytest.skip("mounting a tmpfs needs root; test_disk_full_is_simulated covers the behaviour")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk):
    """Write a filler file until the file system is full."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


# -- disk full ------------------------------------------------------------------


def test_disk_full_is_simulated_inside_the_store(app, client, lead, shares, monkeypatch):
    store = app.extensions["generate_share_store"]._store  # app.trail.Trail wraps the store
    start = client.put(f"{V1}/generate-share/attempt", headers=lead).get_json()
    nonce = start["nonce"]
    for key in shares[:2]:
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    before = snapshot(store.path)
    registry = client.get(f"{V1}/shares").get_json()

    def full(name, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_atomic", full)
    r = client.put(f"{V1}/generate-share/update", json={"key": shares[2], "nonce": nonce})
    text = assert_error(r, 503, "nothing was changed or issued")
    assert "No space left on device" in text
    assert snapshot(store.path) == before
    assert client.get(f"{V1}/shares").get_json() == registry
    status = client.get(f"{V1}/generate-share/attempt", headers=lead).get_json()
    assert (status["started"], status["nonce"], status["progress"]) == (True, nonce, 0)
    monkeypatch.undo()
    for key in shares[:3]:
        last = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).get_json()
    assert last["complete"] is True and same_key(unmask(last["key"], start["otp"]), shares, 3)
    assert reading.verify(store.path).ok


def test_disk_full_on_a_real_file_system(small_disk, tmp_path):
    data = small_disk / "data"
    with Server(data, tmp_path / "g.log") as server:
        init = server.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).json()
        keys, lead = init["keys"], {"X-Vault-Token": init["root_token"]}
        start = server.put(f"{V1}/generate-share/attempt", headers=lead).json()
        nonce = start["nonce"]
        for key in keys[:2]:
            server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
        registry = server.get(f"{V1}/shares").json()
        before = snapshot(data)
        fill(small_disk)
        r = server.put(f"{V1}/generate-share/update", json={"key": keys[2], "nonce": nonce})
        assert r.status_code == 503, r.text
        assert "nothing was changed or issued" in r.json()["errors"][0]
        assert snapshot(data) == before
        assert server.get(f"{V1}/shares").json() == registry
        assert server.get(f"{V1}/generate-share/attempt").json()["progress"] == 0
        (small_disk / "filler").unlink()
        for key in keys[:3]:
            last = server.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).json()
        assert last["complete"] is True and same_key(unmask(last["key"], start["otp"]), keys, 3)
    assert reading.verify(data).ok
    assert "Traceback" not in server.output()


# -- a crash at each step of an atomic write ------------------------------------

CHILD = r"""
import json, os, signal, sys
from app import create_app

data, step = sys.argv[1], int(sys.argv[2])
keys = json.loads(sys.stdin.read())
client = create_app({"DATA_DIR": data, "CEREMONY_AUTH": "open"}).test_client()
nonce = client.put("/v1/sys/generate-share/attempt").get_json()["nonce"]
for key in keys[:2]:
    client.put("/v1/sys/generate-share/update", json={"key": key, "nonce": nonce})

calls = 0
def point():
    global calls
    calls += 1
    if calls == step:
        os.kill(os.getpid(), signal.SIGKILL)

def hooked(real):
    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        point()
        return result
    return call

# The steps of recording a new share: append the trail line (write, fdatasync),
# write the state file's temporary copy (fdatasync), rename it, fsync the folder.
os.write, os.fsync, os.replace = hooked(os.write), hooked(os.fsync), hooked(os.replace)
os.fdatasync = hooked(os.fdatasync)
r = client.put("/v1/sys/generate-share/update", json={"key": keys[2], "nonce": nonce})
sys.exit(0 if r.status_code == 200 else 1)
"""

STEPS = ["line written", "line fsynced", "copy fsynced", "renamed", "folder fsynced", "none"]


@pytest.mark.parametrize("step", range(1, 7), ids=STEPS)
def test_a_crash_at_each_step_leaves_the_old_or_the_new_state(tmp_path, step):
    data = tmp_path / "data"
    app = create_app({"DATA_DIR": str(data)})
    keys = (
        app.test_client()
        .put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3})
        .get_json()["keys"]
    )
    app.extensions["generate_share_store"].close()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(step)],
        cwd=ROOT,
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == (0 if step == 6 else -9), child.stderr
    store = Store.open(data)
    try:
        issued = len(store.state.shares)
    finally:
        store.close()
    # Until the rename, the change never happened; from the rename on, it did.
    assert issued == (5 if step <= 3 else 6)
    assert not list(data.glob(".*.tmp"))
    report = reading.verify(data)
    assert report.ok, report.message
    assert report.lines == 1 + 1 + 2 + (issued - 5)  # init, started, two accepted, issued
    restarted = create_app({"DATA_DIR": str(data)})
    try:
        assert restarted.test_client().get(f"{V1}/shares").get_json()["issued"] == issued
    finally:
        restarted.extensions["generate_share_store"].close()


# -- a data folder the service cannot use ----------------------------------------


def test_a_read_only_data_folder_is_refused_at_start(small_disk, tmp_path):
    (small_disk / "data").mkdir(mode=0o700)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    server = Server(small_disk / "data", tmp_path / "g.log")
    server.spawn()
    assert server.wait() != 0
    assert f"the data folder {small_disk / 'data'} is not readable and writable" in server.output()


def test_a_data_folder_of_another_user_is_refused_at_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        # Root ignores modes; without the capabilities that let it, it obeys them.
        os.chown(data, 65534, 65534)
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    else:
        data.chmod(0o500)
        prefix = []
    server = Server(data, tmp_path / "g.log", prefix=prefix)
    server.spawn()
    assert server.wait() != 0
    assert str(data) in server.output()
    assert (
        "cannot create the data folder" in server.output() or "not readable and writable" in server.output()
    )


# -- SIGTERM with requests in flight ----------------------------------------------


# Open: the holders read the nonce from the attempt's GET, which shows it without a token only in open mode.
@pytest.mark.ceremony_auth("open")
def test_sigterm_lets_requests_in_flight_finish_cleanly(tmp_path, keyring):
    data = tmp_path / "data"
    server = Server(data, tmp_path / "g.log", env={"GENERATE_SHARE_THREADS": "8"}).start()
    keys = server.put(f"{V1}/init", json={"secret_shares": 9, "secret_threshold": 3}).json()["keys"]
    pgp_key = base64.b64encode(keyring.public_binary(keyring.ECC)).decode()
    results, lock = [], threading.Lock()
    some_done = threading.Event()

    def holder(worker):
        session = requests.Session()
        for _ in range(40):
            try:
                r = session.put(
                    f"{server.url}{V1}/generate-share/attempt", json={"pgp_key": pgp_key}, timeout=30
                )
                nonce = (
                    r.json().get("nonce")
                    or session.get(f"{server.url}{V1}/generate-share/attempt", timeout=30).json()["nonce"]
                )
                for key in keys[worker * 3 : worker * 3 + 3]:
                    r = session.put(
                        f"{server.url}{V1}/generate-share/update",
                        json={"key": key, "nonce": nonce},
                        timeout=30,
                    )
                    with lock:
                        results.append((r.status_code, r.json()))
                        if len(results) >= 20:
                            some_done.set()
            except requests.ConnectionError:
                with lock:
                    results.append(("closed", None))
                return

    threads = [threading.Thread(target=holder, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    assert some_done.wait(timeout=60)
    server.stop()  # SIGTERM while the holders are still sending
    for t in threads:
        t.join(timeout=60)
    assert server.proc.returncode == 0
    assert all(code in (200, 400, "closed") for code, _ in results), {c for c, _ in results}
    issued = {
        keyring.decrypt(bytes.fromhex(body["key"]))[-1]
        for code, body in results
        if code == 200 and body["complete"]
    }
    assert issued
    report = reading.verify(data)
    assert report.ok, report.message
    with Server(data, tmp_path / "again.log") as again:
        registry = {s["index"] for s in again.get(f"{V1}/shares").json()["shares"]}
        assert issued <= registry and len(registry) == 9 + len(issued)
    assert not list(data.glob(".*.tmp"))


# -- a crash at each step of recording an event that changes no state -------------

EVENT_CHILD = r"""
import os, signal, sys
from app.records import Store

data, step = sys.argv[1], int(sys.argv[2])
store = Store.open(data)
calls = 0
def hooked(real):
    def call(*args, **kwargs):
        global calls
        result = real(*args, **kwargs)
        calls += 1
        if calls == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

# The steps of recording a refusal: append the line (write, fdatasync), then
# overwrite one copy of the head in the head file (pwrite, fdatasync).
os.write, os.fdatasync, os.pwrite = hooked(os.write), hooked(os.fdatasync), hooked(os.pwrite)
store.record("refused", action="start_attempt", reason="a reason")
"""

EVENT_STEPS = ["line written", "line fsynced", "head written", "head fsynced", "none"]


@pytest.mark.parametrize("step", range(1, 6), ids=EVENT_STEPS)
def test_a_crash_while_recording_a_refusal_starts_cleanly_and_cuts_nothing_unnoticed(tmp_path, step):
    data = tmp_path / "data"
    store = Store.open(data)
    store.record("refused", action="initialize", reason="first")
    store.close()
    child = subprocess.run(
        [sys.executable, "-c", EVENT_CHILD, str(data), str(step)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert child.returncode == (0 if step == 5 else -9), child.stderr
    # The line is durable from its write on, so it is kept, whether or not its head was.
    store = Store.open(data)
    try:
        assert store.head.seq == 2
    finally:
        store.close()
    report = reading.verify(data)
    assert report.ok and report.head.seq == 2, report.message
    # And now that the head is recorded, cutting that line shows.
    lines = (data / "audit.log").read_bytes().splitlines(keepends=True)
    (data / "audit.log").write_bytes(b"".join(lines[:-1]))
    assert not reading.verify(data).ok
