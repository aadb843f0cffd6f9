"""Run one request that has fully arrived, in a thread, without touching its socket.

The worker's main loop (app/worker.py) reads a request whole, frames it with
app/framing.py, and hands a thread only its bytes. Here gunicorn's own parser
reads those bytes from memory (an iterable source: it can ask for no more),
gunicorn's ``wsgi.create`` builds the environ, the app runs, and the reply is
written to a ``ReplyBuffer`` instead of the socket. The main loop then sends
the reply without blocking, so a client that reads slowly holds its own
connection and never a thread. Replies here are JSON documents of a few KB
(openapi.json, the largest, about 90 KB) and static UI files: buffering them
whole is cheap, and it lets an app error that happens after the headers
become a clean 500 instead of a cut reply.
"""

from __future__ import annotations

from datetime import datetime

from gunicorn.http import RequestParser, wsgi
from gunicorn.http import errors as http_errors

from .answering import GUNICORN

__all__ = ["ReplyBuffer", "serve"]

#: What gunicorn sends for an expected 100-continue (gunicorn/http/wsgi.py). The body
#: is already here when a thread runs, so the interim reply is dropped: RFC 9110
#: 10.1.1 lets a server omit it once it has the content, and the main loop already
#: sent one if the client was waiting for it.
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ReplyBuffer:
    """Stand in for the socket gunicorn writes a reply to, and keep what it writes."""

    def __init__(self, local=None, peer=None) -> None:
        self.parts: list[bytes] = []
        self._local, self._peer = local, peer
        self.app_called = False  # once the app runs, its access hook logs and counts the reply

    def getsockname(self):
        """Return the local address, as the socket would (the app reads it from gunicorn.socket)."""
        return self._local

    def getpeername(self):
        """Return the client's address, as the socket would."""
        return self._peer

    def gettimeout(self) -> float:
        """Say the socket never blocks: gunicorn's error reply (``write_nonblock``) is then written here."""
        return 0.0

    def sendall(self, data) -> None:
        """Keep ``data``."""
        self.parts.append(bytes(data))

    def send(self, data) -> int:
        """Keep ``data``, except the interim 100 Continue (see _CONTINUE)."""
        if bytes(data) != _CONTINUE:
            self.parts.append(bytes(data))
        return len(data)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """Keep ``count`` bytes of ``file`` from ``offset`` (gunicorn's sendfile path)."""
        file.seek(offset)
        data = file.read(count) if count is not None else file.read()
        self.parts.append(data)
        return len(data)

    def value(self) -> bytes:
        """Return everything written."""
        return b"".join(self.parts)


def serve(worker, conn, data: bytes, *, last: bool) -> tuple[bytes, bool]:
    """Parse and run the request in ``data``; return the reply and whether the connection stays open.

    ``conn`` gives the client and server addresses; ``last`` closes the
    connection after this reply (its request or lifetime cap was reached).
    """
    cfg = worker.cfg
    out = ReplyBuffer(conn.server, conn.client)
    parser = RequestParser(cfg, [data], conn.client)
    req = None
    try:
        req = next(parser)
        keep = _run(worker, req, out, conn, last)
        # The framing said the request ends where ``data`` ends: a body the app left
        # unread is drained from memory, and anything left over means gunicorn framed
        # it otherwise, so the next request's start would be unknown: close.
        if keep and not (parser.finish_body() and not parser.unreader.take_buffered()):
            keep = False
        return out.value(), keep
    except (StopIteration, http_errors.NoMoreData):
        return out.value(), False
    except Exception as exc:  # noqa: BLE001 (gunicorn's handle_error answers every kind)
        app_called = out.app_called
        out = ReplyBuffer(conn.server, conn.client)  # nothing has reached the wire: replace a cut reply whole
        worker.handle_error(req, out, conn.client, exc)
        reply = out.value()
        if reply and not app_called:
            # gunicorn refused the request (a scheme header, a name with "_" under
            # header_map=refuse): the app never saw it, so the worker writes its line.
            worker.answers.record(
                _status(reply), client=conn.address, reason=GUNICORN, head=data, began=conn.began
            )
        return reply, False


def _run(worker, req, out: ReplyBuffer, conn, last: bool) -> bool:
    """Run the app on ``req`` as gunicorn's gthread does, writing to ``out``; True to keep alive."""
    cfg = worker.cfg
    environ, resp = {}, None
    try:
        cfg.pre_request(worker, req)
        started = datetime.now()
        resp, environ = wsgi.create(req, out, conn.client, conn.server, cfg)
        environ["wsgi.multithread"] = True
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            worker.log.info("Autorestarting worker after current request.")
            worker.alive = False
        if last or not worker.alive or not cfg.keepalive:
            resp.force_close()
        out.app_called = True
        respiter = worker.wsgi(environ, resp.start_response)
        try:
            if isinstance(respiter, environ["wsgi.file_wrapper"]):
                resp.write_file(respiter)
            else:
                for item in respiter:
                    resp.write(item)
            resp.close()
        finally:
            worker.log.access(resp, req, environ, datetime.now() - started)
            if hasattr(respiter, "close"):
                respiter.close()
        return not resp.should_close()
    finally:
        try:
            cfg.post_request(worker, req, environ, resp)
        except Exception:  # noqa: BLE001 (as gunicorn: a failing hook never fails the request)
            worker.log.exception("Exception in post_request hook")


def _status(reply: bytes) -> int:
    """Return the status of gunicorn's error reply ("HTTP/1.1 400 Bad Request"), 500 if unreadable."""
    bits = reply[:32].split(b" ", 2)
    return int(bits[1]) if len(bits) > 1 and bits[1].isdigit() else 500
