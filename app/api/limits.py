"""The per-client rate limit on writes: Flask-Limiter, in memory, keyed by the client ProxyFix leaves.

Only writes (any method but GET, HEAD, OPTIONS and TRACE) are counted and
limited. A write is what costs the service's disk (every refusal is audited,
coalesced; an accepted write is a line of its own) and its lock; a GET costs
a little CPU and writes nothing, and limiting reads would turn away health
probes and holders watching an attempt from behind one address. A flood of
reads is for the reverse proxy to limit (SECURITY.md).

A client over the limit gets a 429 in Vault's shape, with ``Retry-After`` in
seconds, and the refusal is audited as every refused write is (coalesced by
app/refusals.py into a line a second).
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many

from ..errors import ServiceError
from .common import get_service
from .errors import error_response

__all__ = ["DEFAULT", "LIMITER", "check", "register"]

#: A client's writes per second before 429s: far above a ceremony (a handful of writes per
#: holder, each after a health GET), far below what a loop of refusals sends.
DEFAULT = "20/second"
#: Where the app keeps its Limiter.
LIMITER = "generate_share_limiter"
_OFF = frozenset({"0", "off", "none", "false", "no"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_HELP = (
    "GENERATE_SHARE_RATE_LIMIT must be a rate such as 20/second or 20 per second;100/minute "
    "(writes per client), or off to disable it"
)


def check(value) -> str | None:
    """Return the limit as Flask-Limiter takes it, None when disabled; ValueError names the variable."""
    if value is None or value is False or (type(value) is int and value == 0):
        return None  # from_prefixed_env reads "0" and "false" as JSON
    if not isinstance(value, str):
        raise ValueError(_HELP)
    text = value.strip()
    if text.lower() in _OFF:
        return None
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(f"{_HELP}; {text!r} is not one") from None
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{_HELP}; {text!r} is not one")
    return text


def _client() -> str:
    """Return the client the limit counts: the address after the trusted proxies (ProxyFix)."""
    return request.remote_addr or "local"  # a Unix socket has no address: one client


def _exempt() -> bool:
    """Tell whether this request is a read, never limited."""
    return request.method in _SAFE


def _too_many(limiter: Limiter, spec: str, exc: RateLimitExceeded) -> Response:
    """Answer 429 with Retry-After, and audit the refusal (coalesced)."""
    current = limiter.current_limit
    wait = max(1, math.ceil(current.reset_at - time.time())) if current is not None else 1
    message = (
        f"too many writes from this client (the limit is {spec}); nothing was changed: "
        "wait for the seconds Retry-After says, then send again"
    )
    action = (request.endpoint or "unknown").rpartition(".")[2]
    try:
        get_service().record_refusal(action, message)
    except ServiceError as failed:
        return error_response(failed.status, *failed.messages)
    return error_response(429, message, headers={"Retry-After": str(wait)})


def register(app: Flask) -> None:
    """Limit each client's writes to GENERATE_SHARE_RATE_LIMIT (checked by create_app), if set."""
    spec = app.config["RATE_LIMIT"]
    if spec is None:
        return
    # Each breach is audited (coalesced); a log line per 429 would be the flood's own disk.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    limiter = Limiter(
        _client,
        application_limits=[spec],
        application_limits_exempt_when=_exempt,
        storage_uri="memory://",
        strategy="fixed-window",
        headers_enabled=False,
        key_prefix="generate-share",
    )
    # Reads skip the limiter before it resolves any limit (exempt_when alone is checked
    # only after that work, a millisecond a request).
    limiter.request_filter(_exempt)
    limiter.init_app(app)
    app.extensions[LIMITER] = limiter
    app.register_error_handler(RateLimitExceeded, partial(_too_many, limiter, spec))
