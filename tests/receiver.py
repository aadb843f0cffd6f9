"""A webhook receiver for tests: an http.server on a free loopback port, in this process.

It records what it accepts under a Condition (tests wait on it with
deadlines, never by sleeping), and can hang, answer any status, reset the
connection, or trickle its reply's head or body a byte at a time, on demand.
It speaks HTTPS when given a certificate and its key.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from pathlib import Path

DEADLINE = 30.0
#: Seconds between two trickled bytes: well under the service's read timeout, so only a deadline stops it.
TRICKLE = 0.5
#: What a trickled reply sends before its first trickled byte: a 200 whose head, or body, never ends.
_TRICKLED = {
    "trickle-head": b"HTTP/1.1 200 OK\r\nX-Drip: ",
    "trickle-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
}


class Receiver:
    """A webhook receiver on a loopback port: records what it takes, misbehaves on demand."""

    def __init__(self, port: int | None = None, tls: tuple[Path, Path] | None = None):
        # Bound now, listening only at start(): until then the port refuses
        # connections (a receiver that is down) and nothing else can take it.
        self._reserved: socket.socket | None = None
        if port is None:
            self._reserved = socket.socket()
            self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._reserved.bind(("127.0.0.1", 0))
            port = self._reserved.getsockname()[1]
        self.port = port
        self.tls = tls  # (certificate, key): HTTPS
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hook"
        self.cond = threading.Condition()
        self.got: list[tuple[dict, bytes, dict]] = []  # accepted: (headers, body, parsed)
        self.seen: list[tuple[str, str]] = []  # every request: (method, path)
        self.connections = 0  # every connection accepted
        #: Replies to give, one per request, before settling on "ok": an int status, "hang",
        #: "reset", "trickle-head" or "trickle-body".
        self.script: list = []
        self.mode = "ok"
        #: Seconds each accepted event takes before its reply (a receiver far away).
        self.delay = 0.0
        self.release = threading.Event()
        self._server = None

    def start(self) -> Receiver:
        """Listen and serve on a thread."""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.cond:
                    receiver.connections += 1
                    receiver.cond.notify_all()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.seen.append(("POST", self.path))
                    action = receiver.script.pop(0) if receiver.script else receiver.mode
                    receiver.cond.notify_all()
                if action == "hang":
                    receiver.release.wait(DEADLINE)
                    self.close_connection = True
                    return
                if action in _TRICKLED:
                    self.close_connection = True
                    try:
                        self.wfile.write(_TRICKLED[action])
                        # Pacing a peer that is slow on purpose, not waiting for anything; stop() ends it.
                        while not receiver.release.wait(TRICKLE):
                            self.wfile.write(b"a")
                    except OSError:
                        pass  # the service gave up on it: what it should do
                    return
                if action == "reset":
                    # SO_LINGER 0: close sends a RST instead of a FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    self.close_connection = True
                    return
                status = 204 if action == "ok" else action
                if status == 204 and receiver.delay:
                    time.sleep(receiver.delay)  # simulating a slow receiver, not waiting for anything
                if status == 204:
                    # Kept before the reply leaves: once the service has its 2xx, the
                    # test may look, and the event must already be there.
                    with receiver.cond:
                        receiver.got.append((dict(self.headers), body, json.loads(body)))
                        receiver.cond.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                with receiver.cond:
                    receiver.seen.append(("GET", self.path))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        if self._reserved is None:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        else:
            self._server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", self.port), Handler, bind_and_activate=False
            )
            self._server.socket.close()
            self._server.socket, self._reserved = self._reserved, None
            self._server.server_activate()
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (the port then refuses connections)."""
        self.release.set()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, predicate, what: str, timeout: float = DEADLINE):
        """Wait until ``predicate(self)`` holds; fail naming ``what`` at the deadline."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"receiver: {what} did not happen within {timeout} s; got {self.events()}"
                )

    def events(self) -> list[tuple[int, str]]:
        """Return (seq, event) of every accepted notification, in arrival order."""
        return [(doc["seq"], doc["event"]) for _, _, doc in self.got]

    def has_seq(self, seq: int) -> bool:
        """Tell whether line ``seq`` arrived."""
        return any(doc["seq"] == seq for _, _, doc in self.got)
