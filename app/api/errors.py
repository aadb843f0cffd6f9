"""One place that turns every error into Vault's {"errors": [...]} body (it writes nothing to the trail)."""

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..errors import MAX_SENTENCE, MAX_SENTENCES, ServiceError, bounded, shorten

__all__ = ["MAX_SENTENCE", "MAX_SENTENCES", "register", "error_response", "bounded", "shorten"]

log = logging.getLogger(__name__)


def error_response(status: int, *messages: str, headers=None) -> Response:
    """Build an error reply in Vault's shape, bounded in size whatever the messages."""
    return Response(
        json.dumps({"errors": bounded(messages)}),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def _service_error(exc: ServiceError) -> Response:
    # Only the reply: the service wrote the refusal to the trail where it refused.
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
