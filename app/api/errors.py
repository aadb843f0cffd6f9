"""One place that turns every error into Vault's {"errors": [...]} body."""

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..errors import ServiceError
from .common import get_service

__all__ = ["register", "error_response", "bounded", "shorten"]

log = logging.getLogger(__name__)

# Whatever a request sends, its error reply and its audit line stay a few KB:
# at most this many sentences, each at most this long once JSON-encoded (so
# that escapes cannot multiply it), and an audit reason at most this long.
MAX_SENTENCES = 10
MAX_SENTENCE = 300
MAX_REASON = 1024
_CUT = "…"


def shorten(text: str, limit: int) -> str:
    """Return ``text``, shortened with "…" so that its JSON form has at most ``limit`` characters."""
    if len(text) <= limit and len(json.dumps(text)) - 2 <= limit:
        return text  # the common case: one short ASCII sentence
    room = limit - len(json.dumps(_CUT)) + 2
    kept = []
    for char in text:
        # Escapes count: a control character is 6 characters of JSON, an emoji 12.
        room -= len(json.dumps(char)) - 2
        if room < 0:
            break
        kept.append(char)
    return "".join(kept) + _CUT


def bounded(messages) -> list[str]:
    """Return the first sentences of ``messages``, each cut short, and how many more there were."""
    messages = list(messages)
    out = [shorten(m, MAX_SENTENCE) for m in messages[:MAX_SENTENCES]]
    if len(messages) > MAX_SENTENCES:
        more = len(messages) - MAX_SENTENCES
        out.append(f"and {more} more problem{'s' if more > 1 else ''}; fix the ones above and send again")
    return out


def error_response(status: int, *messages: str, headers=None) -> Response:
    """Build an error reply in Vault's shape, bounded in size whatever the messages."""
    return Response(
        json.dumps({"errors": bounded(messages)}),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


WRITES = frozenset({"PUT", "POST", "DELETE"})


def _service_error(exc: ServiceError) -> Response:
    if request.method in WRITES and exc.status < 500 and not exc.audited:
        # Every refused write goes into the audit trail with its reason.
        action = (request.endpoint or "unknown").rpartition(".")[2]
        try:
            get_service().record_refusal(action, shorten(" ".join(bounded(exc.messages)), MAX_REASON))
        except ServiceError as failed:
            return error_response(failed.status, *failed.messages)
    return error_response(exc.status, *exc.messages)


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    if code == 404:
        message = (
            f"no such path: {request.path}; the service answers under /v1/sys/ "
            "(init, generate-share/attempt, generate-share/update, adopt/attempt, adopt/update, "
            "shares, shares/verify, health, metrics, openapi.json)"
        )
    elif code == 405:
        allowed = ", ".join(sorted(m for m in exc.valid_methods or () if m not in ("HEAD", "OPTIONS")))
        message = f"{request.method} is not allowed on {request.path}; use {allowed}"
    elif code == 413:
        limit = request.max_content_length
        message = f"the request body is larger than the limit of {limit} bytes; send a smaller JSON object"
    elif code >= 500:
        log.error("HTTP error %s on %s %s", code, request.method, request.path)
        message = "internal server error; the detail is in the server log"
    else:
        message = exc.description or exc.name
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
    return error_response(code, message, headers=headers)


def _unexpected(exc: Exception) -> Response:
    # The traceback names code and exception types; no message in this code
    # base carries key material, so it is safe to log.
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal server error; the detail is in the server log")


def register(app: Flask) -> None:
    """Install the error handlers."""
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
