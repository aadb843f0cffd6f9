"""Answering without the app: the replies the worker writes itself, each logged and counted as the app's are.

The worker (app/worker.py) answers some requests before, or instead of, the
app: a 408 for a request not whole within the deadline, the refusals of
app/framing.py (400, 413, 414, 417, 431, 501), the 503 for an address past
its connection cap (app/accepting.py), and gunicorn's own error reply when
its parser refuses a request the framing let through (app/serving.py). The
app's access hook (app/api/lifecycle.py) never sees those, so ``Answers``
writes each one's access line, in the app's shape and to the same
``app.access`` logger, and counts it once on the app's ``RequestCounts``
(app/counts.py): an operator watching the log or the metrics sees a flood
of bad or slow requests, not only the good ones.

The line names nothing of the request but its method and its path, and
those only from a request line that arrived whole and well formed (the path
without its query, cut as the app cuts it); otherwise both are "-". Never a
header, never a body. It adds ``source: "worker"`` and a ``reason`` word
(``deadline``, ``framing``, ``address_cap``, ``gunicorn``). Its client is the
peer's address: behind a reverse proxy, the proxy's (the worker reads no
X-Forwarded-For). Its ``duration_ms`` counts from the request's first byte
(from the accept, for a connection's first request) to the answer.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from . import logs
from .counts import RequestCounts
from .errors import shorten
from .logs import MAX_LOGGED_PATH

__all__ = ["Answers", "MAX_LOGGED_PATH", "canned"]

access_log = logging.getLogger("app.access")

#: The reasons, one word each, an operator can filter on.
DEADLINE, FRAMING, ADDRESS_CAP, GUNICORN = "deadline", "framing", "address_cap", "gunicorn"

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}
# What app/framing.py lets through as a request line: an upper-case token, a
# printable target, a version. Anything else is never named in a log line.
_METHOD = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]{3,20}")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")


def canned(status: int, sentence: str, request_id: str = "") -> bytes:
    """Build a whole JSON error reply, in the app's shape, that closes the connection."""
    body = json.dumps({"errors": [sentence]}).encode() + b"\n"
    named = f"X-Request-Id: {request_id}\r\n" if request_id else ""
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        f"{named}Connection: close\r\n\r\n"
    )
    return head.encode() + body


def named(head: bytes | bytearray, request_line: int) -> tuple[str, str]:
    """Return the method and the path (no query, capped) of ``head``'s request line, or "-" for both.

    Only a line that ended (CRLF) within ``request_line`` bytes, as the framing
    allows, and that has the framing's shape is read: nothing past it ever is.
    """
    start = 2 if head[:2] == b"\r\n" else 0
    end = head.find(b"\r\n", start, start + request_line + 2)
    if end < 0:
        return "-", "-"
    bits = bytes(head[start:end]).split(b" ")
    if (
        len(bits) != 3
        or not _METHOD.fullmatch(bits[0])
        or not _TARGET.fullmatch(bits[1])
        or not _VERSION.fullmatch(bits[2])
    ):
        return "-", "-"
    path = bits[1].partition(b"?")[0].decode("ascii")
    return bits[0].decode("ascii"), shorten(path, MAX_LOGGED_PATH)


class Answers:
    """Log and count each reply the worker writes itself, once, as the app's access hook does its own."""

    def __init__(self, request_line: int, counts: RequestCounts | None = None):
        self.request_line = request_line  # the framing's bound: no longer line is read
        # The app's counts, once gunicorn has loaded it (app/worker.py); None counts nothing.
        self.counts = counts

    def answer(self, status: int, sentence: str, *, client: str, reason: str, head=b"", began=None) -> bytes:
        """Log and count a reply of ``status``; return its bytes, naming the line's request id."""
        request_id = self.record(status, client=client, reason=reason, head=head, began=began)
        return canned(status, sentence, request_id)

    def record(self, status: int, *, client: str, reason: str, head=b"", began: float | None = None) -> str:
        """Count a reply of ``status`` and write its access line; return the line's request id.

        ``head`` is what arrived of the request (only its request line is read),
        ``began`` the monotonic time its first byte came, if known.
        """
        if self.counts is not None:
            self.counts.add(status)
        request_id = uuid.uuid4().hex
        if access_log.isEnabledFor(logging.INFO):
            method, path = named(head, self.request_line)
            took = time.monotonic() - began if began is not None else 0.0
            logs.access(
                access_log,
                "request",
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(took * 1000, 3),
                    "request_id": request_id,
                    "client": client,
                    "source": "worker",
                    "reason": reason,
                },
            )
        return request_id
