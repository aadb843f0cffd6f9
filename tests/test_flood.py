"""A flood cannot fill the disk (issue 17): coalesced refusals, the per-client rate limit, the low-disk guard.

Against the real gunicorn (tests/server.py). Clients are told apart by their
source address: the flood comes from 127.0.0.1, and a second client binds
127.0.0.2 (all of 127/8 is loopback on Linux) with http.client.

The 20 s flood is marked ``soak`` (run by ``make soak``, which CI runs): the
suite as a whole is already longer than the 5 minutes it may add to.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from pathlib import Path

import pytest
import requests
from limits import parse_many
from limits.strategies import FixedWindowRateLimiter

from app import audit, reading, records
from app.api.limits import WindowCounts
from app.folder import LowDiskGuard
from app.refusals import MAX_REASONS
from app.trail import Trail
from server import Server

V1 = "/v1/sys"
ATTEMPT = f"{V1}/generate-share/attempt"
UPDATE = f"{V1}/generate-share/update"
INIT = {"secret_shares": 5, "secret_threshold": 3}
OTHER = "127.0.0.2"
# A refused update: the key is neither hex nor base64, so nothing is looked at.
BAD_UPDATE = {"key": "zz", "nonce": "00000000-0000-4000-8000-000000000000"}
REFUSED = (400, 429)


class Client:
    """A keep-alive HTTP client bound to one loopback source address."""

    def __init__(self, server: Server, source: str):
        self._conn = http.client.HTTPConnection(
            "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
        )

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        """Send one request; return (status, headers, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        sent = (
            {"Content-Type": "application/json", **(headers or {})}
            if data is not None
            else dict(headers or {})
        )
        self._conn.request(method, path, body=data, headers=sent)
        response = self._conn.getresponse()
        raw = response.read()
        return response.status, response.headers, json.loads(raw) if raw else None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def trail(folder: Path) -> list[dict]:
    """Return every line of the audit trail, decoded."""
    return [json.loads(line) for line in (folder / audit.AUDIT_FILE).read_bytes().splitlines()]


def refusals(lines: list[dict]) -> int:
    """Return how many refusals the trail stands for (a line without a count is one)."""
    return sum(e.get("count", 1) for e in lines if e["event"] == "refused")


def ceremony(client: Client, keys: list[str], *, token: str | None = None, probe: bool = False) -> list[int]:
    """Run start and three updates, as the CLI does (a health GET before each write when ``probe``)."""
    statuses = []
    lead = {"X-Vault-Token": token} if token else {}

    def write(method, path, body=None, headers=None):
        if probe:
            statuses.append(client.call("GET", f"{V1}/health?uninitcode=200")[0])
        status, _, reply = client.call(method, path, body, headers)
        statuses.append(status)
        return status, reply

    status, started = write("PUT", ATTEMPT, {}, lead)
    assert status == 200, started
    for key in keys[:3]:
        status, reply = write("PUT", UPDATE, {"key": key, "nonce": started["nonce"]})
        assert status == 200, reply
    assert reply["complete"] is True
    return statuses


# -- the flood ----------------------------------------------------------------------------


@pytest.mark.soak
def test_a_flood_grows_the_trail_little_and_a_ceremony_from_another_client_goes_through(tmp_path):
    data = tmp_path / "data"
    flood_seconds, threads = 20, 8
    with Server(data, tmp_path / "g.log", env={"GENERATE_SHARE_RATE_LIMIT": None}) as server:
        other = Client(server, OTHER)
        status, _, body = other.call("PUT", f"{V1}/init", INIT)
        assert status == 200, body
        keys = body["keys"]
        before_lines = trail(data)
        before_size = (data / audit.AUDIT_FILE).stat().st_size
        seen = collections.Counter()
        lock = threading.Lock()
        stop, limited = threading.Event(), threading.Event()

        def flood():
            session, counts = requests.Session(), collections.Counter()
            while not stop.is_set():
                status = session.put(server.url + UPDATE, json=BAD_UPDATE, timeout=30).status_code
                counts[status] += 1
                if status == 429:
                    limited.set()
            with lock:
                seen.update(counts)

        workers = [threading.Thread(target=flood) for _ in range(threads)]
        started = time.monotonic()
        for t in workers:
            t.start()
        # A ceremony from another client, once the flood is at full strength (the limit meets it).
        assert limited.wait(30)
        began = time.perf_counter()
        statuses = ceremony(other, keys, token=body["root_token"], probe=True)
        took = time.perf_counter() - began
        stop.wait(max(0.0, flood_seconds - (time.monotonic() - started)))
        stop.set()
        for t in workers:
            t.join()
        elapsed = time.monotonic() - started
        other.close()
    # Stopped gracefully: the worker wrote the refusals it was still counting.
    growth = (data / audit.AUDIT_FILE).stat().st_size - before_size
    lines = trail(data)
    flood_lines = lines[len(before_lines) :]
    refused = seen[400] + seen[429]
    print(
        f"\nflood: {sum(seen.values())} requests in {elapsed:.1f} s from {threads} threads, "
        f"statuses {dict(sorted(seen.items()))}; trail +{growth} bytes in {len(flood_lines)} lines; "
        f"ceremony from {OTHER} in {took:.3f} s"
    )
    assert set(seen) <= set(REFUSED), seen
    assert seen[429] > 0 and refused > 1000  # it was a flood, and the limit met it
    assert set(statuses) == {200}, statuses
    assert took < 5.0, took
    assert growth < 1024 * 1024, growth
    report = reading.verify(data)
    assert report.ok, report.message
    flood_refusals = [e for e in flood_lines if e["event"] == "refused"]
    assert refusals(flood_refusals) == refused
    assert {e["client"] for e in flood_refusals} == {"127.0.0.1"}
    assert all(e["first"] <= e["last"] and e["count"] >= 1 for e in flood_refusals)
    # The ceremony's own events are all there, in the order it made them.
    events = [e["event"] for e in flood_lines if e["event"] != "refused"]
    assert events == ["attempt_started", "share_accepted", "share_accepted", "share_issued"]


# -- the rate limit --------------------------------------------------------------------------


def test_a_full_ceremony_from_one_client_never_meets_a_429_at_the_default_limit(tmp_path):
    # Token mode, the real default, the CLI's habits: a health GET before every write.
    env = {"GENERATE_SHARE_CEREMONY_AUTH": None, "GENERATE_SHARE_RATE_LIMIT": None}
    with Server(tmp_path / "data", tmp_path / "g.log", env=env) as server:
        client = Client(server, "127.0.0.1")
        status, _, body = client.call("PUT", f"{V1}/init", INIT)
        assert status == 200, body
        statuses = []
        for _ in range(2):  # two ceremonies back to back, as fast as one client can send them
            statuses += ceremony(client, body["keys"], token=body["root_token"], probe=True)
        statuses.append(client.call("GET", f"{V1}/shares")[0])
        client.close()
    assert set(statuses) == {200}, statuses
    assert len(statuses) == 2 * 8 + 1


def test_a_client_over_the_limit_gets_a_429_with_retry_after_and_others_are_unaffected(tmp_path):
    data = tmp_path / "data"
    with Server(data, tmp_path / "g.log", env={"GENERATE_SHARE_RATE_LIMIT": None}) as server:
        flooder, other = Client(server, "127.0.0.1"), Client(server, OTHER)
        seen = collections.Counter()
        for _ in range(500):  # 20 writes a second are let through: a burst soon meets the limit
            status, headers, body = flooder.call("PUT", UPDATE, BAD_UPDATE)
            seen[status] += 1
            if status == 429:
                break
        assert status == 429, seen
        assert set(body) == {"errors"} and "too many writes" in body["errors"][0]
        assert "Retry-After" in body["errors"][0] and "20/second" in body["errors"][0]
        assert headers["Content-Type"] == "application/json"
        assert 1 <= int(headers["Retry-After"]) <= 2  # the window is a second
        # The other client is served at once, its writes and its reads; reads are never limited.
        status, _, reply = other.call("PUT", f"{V1}/init", INIT)
        assert status == 200, reply
        assert flooder.call("GET", f"{V1}/health")[0] == 200
        assert other.call("PUT", UPDATE, BAD_UPDATE)[0] == 400
        flooder.close()
        other.close()
    lines = trail(data)
    limited = [e for e in lines if e["event"] == "refused" and "too many writes" in e["reason"]]
    assert limited and {e["client"] for e in limited} == {"127.0.0.1"}
    assert {e["action"] for e in limited} == {"update"}
    # Every refusal either client saw is counted in the trail, once.
    assert refusals(lines) == seen[400] + seen[429] + 1
    assert reading.verify(data).ok


def test_refusals_still_counted_when_the_server_stops_are_written(tmp_path):
    data = tmp_path / "data"
    with Server(data, tmp_path / "g.log") as server:
        client = Client(server, "127.0.0.1")
        for _ in range(5):
            assert client.call("PUT", UPDATE, BAD_UPDATE)[0] == 400
        client.close()
        lines = trail(data)
        assert [e["count"] for e in lines] == [1]  # the first at once, the others counted
    # SIGTERM: the worker exits gracefully and writes what it counted.
    assert refusals(trail(data)) == 5
    assert reading.verify(data).ok


@pytest.mark.parametrize("value", ["20/fortnight", "lots", "0/second", "-1"])
def test_a_bad_rate_limit_stops_the_start_naming_the_variable(tmp_path, value):
    server = Server(tmp_path / "data", tmp_path / "g.log", env={"GENERATE_SHARE_RATE_LIMIT": value})
    server.spawn()
    assert server.wait() != 0
    assert "GENERATE_SHARE_RATE_LIMIT must be a rate such as 20/second" in server.output()


@pytest.mark.parametrize("value", ["off", "0"])
def test_the_limit_can_be_turned_off(tmp_path, value):
    with Server(tmp_path / "data", tmp_path / "g.log", env={"GENERATE_SHARE_RATE_LIMIT": value}) as server:
        client = Client(server, "127.0.0.1")
        statuses = collections.Counter(client.call("PUT", UPDATE, BAD_UPDATE)[0] for _ in range(100))
        client.close()
    assert statuses == {400: 100}


# -- the low-disk guard -------------------------------------------------------------------------


def test_below_the_free_space_floor_refusals_are_counted_in_memory_and_a_state_event_still_writes(tmp_path):
    data = tmp_path / "data"
    # 10 TB: more than the test machine has free, so the guard is on from the start.
    env = {"GENERATE_SHARE_MIN_FREE_MB": "10000000"}
    with Server(data, tmp_path / "g.log", env=env) as server:
        client = Client(server, "127.0.0.1")
        status, _, health = client.call("GET", f"{V1}/health?uninitcode=200")
        assert status == 200 and health["low_disk"] is True
        for _ in range(10):
            assert client.call("PUT", UPDATE, BAD_UPDATE)[0] == 400
        assert not (data / audit.AUDIT_FILE).read_bytes()  # counted in memory only
        status, _, body = client.call("PUT", f"{V1}/init", INIT)
        assert status == 200, body
        lines = trail(data)
        assert [e["event"] for e in lines] == ["refused", "init"]
        assert lines[0]["count"] == 10 and lines[0]["client"] == "*" and lines[0]["action"] == "update"
        assert "less than 10000000 MB free" in lines[0]["reason"]
        status, _, health = client.call("GET", f"{V1}/health")
        assert status == 200 and health["low_disk"] is True
        gauges = {g["Name"]: g["Value"] for g in client.call("GET", f"{V1}/metrics")[2]["Gauges"]}
        assert gauges["generate_share_low_disk"] == 1
        client.close()
    assert reading.verify(data).ok


def test_with_room_on_disk_health_says_so(tmp_path):
    with Server(tmp_path / "data", tmp_path / "g.log") as server:
        assert server.get(f"{V1}/health?uninitcode=200").json()["low_disk"] is False
        gauges = {g["Name"]: g["Value"] for g in server.get(f"{V1}/metrics").json()["Gauges"]}
        assert gauges["generate_share_low_disk"] == 0


@pytest.mark.parametrize("value", ["-1", "lots", "1.5"])
def test_a_bad_free_space_floor_stops_the_start_naming_the_variable(tmp_path, value):
    server = Server(tmp_path / "data", tmp_path / "g.log", env={"GENERATE_SHARE_MIN_FREE_MB": value})
    server.spawn()
    assert server.wait() != 0
    assert "GENERATE_SHARE_MIN_FREE_MB must be a whole number of megabytes" in server.output()


# -- the coalescing, in process ------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Coalesced:
    """A Trail's coalescer, reached the way the tests need it: flush_due by hand."""

    def __init__(self, trail: Trail):
        self.trail = trail

    def flush_due(self):
        return self.trail._held.flush_due()


@pytest.fixture
def coalescer(tmp_path):
    """A trail over a store, on a hand-moved clock, with no background thread."""
    store = records.Store.open(tmp_path / "data")
    ticks = Ticks()
    trail = Trail(store, threading.Lock(), LowDiskGuard(store.path), monotonic=ticks)
    trail._held._start_flusher = lambda: None  # the test calls flush_due itself
    yield trail, Coalesced(trail), ticks
    trail.close()


def refuse(refusals: Coalesced, client: str, reason: str = "no attempt", action: str = "update") -> None:
    refusals.trail.refuse(audit.RequestInfo(request_id=f"id-{client}", client=client), action, reason)


def test_the_first_refusal_is_written_at_once_and_the_rest_when_the_window_ends(coalescer, tmp_path):
    store, refusals, ticks = coalescer
    for _ in range(5):
        refuse(refusals, "10.0.0.1")
    assert [e["count"] for e in trail(store.path)] == [1]
    ticks.now += 0.5
    assert refusals.flush_due() == pytest.approx(0.5)  # not yet
    ticks.now += 0.5
    assert refusals.flush_due() == pytest.approx(1.0)  # written; the window goes on
    assert [e["count"] for e in trail(store.path)] == [1, 4]
    ticks.now += 1.0
    assert refusals.flush_due() is None  # nothing came: the window closes
    refuse(refusals, "10.0.0.1")
    assert [e["count"] for e in trail(store.path)] == [1, 4, 1]  # a new kind again: at once


def test_counted_refusals_are_written_before_any_other_event_and_at_close(coalescer):
    store, refusals, ticks = coalescer
    for _ in range(3):
        refuse(refusals, "10.0.0.1")
    store.record(audit.NOBODY, "attempt_cancelled", nonce="n", progress=0)
    refuse(refusals, "10.0.0.1")
    store.close()
    lines = trail(store.path)
    assert [(e["event"], e.get("count")) for e in lines] == [
        ("refused", 1),
        ("refused", 2),
        ("attempt_cancelled", None),
        ("refused", 1),
    ]
    assert lines[1]["client"] == "10.0.0.1" and lines[1]["request_id"] == "id-10.0.0.1"
    assert lines[1]["first"] <= lines[1]["last"]
    assert reading.verify(store.path).ok


def test_a_client_that_varies_its_reason_shares_one_window_past_a_few(coalescer):
    store, refusals, _ = coalescer
    for n in range(100):
        refuse(refusals, "10.0.0.1", reason=f"bad origin {n}")
    refuse(refusals, "10.0.0.2", reason="bad origin 0")  # another client keeps its own
    store.close()
    lines = trail(store.path)
    assert len(lines) == MAX_REASONS + 3  # a line per reason, one for the rest at once, one when closed
    assert refusals_of(lines, "10.0.0.1") == 100 and refusals_of(lines, "10.0.0.2") == 1
    assert "one of them: bad origin 4" in lines[MAX_REASONS]["reason"]


def refusals_of(lines: list[dict], client: str) -> int:
    return refusals([e for e in lines if e["client"] == client])


# -- the limit's counters, in process ------------------------------------------------------------


@pytest.fixture
def counted():
    """A fixed-window limiter over WindowCounts on a hand-moved wall clock."""
    ticks = Ticks()
    storage = WindowCounts(clock=ticks)
    storage.timer.join()  # MemoryStorage's own first timer, started once at construction
    return FixedWindowRateLimiter(storage), storage, ticks


def test_a_client_gets_its_limit_per_window_and_learns_when_the_window_ends(counted):
    limiter, _, ticks = counted
    (item,) = parse_many("3/second")
    assert [limiter.hit(item, "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "10.0.0.2")  # another client has its own window
    ticks.now += 0.5
    assert not limiter.hit(item, "10.0.0.1")
    stats = limiter.get_window_stats(item, "10.0.0.1")
    assert stats.reset_time == pytest.approx(1001.0) and stats.remaining == 0
    ticks.now += 0.5
    assert limiter.hit(item, "10.0.0.1")  # a new window
    assert limiter.get_window_stats(item, "10.0.0.1").remaining == 2


def test_ended_windows_are_forgotten_so_a_flood_from_many_addresses_holds_little(counted):
    limiter, storage, ticks = counted
    items = parse_many("20/second;100/minute")
    for n in range(5000):
        for item in items:
            limiter.hit(item, f"10.0.{n // 256}.{n % 256}")
    assert len(storage.storage) == 10000
    ticks.now += 1.0  # the second-long windows end; the minute-long ones go on
    limiter.hit(items[0], "10.9.9.9")
    assert len(storage.storage) == 5001 and len(storage.expirations) == 5001
    ticks.now += 59.0
    limiter.hit(items[0], "10.9.9.9")
    assert len(storage.storage) == len(storage.expirations) == 1
    assert len(storage._ends) == 1


def test_writes_at_a_ceremonys_pace_start_no_thread(counted):
    # limits' MemoryStorage starts a Timer thread on a write once its last has run out.
    limiter, storage, ticks = counted
    (item,) = parse_many("20/second")
    first, threads = storage.timer, threading.active_count()
    for _ in range(5):
        ticks.now += 0.05
        assert limiter.hit(item, "10.0.0.1")
        assert storage.timer is first and threading.active_count() == threads
