"""The per-client rate limit on writes: ``limits``, in memory, keyed by the client ProxyFix leaves.

Only writes (any method but GET, HEAD, OPTIONS and TRACE) are counted and
limited. A write is what costs the service's disk (every refusal is audited,
coalesced; an accepted write is a line of its own) and its lock; a GET costs
a little CPU and writes nothing, and limiting reads would turn away health
probes and holders watching an attempt from behind one address. A flood of
reads is for the reverse proxy to limit (SECURITY.md).

A client over the limit gets a 429 in Vault's shape, with ``Retry-After`` in
seconds, and the refusal is audited as every refused write is (coalesced by
app/refusals.py into a line a second).

``limits`` is Flask-Limiter's own engine (same maintainers), used directly:
the limit is parsed once and one ``before_request`` hook counts each write,
where Flask-Limiter resolved which limits apply on every request (about
0.8 ms a write, measured).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ..errors import ServiceError
from .common import SAFE_METHODS, SETTINGS, get_service, who
from .errors import error_response

__all__ = ["LIMITER", "WindowCounts", "register"]

#: Where the app keeps its FixedWindowRateLimiter.
LIMITER = "generate_share_limiter"


def too_many(spec: str) -> str:
    """Return the sentence a client over the limit ``spec`` is told."""
    return (
        f"too many writes from this client (the limit is {spec}); nothing was changed: "
        "wait for the seconds Retry-After says, then send again"
    )


class WindowCounts(MemoryStorage):
    """MemoryStorage whose expired windows are dropped by the writes themselves, not by a thread per write.

    MemoryStorage (limits 5) starts a 10 ms ``threading.Timer`` on a write
    whenever its last one has run out, which at a ceremony's pace is every
    write (about 0.6 ms each, measured). Here each window's end goes on a heap
    when the window opens, and every write first drops the windows that have
    ended: a comparison when none has. Memory stays bounded under a flood from
    many addresses: a key lives only until its window ends (a second at the
    default limit) and the next write from anyone, so the counters held are at
    most the distinct clients that wrote within the longest window, one
    counter and one heap entry each.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """Start empty; ``clock`` is the wall clock (a test moves its own)."""
        super().__init__()  # MemoryStorage's own timer runs once, 10 ms after this
        self._mutex = threading.Lock()  # gthread: writes from several threads at once
        self._ends: list[tuple[float, str]] = []
        self._clock = clock

    def _drop_ended(self, now: float) -> None:
        """Forget every window that has ended; the caller holds the mutex."""
        ends, counts, expirations = self._ends, self.storage, self.expirations
        while ends and ends[0][0] <= now:
            _, key = heapq.heappop(ends)
            if expirations.get(key, math.inf) <= now:
                counts.pop(key, None)
                expirations.pop(key, None)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Count ``amount`` more for ``key``, opening a window of ``expiry`` seconds if none is open."""
        now = self._clock()
        with self._mutex:
            self._drop_ended(now)
            if key not in self.expirations:
                end = now + expiry
                self.expirations[key] = end
                heapq.heappush(self._ends, (end, key))
            self.storage[key] += amount
            return self.storage[key]

    def get(self, key: str) -> int:
        """Return the count in ``key``'s open window, 0 if none is open."""
        with self._mutex:
            if self.expirations.get(key, 0) <= self._clock():
                return 0
            return self.storage.get(key, 0)

    def get_expiry(self, key: str) -> float:
        """Return when ``key``'s window ends (now, if none is open)."""
        return self.expirations.get(key) or self._clock()

    def clear(self, key: str) -> None:
        """Forget ``key``'s window (its heap entry is dropped when it ends)."""
        with self._mutex:
            super().clear(key)

    def reset(self) -> int | None:
        """Forget every window."""
        with self._mutex:
            self._ends.clear()
            return super().reset()


def _client() -> str:
    """Return the client the limit counts: the address after the trusted proxies (ProxyFix)."""
    return request.remote_addr or "local"  # a Unix socket has no address: one client


def _limit(limiter: FixedWindowRateLimiter, items: list[RateLimitItem], spec: str) -> Response | None:
    """Count a write against its client's limits; answer 429 with Retry-After, audited, when over one."""
    if request.method in SAFE_METHODS or request.endpoint is None:
        return None  # reads are never limited; an unknown path or method gets its 404 or 405
    client = _client()
    for item in items:
        if limiter.hit(item, client):
            continue
        reset = limiter.get_window_stats(item, client).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        message = too_many(spec)
        try:
            get_service().record_refusal(who(), [message])  # the service writes it, coalesced
        except ServiceError as failed:
            return error_response(failed.status, *failed.messages)
        return error_response(429, message, headers={"Retry-After": str(wait)})
    return None


def register(app: Flask) -> None:
    """Limit each client's writes to GENERATE_SHARE_RATE_LIMIT (checked in app/config.py), if set."""
    spec = app.extensions[SETTINGS].rate_limit
    if spec is None:
        return
    limiter = FixedWindowRateLimiter(WindowCounts())
    app.extensions[LIMITER] = limiter
    # After lifecycle's hooks: a 429 carries a request id, and a cross-site write gets its 403.
    items = parse_many(spec)

    def limit_writes() -> Response | None:
        """Count this write against its client's limit."""
        return _limit(limiter, items, spec)

    app.before_request(limit_writes)
