"""Refused requests, coalesced: a flood grows the audit trail by a few lines a second, not a line each.

The first refusal of a kind (the same client, action and reason) is written
at once, as before, so a lone refusal shows in the trail and its webhooks
without delay. Further refusals of that kind within the next ``WINDOW``
seconds are only counted; when the window ends they become one line, and the
window goes on while they keep coming. Every ``refused`` line has the shape::

    {"event": "refused", "action": ..., "reason": ..., "count": n,
     "first": <time>, "last": <time>, "client": ..., "request_id": ..., ...}

``count`` is how many refusals the line stands for (a line written before
coalescing has none: count it as 1); ``first`` and ``last`` are the times of
the first and last of them (RFC 3339, UTC, milliseconds); ``client`` and
``request_id`` are those of the first: the example, to find in the access
log. The sum of the counts is the number of refusals. A reason never holds a
share: the service's refusals never quote one (see app/api/errors.py).

Counted refusals are written before any other event is committed (so the
trail's order stays true), when their window ends (by a background thread,
or by the next refusal), and at close and at exit.

A client that varies its reason (an echoed header, say) would open a window
per request: past ``MAX_REASONS`` open windows, a client's further reasons of
one action share a window whose reason says so and quotes the first.

Below ``min_free`` bytes free in the data folder (checked at most once a
second) refusals are not written at all, only counted in memory: they are
written, as one ``refused`` line per action with ``client`` "*" and a reason
that says so, before the next other event, once the disk has room again, or
at close. Every other event is always written.

Not thread-safe on its own: every method but ``close``, ``flush_due`` and
``low_disk`` runs under the service's lock, which it is given.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .audit import REQUEST, RequestInfo
from .errors import Unavailable

if TYPE_CHECKING:
    from .records import Store

__all__ = ["MAX_REASONS", "WINDOW", "Refusals", "free_bytes"]

log = logging.getLogger(__name__)

#: Seconds a window stays open after its first counted refusal.
WINDOW = 1.0
#: Open windows one client may hold with distinct reasons; more share one.
MAX_REASONS = 4
#: Open windows in all; past this a refusal gets a line of its own (many clients at once).
MAX_WINDOWS = 1024
#: How often, at most, the free space of the data folder is asked.
DISK_CHECK_SECONDS = 1.0
#: The client a line of refusals counted only in memory names.
UNRECORDED_CLIENT = "*"


def _now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_bytes(path: str | os.PathLike) -> int:
    """Return the bytes an unprivileged writer may still use in the file system of ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@dataclass
class _Window:
    """The refusals of one kind counted since its last line."""

    request_id: str
    opened: float  # monotonic
    count: int = 0
    first: str = ""
    last: str = ""


