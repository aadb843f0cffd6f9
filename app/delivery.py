"""One webhook delivery: the body a trail line becomes, its signature, one deadline for all of it.

app/notify.py decides what is sent when; this module makes each POST's body
(the line's own fields, byte for byte, plus ``audit_head``), signs it as
GitHub signs its webhooks, and sends it: ``post()`` connects, sends, and
reads the reply's head and at most ``MAX_REPLY`` bytes of its body, all
within ``DELIVERY_SECONDS`` from the start. Only the status counts; a
receiver (or anything on the path) that answers with a huge, endless or
trickled reply, head or body, costs the worker nothing but that delivery,
which fails and is retried. It imports nothing from Flask.

Why a watchdog. requests and urllib3 only know per-read timeouts
(``CONNECT_TIMEOUT``, ``READ_TIMEOUT``): a peer that sends a byte of its
head every few seconds never trips them, and http.client reads up to 100
header lines of 64 KiB. Of the ways to add a total deadline, this module
shuts the connection's socket down when the deadline passes, from a
``threading.Timer`` started for the delivery:

- it bounds every step the same way, whichever library code is blocked
  (the TLS handshake inside urllib3's connect, sending, http.client reading
  the head, urllib3 reading the body): a blocked read returns at once;
- setting the socket's timeout to the time left before each read would need
  a hook in http.client's buffered reads of the head, which neither library
  offers, and would still leave the TLS handshake out;
- a POST through http.client over a socket of our own would redo what
  requests does for us (credentials in the URL, IDNA host names, certifi's
  CAs, dropping a kept-alive connection the peer closed), and change it.

The watched socket is found through urllib3's documented extension points:
``HTTPAdapter.init_poolmanager`` gives the pool manager pool classes
(``PoolManager.pool_classes_by_scheme``, there "so other PoolManagers can
override them") whose ``ConnectionCls`` reports each socket to the delivery
under way on its thread: a new one as soon as it is connected (before any
TLS handshake), a kept-alive one at each request. The one undocumented name
this takes is in ``URLLIB3_NAMES`` (tests/test_notify.py resolves it).
What the timer shuts down is a duplicate of the socket's descriptor (TLS
takes the connected socket object's descriptor over during the handshake);
shutting down acts on the connection, whichever descriptor names it.

After a shutdown, http.client may take the end of the stream for the end of
the head or of the body, so a delivery whose deadline passed fails whatever
was read, and its connection is closed, never reused. A reply read whole in
time leaves its connection in the pool (keep-alive). A timer thread per
delivery costs a thread start next to a POST's round trip, and leaves
nothing to stop. Name resolution is not covered (``getaddrinfo`` cannot be
interrupted; resolv.conf's timeout and attempts bound it); the TCP connect
is, by ``CONNECT_TIMEOUT``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from typing import Self

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from .audit import line_hash

__all__ = [
    "CONNECT_TIMEOUT",
    "DELIVERY_SECONDS",
    "MAX_REPLY",
    "READ_TIMEOUT",
    "SIGNATURE_HEADER",
    "URLLIB3_NAMES",
    "DeliveryTimeout",
    "payload",
    "post",
    "open_session",
    "sign",
]

log = logging.getLogger("app.notify")

#: Field names that would carry key material. The trail never holds them;
#: a body never will either, even if a future event were to.
_FORBIDDEN = frozenset(
    {"key", "keys", "keys_base64", "key_base64", "share", "shares", "otp", "pad", "token", "root_token"}
)
SIGNATURE_HEADER = "X-Generate-Share-Signature"
#: Bytes of a receiver's reply read at most (the status is what counts).
MAX_REPLY = 4096
#: Seconds a delivery may take in all: connecting, sending, the reply's head and body.
DELIVERY_SECONDS = 10.0
#: Seconds to connect, and that any one read may wait (a silent receiver fails sooner than the deadline).
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
#: What this module uses of urllib3 beyond its documented API (private: no public hook
#: reports a socket between its connect and its TLS handshake).
URLLIB3_NAMES = ("urllib3.connection.HTTPConnection._new_conn",)


class DeliveryTimeout(requests.Timeout):
    """The delivery did not end within its deadline (a retryable failure, like the others)."""


def sign(secret: bytes, body: bytes) -> str:
    """Return the signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def payload(line: bytes) -> tuple[dict, bytes]:
    """Return one trail line's notification: the event and its exact body bytes."""
    doc = json.loads(line)
    for name in _FORBIDDEN & doc.keys():
        # Text under such a name could be key material. The events the service
        # writes hold none (``shares`` in ``init`` is a count); a guard for future ones.
        if isinstance(doc[name], (str, list, dict)):
            log.error("notify: dropped field %r from event %s", name, doc.get("event"))
            del doc[name]
    doc["audit_head"] = {"seq": doc.get("seq"), "hash": line_hash(line)}
    return doc, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def open_session() -> requests.Session:
    """Return a session for one URL's deliveries: nothing from the environment, every socket watched."""
    made = requests.Session()
    made.trust_env = False  # no proxy or .netrc from the environment
    adapter = _WatchedAdapter()
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


