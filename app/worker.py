"""A gunicorn worker whose threads never wait on a socket, and whose slots no one client can take.

gunicorn's ``gthread`` worker gives each connection to a thread that parses
the request with blocking reads: a handful of slow clients hold every thread.
This worker (a ``gunicorn.workers.base.Worker``, gunicorn's documented base
for custom workers) keeps every socket in its main loop instead. This module
holds the worker's settings and its main loop, which walks each connection
from the first byte of a request to the last byte of its reply; the pieces
it drives live beside it:

- The main loop reads each request without blocking until it is whole, head
  and body (framed by app/framing.py, which agrees with gunicorn's parser and
  refuses at once, with gunicorn's status, what gunicorn refuses). A request
  must arrive whole within ``REQUEST_DEADLINE`` seconds of its first byte (or
  of the connection), one absolute deadline, or it is answered 408.
- Only then does a thread run it (app/threads.py, app/serving.py), from
  those bytes in memory, writing the reply to memory; the main loop sends the
  reply as fast as the client reads it, within the same deadline. A thread
  never reads or writes a socket, so no client, slow or stalled, can hold one.
- Slots are shared fairly: at most ``CONNECTIONS_PER_ADDRESS`` open connections
  per client address (a setting); a kept-alive connection serves at most
  ``REQUESTS_PER_CONNECTION`` requests and lives at most
  ``CONNECTION_LIFETIME`` seconds; pipelined requests are read one at a time,
  the next only once the previous reply is written, so one connection holds
  at most one request and one reply in memory; and when every slot is taken
  the kept-alive connection idle the longest is closed to make room
  (app/accepting.py).
  Requests waiting for a thread get one an address at a time, in turn
  (app/threads.py).
- Every reply it writes itself, without the app (the 408, the framing's
  refusals, the 503 past an address's cap, gunicorn's own error replies),
  writes one access line in the app's shape and counts once in the app's
  ``generate_share_requests_total`` (app/answering.py, app/counts.py).
- The number of connections is sized from the descriptor limit at start
  (app/slots.py: raising the soft limit towards the hard one if it is lower
  than needed), leaving room for the data folder, logs and gpg's pipes;
  ``EMFILE`` or ``ENFILE`` in ``accept`` pauses accepting (app/accepting.py).
- With native TLS the handshake, the reads and the writes run in the same
  loop, without blocking: every guarantee above holds for HTTPS too. ALPN
  offers only http/1.1; this worker speaks HTTP/1.x only.

gunicorn loads this module in its master: it imports nothing from Flask.
"""

from __future__ import annotations

import functools
import os
import selectors
import time

from gunicorn import sock as gsock
from gunicorn.workers.base import Worker

from . import config, counts
from .accepting import Acceptor
from .answering import DEADLINE, FRAMING, Answers
from .connection import (
    CLOSED,
    CLOSING,
    CONTINUE,
    HANDSHAKE,
    IDLE,
    LINGER_SECONDS,
    READ,
    READING,
    SERVING,
    WRITING,
    Conn,
)
from .framing import REFUSED, WAIT, Limits
from .serving import serve
from .slots import size_connections
from .threads import Runner

__all__ = ["BufferingWorker", "GUNICORN_NAMES"]


#: The settings gunicorn.conf.py has already checked (a bad one refused the start there).
_SETTINGS = config.from_environ()
#: Seconds a request may take to arrive whole, and its reply to be read.
REQUEST_DEADLINE = _SETTINGS.request_deadline
#: Open connections one client address may hold. A ceremony's holders use a few
#: each; behind a reverse proxy every client is the proxy's address (see SECURITY.md).
CONNECTIONS_PER_ADDRESS = _SETTINGS.connections_per_address
#: The app's body limit.
BODY_LIMIT = _SETTINGS.max_content_length
REQUESTS_PER_CONNECTION = 100
CONNECTION_LIFETIME = 60.0
#: How often deadlines are checked.
SWEEP_SECONDS = 0.1
#: How long a stopping worker keeps an idle kept-alive connection open for a request in flight.
STOP_LINGER = 2.0

