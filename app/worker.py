"""A gunicorn worker that gives a thread only to a request that has fully arrived.

gunicorn's ``gthread`` worker hands every accepted connection to its thread
pool at once, and the thread then parses the request with blocking reads: eight
clients that send one byte and stop hold all eight threads for as long as they
like, and idle sockets queue up for five seconds each. This worker reads every
request in the main loop instead, without blocking, until its head and its body
are whole, and only then hands the connection, with the bytes read, to a
thread. The app stays synchronous; a thread only ever runs a request that is
already in memory.

- A request still arriving ``REQUEST_DEADLINE`` seconds after its first chance
  to arrive is answered 408 (or, if nothing came, closed).
- A head longer than ``HEAD_LIMIT`` is answered 431 and closed.
- A body declared or sent past the app's limit goes to a thread at once, so the
  app answers 413; the connection then closes.
- Closing after a reply lingers in the main loop, not in a thread or in a
  blocking drain.

With TLS (gunicorn's ``certfile``/``keyfile``), the main loop also makes the
handshake, without blocking (``do_handshake_on_connect=False``, waiting in the
poller on whichever direction OpenSSL wants), and reads the request through
the TLS socket: a client that stalls mid-handshake holds no thread either.
HTTP/2 (cleartext, or offered by ALPN) and the PROXY protocol keep gunicorn's
own path (``buffering`` is off): their bytes cannot be framed here.

gunicorn loads this module in its master: it imports nothing from Flask.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import ssl
import time
from functools import partial

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from . import config

__all__ = ["BufferingWorker", "RequestArrival"]


#: The settings gunicorn.conf.py has already checked (a bad one refused the start there).
_SETTINGS = config.from_environ()
#: Seconds a request may take to arrive whole, from its connection (or, on a
#: kept-alive connection, from its first byte).
REQUEST_DEADLINE = _SETTINGS.request_deadline
#: The longest request head (request line and headers): nginx's default
#: ``large_client_header_buffers`` (4 x 8k), far above what hvac, curl or the CLI send.
HEAD_LIMIT = 32 * 1024
#: The app's body limit (the same variable the app reads).
BODY_LIMIT = _SETTINGS.max_content_length
#: Room for chunk-size lines and trailers around a chunked body.
CHUNK_MARGIN = 16 * 1024
#: How long a closing connection may take to send its FIN, and how much it may
#: still send meanwhile (gunicorn's own close_graceful figures).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
RECV_SIZE = 64 * 1024

_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _canned(status: str, sentence: str) -> bytes:
    """Build a whole JSON error reply that closes the connection."""
    body = b'{"errors": ["' + sentence.encode() + b'"]}\n'
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


TIMEOUT_REPLY = _canned(
    "408 Request Timeout",
    f"The request did not arrive whole within {REQUEST_DEADLINE:g} seconds; send it again, all at once.",
)
HEAD_TOO_LARGE_REPLY = _canned(
    "431 Request Header Fields Too Large",
    f"The request line and headers must fit in {HEAD_LIMIT} bytes.",
)


class RequestArrival:
    """Tell, from the bytes of one HTTP/1.x request received so far, whether it is whole."""

    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    #: Past a limit, or framed in a way gunicorn refuses: let a thread answer, then close.
    HAND_OFF = "hand off"
    HEAD_TOO_LARGE = "head too large"

    def __init__(self, data: bytes = b"", *, body_limit: int = BODY_LIMIT):
        self.buf = bytearray(data)
        self.body_limit = body_limit
        self.wants_continue = False
        self._scan = 0  # where the search for the end of the head resumes
        self._head_end: int | None = None
        self._length: int | None = None  # bytes the whole request takes, when known
        self._chunk_at: int | None = None  # where the next chunk-size line starts
        self._trailers = False
        self._verdict: str | None = None

    def feed(self, data: bytes) -> str:
        """Add received bytes and return the verdict."""
        self.buf += data
        return self.verdict()

    def verdict(self) -> str:
        """Return whether the request is whole, incomplete, or to be handed off or refused."""
        if self._verdict is not None:
            return self._verdict
        if self._head_end is None:
            end = self.buf.find(b"\r\n\r\n", max(self._scan - 3, 0))
            if end < 0:
                self._scan = len(self.buf)
                return self.HEAD_TOO_LARGE if len(self.buf) > HEAD_LIMIT else self.INCOMPLETE
            if end + 4 > HEAD_LIMIT:
                return self.HEAD_TOO_LARGE
            self._head_end = end + 4
            framing = self._frame(bytes(self.buf[:end]))
            if framing is not None:
                self._verdict = framing
                return framing
        if self._chunk_at is not None:
            return self._scan_chunks()
        return self.COMPLETE if len(self.buf) >= self._length else self.INCOMPLETE

    def _frame(self, head: bytes) -> str | None:
        """Read how the body is framed; return a final verdict, or None to wait for the body."""
        lines = head.split(b"\r\n")
        first = 1 if not lines[0] and len(lines) > 1 else 0  # one empty line may come first
        version = lines[first].rpartition(b" ")[2]
        lengths, codings = [], []
        for line in lines[first + 1 :]:
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.extend(c.strip().lower() for c in value.split(b","))
            elif name == b"expect":
                self.wants_continue = value.lower() == b"100-continue" and version.endswith(b"HTTP/1.1")
        if codings:
            if lengths or codings[-1] != b"chunked":
                return self.HAND_OFF  # gunicorn answers 400 or 501 without reading the body
            self._chunk_at = self._head_end
            return None
        if lengths:
            value = lengths[0]
            if any(v != value for v in lengths) or not value.isdigit() or len(value) > 18:
                return self.HAND_OFF  # gunicorn answers 400
            if int(value) > self.body_limit:
                return self.HAND_OFF  # the app answers 413 without reading the body
            self._length = self._head_end + int(value)
        else:
            self._length = self._head_end
        return None

    def _scan_chunks(self) -> str:
        """Walk the chunks received so far; whole once the last chunk's trailers end."""
        buf, at = self.buf, self._chunk_at
        while True:
            end = buf.find(b"\r\n", at)
            if end < 0:
                break
            if self._trailers:
                if end == at:
                    return self.COMPLETE
                at = end + 2
                continue
            size = bytes(buf[at:end]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size):
                return self.HAND_OFF  # gunicorn answers 400
            size = int(size, 16)
            if size == 0:
                self._trailers = True
                at = end + 2
                continue
            if len(buf) < end + 2 + size + 2:
                break
            at = end + 2 + size + 2
        self._chunk_at = at
        if len(buf) > self._head_end + self.body_limit + CHUNK_MARGIN:
            return self.HAND_OFF  # enough of it to pass the app's limit: the app answers 413
        return self.INCOMPLETE


