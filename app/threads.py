"""The worker's threads: whole requests wait for one an address at a time, in turn, and come back served.

app/worker.py's main loop reads a request whole and puts it here. A free
thread takes the next request of the address whose turn it is (app/slots.py's
``FairQueue``), so a burst from one address does not delay another's request
behind it, and runs it from memory (app/serving.py). A served request goes
back to the main loop through a queue and a wake-up pipe that the loop's
poller watches: a thread never touches a socket.
"""

from __future__ import annotations

import contextlib
import os
import queue
from concurrent.futures import ThreadPoolExecutor

from .connection import READ, SERVING
from .slots import FairQueue

__all__ = ["Runner"]


class Runner:
    """Run whole requests in a few threads, an address at a time in turn; hand each back to the main loop."""

    def __init__(self, poller, threads: int, *, serve, served):
        self.threads = threads
        self.serve = serve  # serve(conn, data, last=...) -> (reply, keep), run in a thread
        self.served = served  # served(conn, future), called in the main loop while conn is still SERVING
        self.waiting = FairQueue()  # whole requests waiting for a thread
        self.busy = 0  # threads running a request
        self.finished: queue.SimpleQueue = queue.SimpleQueue()
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        poller.register(self._wake[0], READ, self._on_finished)

    def put(self, conn, data: bytes, *, last: bool) -> None:
        """Queue a whole request under its address, and start it if a thread is free."""
        self.waiting.put(conn.address, (conn, data, last))
        self._dispatch()

    def close(self) -> None:
        """Let the threads finish on their own (a stopping worker), and close the wake-up pipe."""
        self.pool.shutdown(wait=False)
        for fd in self._wake:
            os.close(fd)

    def _dispatch(self) -> None:
        """Give free threads to waiting requests, one address at a time in turn."""
        while self.busy < self.threads and self.waiting:
            conn, data, last = self.waiting.get()
            if conn.state != SERVING:
                continue  # closed while it waited (a stopping worker)
            self.busy += 1
            future = self.pool.submit(self.serve, conn, data, last=last)
            future.add_done_callback(lambda done, conn=conn: self._finish(conn, done))

    def _finish(self, conn, future) -> None:
        """Hand a served request back to the main loop (called in the thread that ran it)."""
        self.finished.put((conn, future))
        with contextlib.suppress(OSError):
            os.write(self._wake[1], b"\0")

    def _on_finished(self, _fd) -> None:
        """Pass each served request to ``served``, then give the freed threads to waiting requests."""
        with contextlib.suppress(OSError):
            os.read(self._wake[0], 4096)
        while True:
            try:
                conn, future = self.finished.get_nowait()
            except queue.Empty:
                self._dispatch()
                return
            self.busy -= 1
            if conn.state != SERVING:
                continue  # closed meanwhile (a forced stop)
            self.served(conn, future)
