"""The trail as the service writes it: each line names who caused it, passed by the caller, never looked up.

``Trail`` wraps the store (``app.records``) explicitly: the service and its
ceremonies write through it, naming the request (``who``) each time. It
writes every event of a ceremony at once, after the lines it holds back (so
the trail's order stays true), and hands what anyone at the port can make
the service write to ``app.refusals.Coalescer``, which counts it and writes
a line per kind and second (below the data folder's floor, none). The store
knows nothing of either: no hook, no cycle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .audit import RequestInfo
from .folder import LowDiskGuard
from .refusals import MAX_REASONS, Coalescer

if TYPE_CHECKING:
    from .records import Store
    from .state import ShareRecord, State

__all__ = ["Trail", "Writer"]


class Trail:
    """The store as the service writes it: each line names who caused it; what strangers cause is coalesced.

    Every method but ``close`` runs under the service's lock.
    """

    def __init__(self, store: Store, lock: threading.Lock, guard: LowDiskGuard, **timing):
        self._store = store
        self.guard = guard
        self._held = Coalescer(self._write_held, lock, guard, **timing)

    # -- what the store shows -------------------------------------------------------

    @property
    def path(self):
        """Return the data folder's path."""
        return self._store.path

    @property
    def state(self) -> State | None:
        """Return the current state, or None before initialization."""
        return self._store.state

    @property
    def head(self):
        """Return the trail's last line."""
        return self._store.head

    @property
    def folder(self):
        """Return the open, locked data folder."""
        return self._store.folder

    def watch(self, callback) -> None:
        """Call ``callback(seq, line)`` after each line is committed (see ``Store.watch``)."""
        self._store.watch(callback)

    def by(self, who: RequestInfo) -> Writer:
        """Return this trail as request ``who`` writes it."""
        return Writer(self, who)

    # -- a ceremony's own events: at once, after what is held ----------------------------

    def record(self, who: RequestInfo, event: str, /, **fields) -> None:
        """Append one event, durably, after the lines held back."""
        self._held.flush()
        self._store.record(event, who=who, **fields)

    def initialize(self, who: RequestInfo, state: State, event: str, /, **fields) -> None:
        """Record a freshly initialized service's state, with its event."""
        self._held.flush()
        self._store.initialize(state, event, who=who, **fields)

    def add_share(self, who: RequestInfo, record: ShareRecord, event: str, /, **fields) -> None:
        """Record one newly issued x, with its event."""
        self._held.flush()
        self._store.add_share(record, event, who=who, **fields)

    def mark_verified(self, who: RequestInfo, index: int, when: str, event: str, /, **fields) -> ShareRecord:
        """Record that the holder of ``index`` proved custody at ``when``."""
        self._held.flush()
        return self._store.mark_verified(index, when, event, who=who, **fields)

    # -- what strangers can cause: coalesced, held back below the floor ---------------------

    def refuse(self, who: RequestInfo, action: str, reason: str) -> None:
        """Record a refused write, coalesced with others of its kind."""
        fields = {"action": action, "reason": reason}
        overflow = f"refused for more than {MAX_REASONS} reasons within a second"
        self._held.add(who, "refused", f"{action}\0{reason}", fields, overflow)

    def failed_custody(self, who: RequestInfo, index: int) -> None:
        """Record a custody check that failed at ``index`` (the first of a window's), coalesced."""
        # One kind per client whatever the x: a client trying every x gets a line a second.
        self._held.add(who, "share_verify_failed", "", {"index": index}, "")

    def close(self) -> None:
        """Write every line held back, then release the data folder (takes the service's lock)."""
        try:
            self._held.close()
        finally:
            self._store.close()

    def _write_held(self, who: RequestInfo, event: str, fields: dict) -> None:
        self._store.record(event, who=who, **fields)


@dataclass
class Writer:
    """The trail as one request writes it: every line names that request (passed, never looked up).

    A refused request gets one line: the ceremony's own failure event
    (``failed``, say ``reconstruction_failed``), or else a ``refused`` line
    that the service writes (``refuse``), never both.
    """

    trail: Trail
    who: RequestInfo
    #: True once this request's failure is in the trail.
    settled: bool = False

    def record(self, event: str, /, **fields) -> None:
        """Append one event of this request."""
        self.trail.record(self.who, event, **fields)

    def failed(self, event: str, /, **fields) -> None:
        """Append the event that says how this request failed (it then needs no ``refused`` line)."""
        self.trail.record(self.who, event, **fields)
        self.settled = True

    def initialize(self, state: State, event: str, /, **fields) -> None:
        """Record a freshly initialized service's state."""
        self.trail.initialize(self.who, state, event, **fields)

    def add_share(self, record: ShareRecord, event: str, /, **fields) -> None:
        """Record one newly issued x."""
        self.trail.add_share(self.who, record, event, **fields)

    def mark_verified(self, index: int, when: str, event: str, /, **fields) -> ShareRecord:
        """Record that the holder of ``index`` proved custody."""
        return self.trail.mark_verified(self.who, index, when, event, **fields)

    def refuse(self, reason: str) -> None:
        """Record this request's refusal, coalesced, unless its failure is recorded already."""
        if not self.settled:
            self.trail.refuse(self.who, self.who.action or "unknown", reason)
            self.settled = True

    def failed_custody(self, index: int) -> None:
        """Record this request's failed custody check, coalesced."""
        self.trail.failed_custody(self.who, index)