class BufferedConn(TConn):
    """A connection whose request (and TLS handshake) is read in the main loop first."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handshaken = not self.cfg.is_ssl
        self.waiting_for = selectors.EVENT_READ
        self.arrival: RequestArrival | None = None
        self.deadline = 0.0
        self.pending = b""  # the whole request, for the parser
        self.close_after = False
        self.continue_sent = False
        self.lingered = 0

    def init(self):
        """Set up the parser, give it the bytes read so far, and bound any further read."""
        if self.cfg.is_ssl and not self.initialized:
            # The socket is wrapped and its handshake done: gthread would wrap it again.
            self.initialized = True
            self.sock.setblocking(True)
            self.parser = http.get_parser(self.cfg, self.sock, self.client)
        super().init()
        if self.pending:
            self.parser.unreader.unread(self.pending)
            self.pending = b""
        # The request is already here; a thread that still has to read (a body past the
        # limit, framing gunicorn reads differently) or to write waits this long at most.
        self.sock.settimeout(REQUEST_DEADLINE)


class BufferingWorker(ThreadWorker):
    """gthread, but a thread is given a connection only once its request has fully arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        h2_over_tls = cfg.is_ssl and bool(gsock._get_alpn_protocols(cfg))  # noqa: SLF001 (gunicorn's own test)
        self.buffering = not h2_over_tls and cfg.http2_cleartext == "off" and cfg.proxy_protocol == "off"
        self.tls = gsock.ssl_context(cfg) if cfg.is_ssl and self.buffering else None
        # Insertion order is deadline order: every deadline is "now" plus a constant.
        self.arriving: dict[BufferedConn, None] = {}
        self.closing: dict[BufferedConn, None] = {}

    def init_process(self):
        """Say which path connections take, then start as gthread does."""
        if not self.buffering:
            self.log.warning(
                "HTTP/2 or the PROXY protocol is on: requests are read by gthread's "
                "threads, and slow clients can hold them; put a reverse proxy in front"
            )
        super().init_process()

    # Arrival, in the main loop

    def accept(self, listener):
        """Accept a connection and start reading its request without a thread."""
        if not self.buffering:
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        self.nr_conns += 1
        server = listener.getsockname()
        if self.tls is not None:
            try:
                client_sock = self.tls.wrap_socket(
                    client_sock,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except OSError:
                self.nr_conns -= 1
                client_sock.close()
                return None
        conn = BufferedConn(self.cfg, client_sock, client_addr, server)
        self._start_arrival(conn, b"")
        return None

    def _start_arrival(self, conn: BufferedConn, data: bytes) -> None:
        """Wait in the poller for the next request on ``conn``; ``data`` is its start."""
        conn.sock.setblocking(False)
        conn.arrival = RequestArrival(data)
        conn.deadline = time.monotonic() + REQUEST_DEADLINE
        conn.close_after = conn.continue_sent = False
        conn.waiting_for = selectors.EVENT_READ
        self.arriving[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_arriving_readable, conn))
        if data:
            self._advance(conn)
        elif conn.handshaken and isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
            # Decrypted bytes OpenSSL already holds never wake the poller: read them now.
            self.on_arriving_readable(conn, conn.sock)

    def on_arriving_readable(self, conn: BufferedConn, _client) -> None:
        """Read what has arrived (after the TLS handshake), and hand the request on once it is whole."""
        if not conn.handshaken and not self._handshake(conn):
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
            # A TLS record may hold more than one recv's worth: drain what is decrypted.
            while isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() and len(data) <= HEAD_LIMIT:
                data += conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except ssl.SSLWantWriteError:
            self._wait_for(conn, selectors.EVENT_WRITE)
            return
        except OSError:
            data = b""
        if not data:
            self._end_arrival(conn)
            self._close(conn)
            return
        self._wait_for(conn, selectors.EVENT_READ)
        conn.arrival.feed(data)
        self._advance(conn)

    def _handshake(self, conn: BufferedConn) -> bool:
        """Advance the TLS handshake without blocking; True once it is done."""
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait_for(conn, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._wait_for(conn, selectors.EVENT_WRITE)
            return False
        except OSError:
            # A failed handshake (not TLS, a bad version, a reset) has nothing to answer.
            self._end_arrival(conn)
            self._close(conn)
            return False
        conn.handshaken = True
        self._wait_for(conn, selectors.EVENT_READ)
        return True

    def _wait_for(self, conn: BufferedConn, event: int) -> None:
        """Wait in the poller for ``event`` on an arriving connection (TLS may want to write)."""
        if conn.waiting_for != event:
            conn.waiting_for = event
            self.poller.modify(conn.sock, event, partial(self.on_arriving_readable, conn))

    def _advance(self, conn: BufferedConn) -> None:
        """Act on the verdict of the bytes received so far."""
        verdict = conn.arrival.verdict()
        if verdict == RequestArrival.INCOMPLETE:
            if conn.arrival.wants_continue and not conn.continue_sent:
                # The client waits for this before it sends the body (curl does, past 1 KiB).
                conn.continue_sent = True
                self._send_quietly(conn, _CONTINUE)
            return
        self._end_arrival(conn)
        if verdict == RequestArrival.HEAD_TOO_LARGE:
            self._send_quietly(conn, HEAD_TOO_LARGE_REPLY)
            self._linger(conn)
            return
        conn.close_after = verdict == RequestArrival.HAND_OFF
        conn.pending = bytes(conn.arrival.buf)
        conn.arrival = None
        conn.data_ready = True  # gthread's thread must not wait for data: it is here
        self.enqueue_req(conn)

    def _end_arrival(self, conn: BufferedConn) -> None:
        """Take ``conn`` out of the poller and the arriving list."""
        self.arriving.pop(conn, None)
        self._unregister(conn)

    def murder_pending(self):
        """Time out requests still arriving, and connections that take too long to close."""
        super().murder_pending()
        now = time.monotonic()
        while self.arriving:
            conn = next(iter(self.arriving))
            if conn.deadline > now and (self.alive or conn.arrival.buf):
                break  # a stopping worker does not wait for a request not even begun
            self._end_arrival(conn)
            if conn.arrival.buf:
                self._send_quietly(conn, TIMEOUT_REPLY)
                self._linger(conn)
            else:
                self._close(conn)
        while self.closing:
            conn = next(iter(self.closing))
            if conn.deadline > now:
                break
            self._close(conn)

    def murder_keepalived(self, force=False):
        """Close expired kept-alive connections; when forced, every connection still open."""
        super().murder_keepalived(force)
        if force:
            for conn in list(self.arriving):
                self._end_arrival(conn)
                self._close(conn)
            for conn in list(self.closing):
                self._close(conn)

    # After a thread has served the request

    def handle_request(self, req, conn):
        """Serve one request; close afterwards if it was handed on unfinished."""
        if getattr(conn, "continue_sent", False):
            req._expected_100_continue = False  # noqa: SLF001 (sent already, by the main loop)
        if getattr(conn, "close_after", False):
            req.force_close()  # its rest was never read: where a next request starts is unknown
        return super().handle_request(req, conn)

    def finish_request(self, conn, fs):
        """Put a served connection back in the poller: kept alive, with its next request, or closing."""
        if not isinstance(conn, BufferedConn):
            return super().finish_request(conn, fs)
        try:
            keep = fs.result() if not fs.cancelled() else False
            conn.sock.setblocking(False)
            if not keep:
                self._linger(conn)
                return None
            ahead = conn.parser.unreader.take_buffered()
            if ahead:
                # A pipelined next request, read with this one: frame it like any other.
                self._start_arrival(conn, ahead)
                return None
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
            )
        except Exception:  # noqa: BLE001 (as gthread: a broken connection is closed, never fatal)
            self.arriving.pop(conn, None)
            self._close(conn)
        return None

    def on_client_socket_readable(self, conn, client):
        """Start reading the next request on a kept-alive connection."""
        if not isinstance(conn, BufferedConn):
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_arrival(conn, b"")
        self.on_arriving_readable(conn, client)
        return None

    # Closing, in the main loop

    def _linger(self, conn: BufferedConn) -> None:
        """Send FIN, then wait in the poller (not a thread) for the client's, as RFC 9112 9.6 asks."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.deadline = time.monotonic() + LINGER_SECONDS
        conn.lingered = 0
        self.closing[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_closing_readable, conn))

    def on_closing_readable(self, conn: BufferedConn, _client) -> None:
        """Drop what a closing client still sends; close on its FIN or past the cap."""
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        conn.lingered += len(data)
        if not data or conn.lingered > LINGER_BYTES:
            self._close(conn)

    def _close(self, conn: BufferedConn) -> None:
        """Close ``conn`` at once and stop counting it."""
        self.closing.pop(conn, None)
        self._unregister(conn)
        self.nr_conns -= 1
        conn.close()

    def _unregister(self, conn: BufferedConn) -> None:
        """Take ``conn`` out of the poller, if it is there."""
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    @staticmethod
    def _send_quietly(conn: BufferedConn, data: bytes) -> None:
        """Send a short reply without blocking; a client that does not read it loses it."""
        try:
            conn.sock.send(data)
        except OSError:
            pass
