"""Letting connections in: the listeners, who is turned away, and the table of connections open.

app/worker.py's main loop serves every connection; this is the side of it
that decides which connections it holds, with app/slots.py's bookkeeping:

- The listeners are watched only while a new connection fits: at most the
  connection limit, sized at start from the descriptor limit
  (``slots.size_connections``). When every slot is taken, the kept-alive
  connection idle the longest is closed to make room;
  with none idle, accepting stops until one closes.
- At most ``ACCEPT_BATCH`` connections are accepted per wake-up, so that a
  flood of connects cannot starve the rest; ``EMFILE`` or ``ENFILE`` in
  ``accept`` pauses accepting for ``ACCEPT_PAUSE`` seconds.
- A connection from an address that already holds its cap gets a 503 (logged
  and counted, app/answering.py) and is closed; the others get a small kernel
  send buffer, with native TLS a socket whose handshake the main loop
  advances without blocking, and one deadline for the handshake and the
  first request.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time

from .answering import ADDRESS_CAP, Answers
from .connection import CLOSED, IDLE, READ, Conn
from .framing import Limits
from .slots import AddressCounts

__all__ = ["Acceptor"]

#: How long accepting pauses when the process or the system is out of descriptors.
ACCEPT_PAUSE = 0.5
#: Connections accepted per wake-up, so that a flood of connects cannot starve the rest.
ACCEPT_BATCH = 64
#: The kernel's send buffer per connection (it doubles it): about one reply of
#: openapi.json, so that a client that pipelines requests and reads nothing gets
#: one reply made for it, not as many as an auto-tuned buffer of megabytes holds.
SEND_BUFFER = 32 * 1024

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Acceptor:
    """Accept connections while they fit, an address's cap at most, and keep the table of those open."""

    def __init__(
        self,
        listeners,
        poller,
        *,
        limits: Limits,
        connection_limit: int,
        per_address: int,
        deadline: float,
        answers: Answers | None = None,
        tls=None,
        suppress_ragged_eofs: bool = True,
        log,
    ):
        self.listeners = listeners
        self.poller = poller
        self.limits = limits  # what each connection's requests must keep
        self.connection_limit = connection_limit
        self.per_address = AddressCounts(per_address)
        self.deadline = deadline  # seconds for the TLS handshake, if any, and the first request
        # Logs and counts the 503 (app/answering.py): the worker's, with the app's counts.
        self.answers = answers if answers is not None else Answers(limits.request_line)
        self.tls = tls  # an ssl.SSLContext for native TLS, or None
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self.log = log
        self.conns: dict[Conn, None] = {}  # every open connection, in the order it was accepted
        self.accepting = False
        self.paused_until = 0.0

    def resume(self, now: float) -> None:
        """Watch the listeners again once a pause is over and a new connection fits."""
        if not self.accepting and now >= self.paused_until and self._room():
            self._set_accepting(True)

    def stop(self) -> None:
        """Stop watching the listeners (a stopping worker)."""
        self._set_accepting(False)

    def close(self, conn: Conn) -> None:
        """Close ``conn`` and give its slot, and its address's, back."""
        if conn.state == CLOSED:
            return
        self.conns.pop(conn, None)
        self.per_address.remove(conn.address)
        conn.close()

    def _room(self) -> bool:
        """Tell whether a new connection fits, closing the kept-alive one idle the longest if it must."""
        if len(self.conns) < self.connection_limit:
            return True
        # An idle connection's deadline is when it went idle plus the keep-alive timeout.
        idle = min((c for c in self.conns if c.state == IDLE), key=lambda c: c.deadline, default=None)
        if idle is None:
            return False
        self.close(idle)
        return True

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.listeners:
            if enabled:
                self.poller.register(listener, READ, self._accept)
            else:
                self.poller.unregister(listener)
        self.accepting = enabled

    def _accept(self, listener) -> None:
        """Accept a batch of connections; refuse one past its address's cap; pause when out of descriptors."""
        for _ in range(ACCEPT_BATCH):
            if not self._room():
                self._set_accepting(False)
                return
            try:
                sock, client = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    raise
                self.log.warning(
                    "out of descriptors (%s) with %d connections open: not accepting for %g s",
                    errno.errorcode.get(exc.errno, exc.errno), len(self.conns), ACCEPT_PAUSE,
                )  # fmt: skip
                self._set_accepting(False)
                self.paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            self._admit(sock, client, listener.getsockname())

    def _admit(self, sock, client, server) -> None:
        """Turn away an address past its cap (503); otherwise wrap for TLS if need be and start reading."""
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # not for a Unix socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        address = client[0] if isinstance(client, tuple) and client else "unix"
        if self.per_address.full(address):
            sentence = f"this address already holds {self.per_address.cap} connections"
            reply = self.answers.answer(503, sentence, client=address, reason=ADDRESS_CAP)
            with contextlib.suppress(OSError):
                sock.send(reply)
            sock.close()
            return
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(
                    sock,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.suppress_ragged_eofs,
                )
            except OSError:
                sock.close()
                return
        now = time.monotonic()
        conn = Conn(sock, client, server, limits=self.limits, now=now, poller=self.poller)
        conn.deadline = now + self.deadline
        self.conns[conn] = None
        self.per_address.add(address)
        conn.watch(READ)
