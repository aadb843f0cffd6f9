"""Sharing the worker's connections, threads and descriptors fairly among client addresses.

app/worker.py keeps every connection in its main loop; these are the small
bookkeeping pieces it uses so that no one client can take what the others
need: a count of open connections per address (for the per-address cap), a
queue that gives free threads to waiting requests one address at a time in
turn (so a burst from one address does not delay another's request behind
it), and the sizing of the connection limit from the descriptor limit.
"""

from __future__ import annotations

import contextlib
import resource
from collections import deque

__all__ = ["AddressCounts", "FairQueue", "size_connections"]

#: Descriptors kept for everything but connections: listeners, the poller, logs, the
#: data folder, and gpg's pipes (a few per call, one call per thread at most).
DESCRIPTORS_RESERVED = 64
DESCRIPTORS_PER_THREAD = 8


def size_connections(worker_connections: int, threads: int) -> tuple[int, int]:
    """Return the descriptor limit (raised towards the hard one if short) and the connections it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = DESCRIPTORS_RESERVED + DESCRIPTORS_PER_THREAD * threads
    want = worker_connections + reserve
    if soft != resource.RLIM_INFINITY and soft < want:
        raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return soft, worker_connections
    return soft, max(min(worker_connections, soft - reserve), 1)


class AddressCounts:
    """Open connections per client address."""

    def __init__(self, cap: int):
        self.cap = cap
        self.counts: dict[str, int] = {}

    def full(self, address: str) -> bool:
        """Tell whether ``address`` holds as many connections as it may."""
        return self.counts.get(address, 0) >= self.cap

    def add(self, address: str) -> None:
        self.counts[address] = self.counts.get(address, 0) + 1

    def remove(self, address: str) -> None:
        left = self.counts.get(address, 1) - 1
        if left > 0:
            self.counts[address] = left
        else:
            self.counts.pop(address, None)


class FairQueue:
    """Items waiting for a thread, taken one address at a time, in turn."""

    def __init__(self) -> None:
        self.queues: dict[str, deque] = {}  # insertion order is the turn order

    def __len__(self) -> int:
        return len(self.queues)

    def put(self, address: str, item) -> None:
        self.queues.setdefault(address, deque()).append(item)

    def get(self):
        """Return the next item of the address whose turn it is; that address goes last."""
        address = next(iter(self.queues))
        waiting = self.queues.pop(address)
        item = waiting.popleft()
        if waiting:
            self.queues[address] = waiting
        return item
