"""A gunicorn worker whose threads never wait on a socket, and whose slots no one client can take.

gunicorn's ``gthread`` worker gives each connection to a thread that parses
the request with blocking reads: a handful of slow clients hold every thread.
This worker (a ``gunicorn.workers.base.Worker``, gunicorn's documented base
for custom workers) keeps every socket in its main loop instead:

- The main loop reads each request without blocking until it is whole, head
  and body (framed by app/framing.py, which agrees with gunicorn's parser and
  refuses at once, with gunicorn's status, what gunicorn refuses). A request
  must arrive whole within ``REQUEST_DEADLINE`` seconds of its first byte (or
  of the connection), one absolute deadline, or it is answered 408.
- Only then does a thread run it (app/serving.py), from those bytes in memory,
  writing the reply to memory; the main loop sends the reply as fast as the
  client reads it, within the same deadline. A thread never reads or writes a
  socket, so no client, slow or stalled, can hold one.
- Slots are shared fairly: at most ``CONNECTIONS_PER_ADDRESS`` open connections
  per client address (a setting); a kept-alive connection serves at most
  ``REQUESTS_PER_CONNECTION`` requests and lives at most
  ``CONNECTION_LIFETIME`` seconds; pipelined requests are read one at a time,
  the next only once the previous reply is written, so one connection holds
  at most one request and one reply in memory; and when every slot is taken
  the connection idle the longest is closed to make room. Requests waiting
  for a thread get one an address at a time, in turn (app/slots.py).
- The number of connections is sized from the descriptor limit at start
  (raising the soft limit towards the hard one if it is lower than needed),
  leaving room for the data folder, logs and gpg's pipes; ``EMFILE`` or
  ``ENFILE`` in ``accept`` pauses accepting for ``ACCEPT_PAUSE`` seconds.
- With native TLS the handshake, the reads and the writes run in the same
  loop, without blocking: every guarantee above holds for HTTPS too. ALPN
  offers only http/1.1; this worker speaks HTTP/1.x only.

gunicorn loads this module in its master: it imports nothing from Flask.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from gunicorn import sock as gsock
from gunicorn.workers.base import Worker

from . import config
from .connection import (
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
    canned,
)
from .framing import REFUSED, WAIT, Limits
from .serving import serve
from .slots import AddressCounts, FairQueue, size_connections

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
#: How long accepting pauses when the process or the system is out of descriptors.
ACCEPT_PAUSE = 0.5
#: Connections accepted per wake-up, so that a flood of connects cannot starve the rest.
ACCEPT_BATCH = 64
#: The kernel's send buffer per connection (it doubles it): about one reply of
#: openapi.json, so that a client that pipelines requests and reads nothing gets
#: one reply made for it, not as many as an auto-tuned buffer of megabytes holds.
SEND_BUFFER = 32 * 1024
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

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class BufferingWorker(Worker):
    """Read and write every socket in the main loop; run each whole request in a thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.limits = Limits(
            request_line=cfg.limit_request_line if 0 < cfg.limit_request_line < 8190 else 8190,
            fields=cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768,
            field_size=cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190,
            header_map=cfg.header_map,
            body=BODY_LIMIT,
        )
        self.per_address_limit = CONNECTIONS_PER_ADDRESS
        self.per_address = AddressCounts(CONNECTIONS_PER_ADDRESS)
        self.waiting = FairQueue()  # whole requests waiting for a thread
        self.busy = 0  # threads running a request
        self.descriptor_limit, self.connection_limit = size_connections(cfg.worker_connections, cfg.threads)
        self.conns: dict[Conn, None] = {}
        self.finished: queue.SimpleQueue = queue.SimpleQueue()
        self.accepting = False
        self.paused_until = 0.0
        self.next_sweep = 0.0
        self.tls = None
        self.poller = None
        self.tpool = None
        self._wake = (-1, -1)

    def init_process(self):
        """Set up the poller, the threads and TLS, then start as every gunicorn worker does."""
        self.poller = selectors.DefaultSelector()
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        self.poller.register(self._wake[0], READ, self._on_finished)
        self.tpool = ThreadPoolExecutor(max_workers=self.cfg.threads)
        if self.cfg.is_ssl:
            self.tls = gsock.ssl_context(self.cfg)
            self.tls.set_alpn_protocols(["http/1.1"])
        if self.cfg.proxy_protocol != "off":
            self.log.warning("this worker speaks HTTP/1.x only: the PROXY protocol setting is ignored")
        super().init_process()

    def run(self):
        """Serve until told to stop, then finish what is in flight within the graceful timeout."""
        for listener in self.sockets:
            listener.setblocking(False)
        while self.alive:
            self._step()
            if os.getppid() != self.ppid:
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self._set_accepting(False)
        now = time.monotonic()
        for conn in list(self.conns):
            if conn.state == HANDSHAKE or (conn.state == READING and not conn.framing.buf):
                self._close(conn)
            elif conn.state == IDLE:
                conn.deadline = min(conn.deadline, now + STOP_LINGER)
        grace = now + self.cfg.graceful_timeout
        while self.conns and time.monotonic() < grace:
            self._step()
        for conn in list(self.conns):
            self._close(conn)
        self.tpool.shutdown(wait=False)
        self.poller.close()
        for fd in self._wake:
            os.close(fd)

    def _step(self) -> None:
        """Wait for events once, act on them, and enforce the deadlines that passed."""
        self.notify()
        now = time.monotonic()
        if self.alive and not self.accepting and now >= self.paused_until and self._room():
            self._set_accepting(True)
        try:
            events = self.poller.select(SWEEP_SECONDS)
        except InterruptedError:
            events = []
        for key, _mask in events:
            if isinstance(key.data, Conn):
                if key.data.state != "closed":
                    self._on_event(key.data)
            else:
                key.data(key.fileobj)
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + SWEEP_SECONDS
            self._sweep(now)

    # Accepting

    def _room(self) -> bool:
        """Tell whether a new connection fits, closing the longest-idle kept-alive one if it must."""
        if len(self.conns) < self.connection_limit:
            return True
        idle = next((c for c in self.conns if c.state == IDLE), None)
        if idle is None:
            return False
        self._close(idle)
        return True

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.sockets:
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
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # not for a Unix socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        address = client[0] if isinstance(client, tuple) and client else "unix"
        if self.per_address.full(address):
            with contextlib.suppress(OSError):
                sock.send(canned(503, f"this address already holds {self.per_address_limit} connections"))
            sock.close()
            return
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(
                    sock,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except OSError:
                sock.close()
                return
        now = time.monotonic()
        conn = Conn(sock, client, server, limits=self.limits, now=now)
        conn.deadline = now + REQUEST_DEADLINE  # the handshake, if any, and the first request
        self.conns[conn] = None
        self.per_address.add(address)
        self._watch(conn, READ)

    # Arriving requests

    def _on_event(self, conn: Conn) -> None:
        """Advance ``conn`` by the state it is in, now that its socket is ready."""
        if conn.state == HANDSHAKE:
            done = conn.handshake()
            if done is None:
                self._close(conn)
            elif done:
                self._read(conn)
            else:
                self._watch(conn, conn.want)
        elif conn.state in (READING, IDLE):
            self._read(conn)
        elif conn.state == WRITING:
            self._write(conn)
        elif conn.state == CLOSING and conn.drain():
            self._close(conn)

    def _read(self, conn: Conn) -> None:
        """Read what has arrived, and act once the request is whole or refused."""
        while True:
            data = conn.recv()
            if data is None:
                self._watch(conn, conn.want)
                return
            if not data:
                self._close(conn)
                return
            if conn.state == IDLE:
                conn.new_request(b"", time.monotonic() + REQUEST_DEADLINE)
            conn.framing.feed(data)
            if self._act(conn):
                return
            if not conn.pending():
                self._watch(conn, READ)
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
            self._reply(conn, canned(framing.status, framing.why), close=True, seconds=LINGER_SECONDS)
            return True
        data, conn.rest = bytes(framing.buf[: framing.end]), bytes(framing.buf[framing.end :])
        conn.framing = None
        conn.state = SERVING
        self._watch(conn, 0)  # pipelined requests wait in the client's own kernel buffer
        now = time.monotonic()
        last = (
            conn.served + 1 >= REQUESTS_PER_CONNECTION
            or now - conn.born >= CONNECTION_LIFETIME
            or not self.alive
        )
        self.waiting.put(conn.address, (conn, data, last))
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        """Give free threads to waiting requests, one address at a time in turn."""
        while self.busy < self.cfg.threads and self.waiting:
            conn, data, last = self.waiting.get()
            if conn.state != SERVING:
                continue  # closed while it waited (a stopping worker)
            self.busy += 1
            future = self.tpool.submit(serve, self, conn, data, last=last)
            future.add_done_callback(lambda done, conn=conn: self._finish(conn, done))

    # Replies

    def _finish(self, conn: Conn, future) -> None:
        """Hand a served request back to the main loop (called in the thread that ran it)."""
        self.finished.put((conn, future))
        with contextlib.suppress(OSError):
            os.write(self._wake[1], b"\0")

    def _on_finished(self, _fd) -> None:
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
            try:
                reply, keep = future.result()
            except BaseException:  # noqa: BLE001 (SystemExit from gunicorn's timeout, or worse: close)
                self._close(conn)
                continue
            self._reply(conn, reply, close=not keep, seconds=REQUEST_DEADLINE)

    def _reply(self, conn: Conn, data: bytes, *, close: bool, seconds: float) -> None:
        conn.state, conn.out, conn.close_after = WRITING, memoryview(data), close
        conn.deadline = time.monotonic() + seconds
        self._write(conn)

    def _write(self, conn: Conn) -> None:
        """Send what the client takes now; once all is sent, close or wait for the next request."""
        sent = conn.send_some()
        if sent is None:
            self._close(conn)
            return
        if not sent:
            self._watch(conn, conn.want)
            return
        if conn.close_after:
            self._linger(conn)
            return
        conn.served += 1
        now = time.monotonic()
        rest, conn.rest = conn.rest, b""
        if rest or conn.pending():
            conn.new_request(rest, now + REQUEST_DEADLINE)
            if not self._act(conn):
                self._read(conn)
            return
        conn.state, conn.framing = IDLE, None
        conn.deadline = now + self.cfg.keepalive if self.alive else now + min(self.cfg.keepalive, STOP_LINGER)
        self._watch(conn, READ)

    # Closing and deadlines

    def _sweep(self, now: float) -> None:
        """Enforce the deadlines that passed: 408 for a late request, close for the rest."""
        for conn in [c for c in self.conns if c.deadline <= now and c.state != SERVING]:
            if conn.state == READING and conn.framing.buf:
                sentence = (
                    f"The request did not arrive whole within {REQUEST_DEADLINE:g} seconds; "
                    "send it again, all at once."
                )
                self._reply(conn, canned(408, sentence), close=True, seconds=LINGER_SECONDS)
            else:
                self._close(conn)

    def _linger(self, conn: Conn) -> None:
        """Send FIN, then wait in the poller (not a thread) for the client's, as RFC 9112 9.6 asks."""
        if not conn.shutdown():
            self._close(conn)
            return
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self._watch(conn, READ)

    def _watch(self, conn: Conn, events: int) -> None:
        """Make the poller watch ``events`` (0: nothing) on ``conn``'s socket."""
        if events == conn.watching:
            return
        if not conn.watching:
            self.poller.register(conn.sock, events, conn)
        elif not events:
            self.poller.unregister(conn.sock)
        else:
            self.poller.modify(conn.sock, events, conn)
        conn.watching = events

    def _close(self, conn: Conn) -> None:
        if conn.state == "closed":
            return
        self._watch(conn, 0)
        self.conns.pop(conn, None)
        self.per_address.remove(conn.address)
        conn.close()
