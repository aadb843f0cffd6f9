"""What happens around every request: its id, its client, its headers, its log line."""

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from ..audit import REQUEST, RequestInfo

__all__ = ["register"]

access_log = logging.getLogger("app.access")

# An incoming X-Request-Id is honoured only if it is short and plain, so that
# it cannot smuggle anything into the logs or the audit trail.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _begin() -> None:
    """Name the request and remember who sent it."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()
    g.request_id = request_id
    g.request_token = REQUEST.set(RequestInfo(request_id=request_id, client=request.remote_addr or ""))


def _finish(response: Response) -> Response:
    """Add the headers every reply carries and write the access log line."""
    # Replies can carry shares: keep them out of every cache, and never let a
    # browser guess another type.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    request_id = g.get("request_id", "")
    response.headers["X-Request-Id"] = request_id
    access_log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
            "request_id": request_id,
            "client": request.remote_addr or "",
        },
    )
    return response


def _end(exc: BaseException | None) -> None:
    """Forget the request's identity."""
    token = g.pop("request_token", None)
    if token is not None:
        REQUEST.reset(token)


def register(app: Flask) -> None:
    """Install the hooks."""
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_end)