def post(
    session: requests.Session, url: str, body: bytes, headers: dict, seconds: float = DELIVERY_SECONDS
) -> int:
    """POST ``body`` to ``url`` and read the reply, all within ``seconds``; return the reply's status.

    Raises a ``requests.RequestException``: ``DeliveryTimeout`` once the
    deadline passed (whatever was read by then), or the failure requests met.
    Redirects are not followed. ``DeliveryTimeout``'s message holds no URL;
    requests' own messages do (a webhook URL may hold a secret: log their type).
    """
    with _Deadline(seconds) as deadline:
        try:
            reply = session.post(
                url,
                data=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
                stream=True,  # the body is read here, to MAX_REPLY at most
            )
            whole = _read_body(reply)
        except requests.RequestException:
            if deadline.end():
                raise DeliveryTimeout(f"the delivery did not end within {seconds:g} s") from None
            raise
        if deadline.end():
            reply.close()  # shut down under it: never back to the pool
            raise DeliveryTimeout(f"the delivery did not end within {seconds:g} s")
    if whole:
        reply.raw.release_conn()  # read whole in time: the connection can be reused
    else:
        reply.close()  # too long: the rest goes with the connection
    return reply.status_code


def _read_body(reply: requests.Response) -> bool:
    """Read a reply's body to MAX_REPLY bytes; tell whether that was all of it (the deadline bounds it)."""
    read = 0
    try:
        while read <= MAX_REPLY:
            chunk = reply.raw.read(1024, decode_content=False)
            if not chunk:
                return True
            read += len(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # a broken or stalled body
        reply.close()
        raise requests.ConnectionError(type(exc).__name__) from None
    return False


class _Deadline:
    """One delivery's deadline: when it passes, each socket the delivery used is shut down."""

    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        #: A duplicate of each watched socket's descriptor, by the original's descriptor number.
        self._sockets: dict[int, socket.socket] = {}
        self._passed = self._over = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.name, self._timer.daemon = "notify-deadline", True

    def __enter__(self) -> Self:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.end()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down at the deadline (at once if it has passed)."""
        with self._lock:
            if self._over or sock.fileno() in self._sockets:
                return
            # A duplicate: TLS detaches the socket object from its descriptor mid-handshake.
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
            self._sockets[sock.fileno()] = dup
            if self._passed:
                _shut(dup)

    def end(self) -> bool:
        """Stop watching (idempotent); tell whether the deadline passed first."""
        self._timer.cancel()
        with self._lock:
            if not self._over:
                self._over = True
                if getattr(_current, "deadline", None) is self:
                    _current.deadline = None
                for dup in self._sockets.values():
                    dup.close()  # the connection itself stays open, and reusable
                self._sockets.clear()
            return self._passed

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self._passed = True
            for dup in self._sockets.values():
                _shut(dup)


def _shut(sock: socket.socket) -> None:
    """Shut a connection down both ways: a read or write blocked on it returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


class _Current(threading.local):
    """The delivery under way on this thread, if any."""

    deadline: _Deadline | None = None


_current = _Current()


def _watch(sock: socket.socket) -> None:
    """Have the delivery under way on this thread watch ``sock``."""
    deadline = _current.deadline
    if deadline is not None:
        deadline.watch(sock)


class _Watched:
    """Report each socket to the delivery under way: a new one once connected, a reused one per request."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before TLS: the handshake is under the deadline too
        return sock

    def request(self, *args, **kwargs) -> None:
        if self.sock is not None:  # a kept-alive connection, reused (a new one connects in there)
            _watch(self.sock)
        super().request(*args, **kwargs)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter, its connections watched by the delivery under way."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