#: What this worker uses of gunicorn beyond the documented Worker API: none is
#: private (no leading underscore), but none is documented either, so
#: tests/test_worker_names.py resolves each one on the installed gunicorn.
GUNICORN_NAMES = (
    "gunicorn.workers.base.Worker.handle_error",
    "gunicorn.http.RequestParser",
    "gunicorn.http.parser.Parser.finish_body",
    "gunicorn.http.unreader.Unreader.take_buffered",
    "gunicorn.http.errors.NoMoreData",
    "gunicorn.http.wsgi.create",
    "gunicorn.http.wsgi.Response.force_close",
    "gunicorn.http.wsgi.Response.should_close",
    "gunicorn.http.wsgi.Response.write_file",
    "gunicorn.sock.ssl_context",
)


def _limits(cfg) -> Limits:
    """Return the bounds a request must keep: gunicorn's, clamped as its parser does, and the body limit."""
    return Limits(
        request_line=cfg.limit_request_line if 0 < cfg.limit_request_line < 8190 else 8190,
        fields=cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768,
        field_size=cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190,
        header_map=cfg.header_map,
        body=BODY_LIMIT,
    )


class BufferingWorker(Worker):
    """Read and write every socket in the main loop; run each whole request in a thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.limits = _limits(cfg)
        # Sized here, in the master; gunicorn.conf.py's startup line reports all three.
        self.per_address_limit = CONNECTIONS_PER_ADDRESS
        self.descriptor_limit, self.connection_limit = size_connections(cfg.worker_connections, cfg.threads)
        self.next_sweep = 0.0
        self.poller = None
        self.acceptor: Acceptor | None = None  # the listeners and the open connections
        self.runner: Runner | None = None  # the threads
        # The replies this worker writes itself, logged and counted (app/answering.py).
        self.answers = Answers(self.limits.request_line)

    def init_process(self):
        """Set up the poller, the threads and TLS, then start as every gunicorn worker does."""
        self.poller = selectors.DefaultSelector()
        self.runner = Runner(
            self.poller, self.cfg.threads, serve=functools.partial(serve, self), served=self._served
        )
        tls = None
        if self.cfg.is_ssl:
            tls = gsock.ssl_context(self.cfg)
            tls.set_alpn_protocols(["http/1.1"])
        self.acceptor = Acceptor(
            self.sockets,
            self.poller,
            limits=self.limits,
            connection_limit=self.connection_limit,
            per_address=self.per_address_limit,
            deadline=REQUEST_DEADLINE,
            answers=self.answers,
            tls=tls,
            suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            log=self.log,
        )
        if self.cfg.proxy_protocol != "off":
            self.log.warning("this worker speaks HTTP/1.x only: the PROXY protocol setting is ignored")
        super().init_process()

    def run(self):
        """Serve until told to stop, then finish what is in flight within the graceful timeout."""
        # gunicorn has loaded the app by now: its own replies count on the app's counts.
        self.answers.counts = counts.of(self.wsgi)
        for listener in self.sockets:
            listener.setblocking(False)
        while self.alive:
            self._step()
            if os.getppid() != self.ppid:
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self.acceptor.stop()
        conns = self.acceptor.conns
        now = time.monotonic()
        for conn in list(conns):
            if conn.state == HANDSHAKE or (conn.state == READING and not conn.framing.buf):
                self.acceptor.close(conn)
            elif conn.state == IDLE:
                conn.deadline = min(conn.deadline, now + STOP_LINGER)
        grace = now + self.cfg.graceful_timeout
        while conns and time.monotonic() < grace:
            self._step()
        for conn in list(conns):
            self.acceptor.close(conn)
        self.poller.close()
        self.runner.close()

    def _step(self) -> None:
        """Wait for events once, act on them, and enforce the deadlines that passed."""
        self.notify()
        if self.alive:
            self.acceptor.resume(time.monotonic())
        try:
            events = self.poller.select(SWEEP_SECONDS)
        except InterruptedError:
            events = []
        for key, _mask in events:
            if isinstance(key.data, Conn):
                if key.data.state != CLOSED:
                    self._on_event(key.data)
            else:
                key.data(key.fileobj)  # a listener (app/accepting.py) or the threads' wake-up pipe
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + SWEEP_SECONDS
            self._sweep(now)

    # Arriving requests

    def _on_event(self, conn: Conn) -> None:
        """Advance ``conn`` by the state it is in, now that its socket is ready."""
        if conn.state == HANDSHAKE:
            done = conn.handshake()
            if done is None:
                self.acceptor.close(conn)
            elif done:
                self._read(conn)
            else:
                conn.watch(conn.want)
        elif conn.state in (READING, IDLE):
            self._read(conn)
        elif conn.state == WRITING:
            self._write(conn)
        elif conn.state == CLOSING and conn.drain():
            self.acceptor.close(conn)

    def _read(self, conn: Conn) -> None:
        """Read what has arrived, and act once the request is whole or refused."""
        while True:
            data = conn.recv()
            if data is None:
                conn.watch(conn.want)
                return
            if not data:
                self.acceptor.close(conn)
                return
            if conn.state == IDLE:
                conn.new_request(b"", time.monotonic(), REQUEST_DEADLINE)
            conn.framing.feed(data)
            if self._act(conn):
                return
            if not conn.pending():
                conn.watch(READ)
                return

    def _act(self, conn: Conn) -> bool:
        """Answer the framing's verdict; True once the request has left the READING state."""
        framing = conn.framing
        if framing.verdict == WAIT:
            if framing.wants_continue and not conn.continue_sent:
                # The client waits for this before it sends the body (curl does, past 1 KiB).
                conn.continue_sent = True
                conn.send_quietly(CONTINUE)
            return False
        if framing.verdict == REFUSED:
            self._refuse(conn, framing.status, framing.why, FRAMING)
            return True
        data, conn.rest = bytes(framing.buf[: framing.end]), bytes(framing.buf[framing.end :])
        conn.framing = None
        conn.state = SERVING
        conn.watch(0)  # pipelined requests wait in the client's own kernel buffer
        now = time.monotonic()
        last = (
            conn.served + 1 >= REQUESTS_PER_CONNECTION
            or now - conn.born >= CONNECTION_LIFETIME
            or not self.alive
        )
        self.runner.put(conn, data, last=last)
        return True

    # Replies

    def _served(self, conn: Conn, future) -> None:
        """Send the reply a thread made for ``conn``; close it if the thread failed."""
        try:
            reply, keep = future.result()
        except BaseException:  # noqa: BLE001 (SystemExit from gunicorn's timeout, or worse: close)
            self.acceptor.close(conn)
            return
        self._reply(conn, reply, close=not keep, seconds=REQUEST_DEADLINE)

    def _refuse(self, conn: Conn, status: int, sentence: str, reason: str) -> None:
        """Answer the request being read with ``status`` and close: logged and counted (app/answering.py)."""
        head = conn.framing.buf  # only its request line is read, for the method and the path
        reply = self.answers.answer(
            status, sentence, client=conn.address, reason=reason, head=head, began=conn.began
        )
        self._reply(conn, reply, close=True, seconds=LINGER_SECONDS)

    def _reply(self, conn: Conn, data: bytes, *, close: bool, seconds: float) -> None:
        conn.state, conn.out, conn.close_after = WRITING, memoryview(data), close
        conn.deadline = time.monotonic() + seconds
        self._write(conn)

    def _write(self, conn: Conn) -> None:
        """Send what the client takes now; once all is sent, close or wait for the next request."""
        sent = conn.send_some()
        if sent is None:
            self.acceptor.close(conn)
            return
        if not sent:
            conn.watch(conn.want)
            return
        if conn.close_after:
            self._linger(conn)
            return
        conn.served += 1
        now = time.monotonic()
        rest, conn.rest = conn.rest, b""
        if rest or conn.pending():
            conn.new_request(rest, now, REQUEST_DEADLINE)
            if not self._act(conn):
                self._read(conn)
            return
        conn.state, conn.framing = IDLE, None
        conn.deadline = now + self.cfg.keepalive if self.alive else now + min(self.cfg.keepalive, STOP_LINGER)
        conn.watch(READ)

    # Closing and deadlines

    def _sweep(self, now: float) -> None:
        """Enforce the deadlines that passed: 408 for a late request, close for the rest."""
        for conn in [c for c in self.acceptor.conns if c.deadline <= now and c.state != SERVING]:
            if conn.state == READING and conn.framing.buf:
                sentence = (
                    f"The request did not arrive whole within {REQUEST_DEADLINE:g} seconds; "
                    "send it again, all at once."
                )
                self._refuse(conn, 408, sentence, DEADLINE)
            else:
                self.acceptor.close(conn)

    def _linger(self, conn: Conn) -> None:
        """Send FIN, then wait in the poller (not a thread) for the client's, as RFC 9112 9.6 asks."""
        if not conn.shutdown():
            self.acceptor.close(conn)
            return
        conn.deadline = time.monotonic() + LINGER_SECONDS
        conn.watch(READ)