class Refusals:
    """Write refused requests to the trail, coalesced; see the module's docstring."""

    def __init__(
        self,
        store: Store,
        lock: threading.Lock,
        *,
        min_free: int = 0,
        window: float = WINDOW,
        free=free_bytes,
        monotonic=time.monotonic,
        clock=_now,
    ):
        self._store = store
        self._lock = lock
        self._min_free = min_free
        self._window = window
        self._free = free
        self._monotonic = monotonic
        self._clock = clock
        self._open: dict[tuple[str, str, str], _Window] = {}
        self._reasons: dict[str, int] = {}  # open windows per client
        # Refusals counted while the disk was low, by action: [count, first, last].
        self._unrecorded: dict[str, list] = {}
        self._low: tuple[float, bool] = (float("-inf"), False)  # (checked at, low): one tuple, read whole
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Event()
        store.before_commit = self._before_commit
        store.before_close = self.close
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- counting ---------------------------------------------------------------

    def add(self, action: str, reason: str) -> None:
        """Count one refusal of the current request; write it now if it opens a window."""
        who = REQUEST.get()
        now = self._clock()
        if self.low_disk():
            self._count_unrecorded(action, 1, now, now)
            return
        self._flush_unrecorded()
        tick = self._monotonic()
        self._flush_expired(tick)
        key = (who.client, action, reason)
        window = self._open.get(key)
        if window is None and self._reasons.get(who.client, 0) >= MAX_REASONS:
            key = (who.client, action, "")
            window = self._open.get(key)
            if window is None:
                reason = f"refused for more than {MAX_REASONS} reasons within a second; one of them: {reason}"
        if window is not None:
            if not window.count:
                window.first, window.request_id = now, who.request_id
            window.count += 1
            window.last = now
            return
        # A new kind: its first refusal is written at once, as every refusal was.
        self._write(action, reason, 1, now, now)
        if len(self._open) < MAX_WINDOWS:
            self._open[key] = _Window(request_id=who.request_id, opened=tick)
            self._reasons[who.client] = self._reasons.get(who.client, 0) + 1
            self._start_flusher()

    def low_disk(self) -> bool:
        """Tell whether the data folder has less room than the guard asks (checked at most once a second)."""
        if not self._min_free:
            return False
        checked, low = self._low
        tick = self._monotonic()
        if tick - checked < DISK_CHECK_SECONDS:
            return low
        try:
            low = self._free(self._store.path) < self._min_free
        except OSError:
            low = True  # cannot tell: assume the worst, state events are written anyway
        if low and not self._low[1]:
            log.warning(
                "the data folder has less than %d MB free: refusals are counted in memory only",
                self._min_free // (1024 * 1024),
            )
        self._low = (tick, low)
        return low

    def pending(self) -> int:
        """Return how many refusals are counted but not yet written."""
        return sum(w.count for w in self._open.values()) + sum(u[0] for u in self._unrecorded.values())

    # -- writing ----------------------------------------------------------------

    def flush(self) -> None:
        """Write every refusal counted so far (the caller holds the lock)."""
        for key in list(self._open):
            self._emit(key, self._open.pop(key))
        self._reasons.clear()
        self._flush_unrecorded(force=True)

    def flush_due(self) -> float | None:
        """Write the windows whose time is up; return the seconds until the next ends (None: none open)."""
        with self._lock:
            if self._closed:
                return None
            tick = self._monotonic()
            self._flush_expired(tick)
            if not self.low_disk():
                self._flush_unrecorded()
            if not self._open:
                self._flusher = None
                return None
            return max(0.0, min(w.opened for w in self._open.values()) + self._window - tick)

    def close(self) -> None:
        """Write every counted refusal and stop the background thread; later refusals are not counted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.set()
            try:
                self.flush()
            finally:
                self._store.before_commit = self._store.before_close = None

    def _before_commit(self, event: str) -> None:
        """Write the counted refusals before another event (the store calls this under the lock)."""
        self.flush()

    def _flush_expired(self, tick: float) -> None:
        """Write the windows open for ``window`` seconds; keep those still counting open for another."""
        for key, window in list(self._open.items()):
            if tick - window.opened < self._window:
                continue
            if window.count:
                self._emit(key, replace(window))
                window.count = 0
                window.opened = tick
            else:
                del self._open[key]
                left = self._reasons.get(key[0], 1) - 1
                if left:
                    self._reasons[key[0]] = left
                else:
                    self._reasons.pop(key[0], None)

    def _emit(self, key: tuple[str, str, str], window: _Window) -> None:
        """Write one window's counted refusals as one line, in the name of its first request."""
        if not window.count:
            return
        client, action, reason = key
        if not reason:
            reason = f"refused for more than {MAX_REASONS} reasons within a second"
        if self.low_disk():
            self._count_unrecorded(action, window.count, window.first, window.last)
            return
        token = REQUEST.set(RequestInfo(request_id=window.request_id, client=client))
        try:
            self._write(action, reason, window.count, window.first, window.last)
        except Unavailable:
            # The line could not be written (the disk): keep the count, written later.
            self._count_unrecorded(action, window.count, window.first, window.last)
        finally:
            REQUEST.reset(token)

    def _count_unrecorded(self, action: str, count: int, first: str, last: str) -> None:
        tally = self._unrecorded.setdefault(action, [0, first, last])
        tally[0] += count
        tally[2] = last

    def _flush_unrecorded(self, *, force: bool = False) -> None:
        """Write the refusals counted only in memory, a line per action (once there is room, or ``force``)."""
        if not self._unrecorded or (not force and self.low_disk()):
            return
        tallies, self._unrecorded = self._unrecorded, {}
        reason = (
            f"counted in memory only: the data folder had less than {self._min_free // (1024 * 1024)} MB "
            "free, so these refusals were not written one kind at a time (their clients and reasons are "
            "not known)"
        )
        token = REQUEST.set(RequestInfo(request_id="", client=UNRECORDED_CLIENT))
        try:
            for action, (count, first, last) in tallies.items():
                try:
                    self._write(action, reason, count, first, last)
                except Unavailable:
                    self._count_unrecorded(action, count, first, last)  # kept for the next try
        finally:
            REQUEST.reset(token)

    def _write(self, action: str, reason: str, count: int, first: str, last: str) -> None:
        self._store.record("refused", action=action, reason=reason, count=count, first=first, last=last)

    # -- the background flusher --------------------------------------------------

    def _start_flusher(self) -> None:
        """Start the thread that writes windows whose time is up, unless it runs."""
        if self._flusher is not None or self._closed:
            return
        self._flusher = threading.Thread(
            target=_flush_loop, args=(weakref.ref(self), self._wake), name="refusals", daemon=True
        )
        self._flusher.start()


def _flush_loop(ref: weakref.ref, wake: threading.Event) -> None:
    """Write due windows until none is open; hold the Refusals only while writing."""
    delay = 0.0
    while not wake.wait(delay):
        refusals = ref()
        if refusals is None:
            return
        try:
            delay = refusals.flush_due()
        except Exception:  # a failed write (full disk) must not kill the thread silently
            log.exception("could not write the coalesced refusals")
            delay = WINDOW
        del refusals
        if delay is None:
            return
        delay += 0.01  # just past the window's end


def _close_at_exit(ref: weakref.ref) -> None:
    """Write the counted refusals when the process exits (a gunicorn worker's sys.exit runs this)."""
    refusals = ref()
    if refusals is not None:
        try:
            refusals.close()
        except Exception:
            log.exception("could not write the coalesced refusals at exit")
