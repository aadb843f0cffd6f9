"""What happens around every request: its id, its client, where it comes from, its headers, its log line."""

import ipaddress
import logging
import re
import time
import uuid
from functools import partial

from flask import Flask, Response, g, request

from .. import logs
from ..audit import NOBODY, RequestInfo
from ..logs import MAX_LOGGED_PATH
from .common import SAFE_METHODS, get_settings
from .errors import error_response, shorten
from .metrics import REQUEST_COUNTS, RequestCounts

__all__ = ["register"]

access_log = logging.getLogger("app.access")

# An incoming X-Request-Id is honoured only if it is short and plain, so that
# it cannot smuggle anything into the logs or the audit trail.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _begin() -> None:
    """Name the request and remember who sent it."""
    # Each proxy (request, g) is resolved once: this runs on every request.
    req, state = request._get_current_object(), g._get_current_object()
    environ = req.environ
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    # REMOTE_ADDR is the client after ProxyFix has applied the trusted hops; the
    # endpoint's name is the action a refusal's trail line names ("update").
    endpoint = req.endpoint
    state.who = RequestInfo(
        request_id=request_id,
        client=environ.get("REMOTE_ADDR") or "",
        action=endpoint.rpartition(".")[2] if endpoint else "unknown",
    )
    state.started = time.perf_counter()


# Sec-Fetch-Site values a browser sends for a request of the service's own
# origin, or one the user made (typed URL, bookmark).
_OWN_SITE = frozenset({"same-origin", "none"})

#: Who may write, in every cross-site refusal (kept short: a sentence is cut at 300 characters).
CROSS_SITE_HELP = (
    "only the CLI, curl or hvac (no Origin), the service's own page at its listening address, "
    "GENERATE_SHARE_PUBLIC_URL and GENERATE_SHARE_ALLOWED_ORIGINS may write; nothing was changed"
)


def own_origins(environ) -> frozenset[str]:
    """Return the origins of this service's own page at the address this request reached.

    That address is the local end of the connection (the listening address,
    or the interface a wildcard bind answered on), never the Host header:
    under DNS rebinding an attacker's page is "same-origin" with a name that
    points at the service, so an Origin equal to the Host proves nothing. An
    IP literal cannot be rebound, and neither can ``localhost`` on loopback
    (browsers resolve it to loopback themselves). A Unix socket, or the
    in-process test client, has no such address: there only
    GENERATE_SHARE_PUBLIC_URL and GENERATE_SHARE_ALLOWED_ORIGINS name the page.
    """
    sock = environ.get("gunicorn.socket")
    try:
        local = sock.getsockname() if sock is not None else None
    except OSError:  # the connection is already gone
        return frozenset()
    if not isinstance(local, tuple):
        return frozenset()
    try:
        address = ipaddress.ip_address(local[0].split("%")[0])
    except ValueError:
        return frozenset()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener: the browser wrote the IPv4 form
    scheme = environ.get("wsgi.url_scheme", "http")
    port = "" if local[1] == (443 if scheme == "https" else 80) else f":{local[1]}"
    hosts = [f"[{address}]" if address.version == 6 else str(address)]
    if address.is_loopback:
        hosts.append("localhost")
    return frozenset(f"{scheme}://{host}{port}" for host in hosts)


def _refuse_cross_site() -> Response | None:
    """Refuse a write sent by a web page of another origin, before its body is read.

    A page a holder opens could otherwise make the holder's browser POST to
    the service (a simple form POST needs no CORS preflight) from inside the
    holder's network. Browsers name the page's origin in Origin on every
    write (same-origin ones included), and modern ones say Sec-Fetch-Site;
    the CLI, curl and hvac send neither, so they are never affected. The
    service's own page (app/ui/) is accepted at the address the service
    listens on (``own_origins``), at GENERATE_SHARE_PUBLIC_URL behind a
    proxy, and at the origins of GENERATE_SHARE_ALLOWED_ORIGINS; every other
    Origin is refused, one equal to the Host included (DNS rebinding).
    """
    environ = request.environ
    method = environ.get("REQUEST_METHOD", "")
    if method in SAFE_METHODS:
        return None
    origin = environ.get("HTTP_ORIGIN")
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if origin is None:
        if site is None or site in _OWN_SITE:
            return None
        sender = f"a web page of another site (Sec-Fetch-Site: {shorten(site, 20)})"
        return error_response(403, f"this {method} was sent by {sender}; {CROSS_SITE_HELP}")
    lowered = origin.lower()
    settings = get_settings()
    public = settings.public_url  # "" when not set: an empty Origin never matches it
    if (
        lowered in settings.allowed_origins
        or (public and lowered == public)
        or lowered in own_origins(environ)
    ):
        return None
    sender = f"a web page of another origin (Origin: {shorten(origin, 60)})"
    return error_response(403, f"this {method} was sent by {sender}; {CROSS_SITE_HELP}")


def _finish(counts: RequestCounts, response: Response) -> Response:
    """Count the reply, add the headers every reply carries and write the access log line."""
    counts.add(response.status_code)
    # Replies can carry shares: keep them out of every cache, and never let a
    # browser guess another type.
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    state = g._get_current_object()
    started, who = getattr(state, "started", None) or time.perf_counter(), getattr(state, "who", NOBODY)
    headers["X-Request-Id"] = who.request_id
    if access_log.isEnabledFor(logging.INFO):
        req = request._get_current_object()
        environ, path = req.environ, req.path
        if len(path) > MAX_LOGGED_PATH:
            path = shorten(path, MAX_LOGGED_PATH)
        # logs.access, not info(): no stack walk, and no LogRecord when only
        # the service's own handler listens.
        logs.access(
            access_log,
            "request",
            {
                "method": environ.get("REQUEST_METHOD", ""),
                "path": path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_id": who.request_id,
                "client": who.client,
            },
        )
    return response


def register(app: Flask) -> None:
    """Install the hooks."""
    app.before_request(_begin)
    app.before_request(_refuse_cross_site)  # after _begin: the refusal carries a request id
    # The app's counts are bound here, not looked up per request in app.extensions.
    counts = app.extensions.setdefault(REQUEST_COUNTS, RequestCounts())
    app.after_request(partial(_finish, counts))
