"""One client connection as the worker's main loop sees it: non-blocking reads and writes, TLS or not.

Each connection is in one state at a time, and only the main loop touches
its socket or the poller's watch on it (app/accepting.py opens and closes
connections, app/worker.py drives the states, app/serving.py runs a request
in a thread from bytes in memory):

- HANDSHAKE: a TLS handshake advancing without blocking;
- READING: a request arriving, fed to app/framing.py, under one absolute deadline;
- SERVING: a thread runs the request; the socket is not read meanwhile, so a
  client's pipelined requests wait in its own kernel buffer;
- WRITING: the reply going out as fast as the client reads it, under a deadline;
- IDLE: kept alive between requests, until the keep-alive timeout;
- CLOSING: FIN sent, waiting briefly for the client's (RFC 9112 9.6).

Every read and write is non-blocking; with TLS, OpenSSL may want the other
direction (``want``), and decrypted bytes it already holds are read at once,
since they never wake the poller.
"""

from __future__ import annotations

import selectors
import socket
import ssl

from .framing import Framing, Limits

__all__ = ["Conn", "HANDSHAKE", "READING", "SERVING", "WRITING", "IDLE", "CLOSING", "CLOSED"]

HANDSHAKE, READING, SERVING, WRITING, IDLE, CLOSING, CLOSED = (
    "handshake", "reading", "serving", "writing", "idle", "closing", "closed"
)  # fmt: skip
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
RECV_SIZE = 64 * 1024
SEND_SIZE = 256 * 1024
#: What a closing connection may still send, and for how long (gunicorn's close_graceful figures).
LINGER_BYTES = 64 * 1024
LINGER_SECONDS = 2.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Conn:
    """A client connection, its state, its deadline and the bytes it has in flight."""

    def __init__(self, sock: socket.socket, client, server, *, limits: Limits, now: float, poller):
        self.sock = sock
        self.poller = poller  # the main loop's selector
        self.client = client
        self.server = server
        self.address = client[0] if isinstance(client, tuple) and client else "unix"
        self.limits = limits
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.state = HANDSHAKE if self.tls else READING
        self.framing = Framing(limits)
        self.born = now
        self.began = now  # when the request being read began: its first byte, or the accept
        self.deadline = now
        self.served = 0
        self.continue_sent = False
        self.rest = b""  # bytes read past the request in service: the next, pipelined, request
        self.out = memoryview(b"")
        self.close_after = False
        self.lingered = 0
        self.watching = 0  # the events the poller watches for this socket now
        self.want = READ  # what the next read or write waits for (TLS may want the other way)

    def fileno(self) -> int:
        return self.sock.fileno()

    def watch(self, events: int) -> None:
        """Make the poller watch ``events`` (0: nothing) on this socket."""
        if events == self.watching:
            return
        if not self.watching:
            self.poller.register(self.sock, events, self)
        elif not events:
            self.poller.unregister(self.sock)
        else:
            self.poller.modify(self.sock, events, self)
        self.watching = events

    def new_request(self, data: bytes, now: float, seconds: float) -> None:
        """Start framing the next request, whose first bytes (maybe none) are ``data``, due in ``seconds``."""
        self.state, self.began, self.deadline = READING, now, now + seconds
        self.framing = Framing(self.limits)
        self.continue_sent = False
        if data:
            self.framing.feed(data)

    def handshake(self) -> bool | None:
        """Advance the TLS handshake: True once done, False to wait (``want``), None if it failed."""
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.want = READ
            return False
        except ssl.SSLWantWriteError:
            self.want = WRITE
            return False
        except (OSError, ValueError):
            return None  # not TLS, a bad version, a reset: nothing to answer
        self.state, self.want = READING, READ
        return True

    def recv(self) -> bytes | None:
        """Read what has arrived: bytes, b"" at the end of the stream, or None to wait (``want``)."""
        try:
            data = self.sock.recv(RECV_SIZE)
            # A TLS record may hold more than one recv's worth: take what is decrypted.
            while self.tls and data and self.sock.pending() and len(data) < self.limits.head + RECV_SIZE:
                data += self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            self.want = READ
            return None
        except ssl.SSLWantWriteError:
            self.want = WRITE
            return None
        except OSError:
            return b""
        self.want = READ
        return data

    def pending(self) -> bool:
        """Tell whether OpenSSL holds decrypted bytes that the poller cannot see."""
        return self.tls and self.sock.pending() > 0

    def send_some(self) -> bool | None:
        """Send what the client will take now: True once all is sent, False to wait, None if it failed."""
        while self.out:
            try:
                sent = self.sock.send(self.out[:SEND_SIZE])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                self.want = WRITE
                return False
            except ssl.SSLWantReadError:
                self.want = READ
                return False
            except OSError:
                return None
            self.out = self.out[sent:]
        return True

    def send_quietly(self, data: bytes) -> None:
        """Send a short message (100 Continue) if the socket takes it now; a client not reading loses it."""
        try:
            self.sock.send(data)
        except OSError:
            pass

    def shutdown(self) -> bool:
        """Send FIN (for TLS, close_notify first, if it goes at once); False if the socket is gone."""
        try:
            if self.tls:
                self.sock.setblocking(False)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        self.state = CLOSING
        return True

    def drain(self) -> bool:
        """Drop what a closing client still sends; True once it is done (FIN, error or past the cap)."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return True
        self.lingered += len(data)
        return not data or self.lingered > LINGER_BYTES

    def close(self) -> None:
        """Stop watching the socket and close it."""
        self.watch(0)
        self.state = CLOSED
        try:
            self.sock.close()
        except OSError:
            pass
