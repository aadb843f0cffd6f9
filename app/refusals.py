"""What strangers can make the service write, coalesced: a flood grows the trail by a few lines a second.

``app.trail.Trail`` hands this module what anyone at the port can make the
service write: refused requests (``refused``) and failed custody checks
(``share_verify_failed``).

The first line of a kind (the same client, event and reason) is written at
once, so a lone refusal shows in the trail and its webhooks without delay.
Further lines of that kind within the next ``WINDOW`` seconds are only
counted; when the window ends they become one line, and the window goes on
while they keep coming. Such a line has the shape::

    {"event": "refused", "action": ..., "reason": ..., "count": n,
     "first": <time>, "last": <time>, "client": ..., "request_id": ..., ...}

(``share_verify_failed`` names the ``index`` checked instead of an action.)
``count`` is how many the line stands for (a line written before coalescing
has none: count it as 1); ``first`` and ``last`` are the times of the first
and last of them (RFC 3339, UTC, milliseconds); ``client`` and
``request_id`` are those of the first: the example, to find in the access
log. The sum of the counts is the number of events. A reason never holds a
share: the service's refusals never quote one.

Counted lines are written before any other event is committed, when their
window ends (by a background thread, or by the next line of the kind), and
at close and at exit.

A client that varies its reason (an echoed header, say) would open a
window per request: past ``MAX_REASONS`` open windows, a client's further
reasons of one event share a window whose reason says so and quotes the
first. Many clients at once (a flood from many addresses) would each get a
line a second: past ``MAX_CLIENTS`` clients with open windows, the lines of
the others share one window per event and action, named client "*", so
that the trail grows by a few dozen lines a second at most, whatever comes.

Below the data folder's floor (``app.folder.LowDiskGuard``) these lines are
not written at all, only counted in memory: they are written, as one line
per event and action with ``client`` "*" and a reason that says so, before
the next other event, once the disk has room again, or at close. A
ceremony's own events are always written.

Hand-written rather than a logging handler's buffering: the lines are part
of a hash chain committed under the service's lock, and the order of a
coalesced line against the ceremony's own lines matters.

Not thread-safe on its own: every method of ``Coalescer`` but ``close`` and
``flush_due`` runs under the service's lock, which it is given.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .audit import RequestInfo
from .errors import Unavailable
from .folder import LowDiskGuard

__all__ = ["MAX_CLIENTS", "MAX_REASONS", "WINDOW", "Coalescer"]

log = logging.getLogger(__name__)

#: Seconds a window stays open after its first counted line.
WINDOW = 1.0
#: Open windows one client may hold with distinct reasons; more share one.
MAX_REASONS = 4
#: Clients with windows of their own at once; the lines of any more share one window per event.
MAX_CLIENTS = 16
#: Open windows in all (a bound on memory that MAX_CLIENTS and MAX_REASONS keep far off).
MAX_WINDOWS = 1024
#: The client the shared window of many clients names.
CROWD = "*"
#: The client a line of events counted only in memory names.
UNRECORDED_CLIENT = "*"


def _now() -> str:
    """Return the current time as RFC 3339 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Window:
    """The lines of one kind counted since its last line."""

    request_id: str
    opened: float  # monotonic
    fields: dict = field(default_factory=dict)  # what the window's coalesced lines say
    count: int = 0
    first: str = ""
    last: str = ""


#: write(who, event, fields): commit one line (``fields`` hold count, first and last).
Write = Callable[[RequestInfo, str, dict], None]


class Coalescer:
    """Count what strangers cause and write it a line per kind and second; see the module's docstring."""

    def __init__(
        self,
        write: Write,
        lock: threading.Lock,
        guard: LowDiskGuard,
        *,
        window: float = WINDOW,
        monotonic=time.monotonic,
        clock=_now,
    ):
        self._write_line = write
        self._lock = lock
        self._guard = guard
        self._window = window
        self._monotonic = monotonic
        self._clock = clock
        self._open: dict[tuple[str, str, str], _Window] = {}
        self._reasons: dict[str, int] = {}  # open windows per client
        # Lines counted while the disk was low, by (event, action): [count, first, last].
        self._unrecorded: dict[tuple[str, str], list] = {}
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Event()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- counting ---------------------------------------------------------------

    def add(self, who: RequestInfo, event: str, kind: str, fields: dict, overflow: str) -> None:
        """Count one line of ``event`` by ``who``; write it now if it opens a window.

        ``kind`` tells lines of one event apart (the reason); ``fields`` are
        the line's own; ``overflow`` is the reason a client's line gives once
        it holds ``MAX_REASONS`` windows (its first quotes ``fields``).
        """
        now = self._clock()
        action = fields.get("action", "")
        if self._guard.low():
            self._count_unrecorded(event, action, 1, now, now)
            return
        self._flush_unrecorded()
        tick = self._monotonic()
        self._flush_expired(tick)
        key = (who.client, event, kind)
        later = fields
        window = self._open.get(key)
        note = ""
        if window is None and who.client not in self._reasons and len(self._reasons) >= MAX_CLIENTS:
            # Many clients at once (a flood from many addresses): the rest share one window.
            key, note = (CROWD, event, "\0" + action), f"from more than {MAX_CLIENTS} clients at once"
        elif window is None and self._reasons.get(who.client, 0) >= MAX_REASONS:
            key, note = (who.client, event, "\0" + action), overflow or "more than one kind within a second"
        if note:
            window = self._open.get(key)
            later = {**fields, "reason": note}
            if window is None:
                quoted = fields.get("reason") or ", ".join(f"{k} {v}" for k, v in fields.items())
                fields = {**fields, "reason": f"{note}; one of them: {quoted}"}
        if window is not None:
            if not window.count:
                window.first, window.request_id = now, who.request_id
            window.count += 1
            window.last = now
            return
        # A new kind: its first line is written at once, as every line was.
        self._write(who, event, fields, 1, now, now)
        if len(self._open) < MAX_WINDOWS:
            self._open[key] = _Window(request_id=who.request_id, opened=tick, fields=later)
            self._reasons[key[0]] = self._reasons.get(key[0], 0) + 1
            self._start_flusher()

    # -- writing ----------------------------------------------------------------

    def flush(self) -> None:
        """Write every line counted so far (the caller holds the lock)."""
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
            if not self._guard.low():
                self._flush_unrecorded()
            if not self._open:
                self._flusher = None
                return None
            return max(0.0, min(w.opened for w in self._open.values()) + self._window - tick)

    def close(self) -> None:
        """Write every counted line and stop the background thread; later lines are not counted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.set()
            self.flush()

    def _flush_expired(self, tick: float) -> None:
        """Write the windows open for ``window`` seconds; keep those still counting open for another."""
        for key, window in list(self._open.items()):
            if tick - window.opened < self._window:
                continue
            if window.count:
                self._emit(key, window)
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
        """Write one window's counted lines as one, in the name of its first request."""
        if not window.count:
            return
        client, event, _ = key
        action = window.fields.get("action", "")
        if self._guard.low():
            self._count_unrecorded(event, action, window.count, window.first, window.last)
            return
        who = RequestInfo(request_id=window.request_id, client=client)
        try:
            self._write(who, event, window.fields, window.count, window.first, window.last)
        except Unavailable:
            # The line could not be written (the disk): keep the count, written later.
            self._count_unrecorded(event, action, window.count, window.first, window.last)

    def _count_unrecorded(self, event: str, action: str, count: int, first: str, last: str) -> None:
        tally = self._unrecorded.setdefault((event, action), [0, first, last])
        tally[0] += count
        tally[2] = last

    def _flush_unrecorded(self, *, force: bool = False) -> None:
        """Write what was counted only in memory, one line per event and action, once there is room."""
        if not self._unrecorded or (not force and self._guard.low()):
            return
        tallies, self._unrecorded = self._unrecorded, {}
        reason = (
            f"counted in memory only: the data folder had less than {self._guard.min_free // (1024 * 1024)} "
            "MB free, so these were not written one kind at a time (their clients and reasons are "
            "not known)"
        )
        who = RequestInfo(request_id="", client=UNRECORDED_CLIENT)
        for (event, action), (count, first, last) in tallies.items():
            fields = {"action": action, "reason": reason} if action else {"reason": reason}
            try:
                self._write(who, event, fields, count, first, last)
            except Unavailable:
                self._count_unrecorded(event, action, count, first, last)  # kept for the next try

    def _write(self, who: RequestInfo, event: str, fields: dict, count: int, first: str, last: str) -> None:
        self._write_line(who, event, {**fields, "count": count, "first": first, "last": last})

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
    """Write due windows until none is open; hold the Coalescer only while writing."""
    delay = 0.0
    while not wake.wait(delay):
        coalescer = ref()
        if coalescer is None:
            return
        try:
            delay = coalescer.flush_due()
        except Exception:  # a failed write (full disk) must not kill the thread silently
            log.exception("could not write the coalesced refusals")
            delay = WINDOW
        del coalescer
        if delay is None:
            return
        delay += 0.01  # just past the window's end


def _close_at_exit(ref: weakref.ref) -> None:
    """Write the counted lines when the process exits (a gunicorn worker's sys.exit runs this)."""
    coalescer = ref()
    if coalescer is not None:
        try:
            coalescer.close()
        except Exception:
            log.exception("could not write the coalesced refusals at exit")
