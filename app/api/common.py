"""What every route needs: the service, a parsed body, a JSON reply."""

import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Response, abort, current_app, g, request
from gunicorn.http.errors import ParseException
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from ..audit import NOBODY, RequestInfo
from ..config import Settings
from ..errors import BadRequest, Forbidden, ServiceError
from ..service import GenerateShareService
from ..token import HEADERS_HELP, MAX_TOKEN

__all__ = [
    "SAFE_METHODS",
    "get_service",
    "get_settings",
    "lead_token",
    "load_body",
    "no_content",
    "operator_token",
    "refusing",
    "reply",
    "sentences",
    "who",
]

# Methods that change nothing; every other method may be a write.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

EXTENSION = "generate_share"
SETTINGS = "generate_share_settings"


def get_service() -> GenerateShareService:
    """Return the service of the running app."""
    return current_app.extensions[EXTENSION]


def get_settings() -> Settings:
    """Return the running app's settings (app/config.py)."""
    return current_app.extensions[SETTINGS]


def who() -> RequestInfo:
    """Return who sent this request (app.api.lifecycle names it), to pass with every service call."""
    return g.get("who", NOBODY)


@contextmanager
def refusing() -> Iterator[None]:
    """Have the service write a write this layer refuses itself (its body, its token header) to the trail.

    The service writes the refusals of its own calls; this layer only reads
    bodies and headers, and says so once here.
    """
    try:
        yield
    except ServiceError as exc:
        if request.method not in SAFE_METHODS and exc.status < 500:
            get_service().record_refusal(who(), exc.messages)
        raise


def _token_form(value: str, header: str) -> str:
    """Return a header's token if it has a token's form; never repeat it in a refusal."""
    # WSGI hands header bytes over as latin-1: anything past ASCII shows up here.
    if len(value) > MAX_TOKEN or not all("!" <= c <= "~" for c in value):
        raise Forbidden(
            f"permission denied: the token in {header} is not an operator token: it must be the "
            f"root_token as init returned it, at most {MAX_TOKEN} visible ASCII characters"
        )
    return value


def operator_token() -> str | None:
    """Return the operator token the request carries, None without one; refuse a malformed one.

    Accepted as ``X-Vault-Token: <token>`` (what hvac sends) or
    ``Authorization: Bearer <token>`` (the scheme name in any case, as HTTP
    says); both may be sent if they agree.
    """
    environ = request.environ
    vault = environ.get("HTTP_X_VAULT_TOKEN", "").strip()
    bearer = environ.get("HTTP_AUTHORIZATION", "").strip()
    found = _token_form(vault, "X-Vault-Token") if vault else None
    if bearer:
        scheme, _, rest = bearer.partition(" ")
        rest = rest.strip()
        if scheme.lower() != "bearer" or not rest:
            raise Forbidden(
                f"permission denied: the Authorization header must be 'Bearer <token>' with the "
                f"operator token; send it as {HEADERS_HELP}"
            )
        token = _token_form(rest, "Authorization")
        if found is not None and not hmac.compare_digest(found.encode(), token.encode()):
            raise Forbidden(
                "permission denied: X-Vault-Token and Authorization carry different tokens; "
                "send the operator token in one of them"
            )
        found = token
    return found


def lead_token() -> str | None:
    """Return the request's operator token in token mode; open mode ignores the headers."""
    environ = request.environ
    if get_service().ceremony_auth != "token" or not (
        "HTTP_X_VAULT_TOKEN" in environ or "HTTP_AUTHORIZATION" in environ
    ):
        return None  # most reads carry no token: no refusal to prepare for
    with refusing():
        return operator_token()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_body(schema: Schema) -> dict:
    """Parse the request body as JSON (empty counts as {}) and load it with ``schema``; audit a refusal."""
    with refusing():
        return _load_body(schema)


def _load_body(schema: Schema) -> dict:
    try:
        raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    except HTTPException:
        raise
    except (ParseException, OSError):
        # The server's body reader refused the framing (gunicorn raises its own
        # parse errors, such as a chunk shorter than its declared size, from
        # wsgi.input; NoMoreData is an OSError): the client's fault, never a 500.
        raise BadRequest(
            "the request body could not be read: its chunked framing is malformed; "
            "send the JSON body with a Content-Length header"
        ) from None
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut at the limit without an error;
        # if more follows, refuse it whole instead of parsing a truncated body.
        if request.environ["wsgi.input"].read(1):
            abort(413)
    if raw.strip():
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
            # A lone surrogate ("\ud800") is no text: refuse it here (UnicodeEncodeError
            # is a ValueError) rather than fail with a 500 wherever a string is encoded.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):
            raise BadRequest(
                'the request body is not valid JSON; send a JSON object such as {"key": "..."}'
            ) from None
    else:
        data = {}
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise BadRequest(*sentences(exc.messages)) from None


def sentences(messages, where: str = "") -> list[str]:
    """Flatten marshmallow's nested messages into sentences, naming list entries."""
    if isinstance(messages, str):
        return [f"{where}: {messages}" if where else messages]
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            if isinstance(key, int):  # an entry of a list: "pgp_keys[2]"
                out += sentences(value, f"{where}[{key}]")
            elif isinstance(value, dict):  # a list field's entries
                out += sentences(value, key)
            else:  # a field's own sentences name it already
                out += sentences(value, where)
        return out
    return [s for m in messages for s in sentences(m, where)]


def reply(schema: Schema, obj, status: int = 200) -> Response:
    """Dump ``obj`` with ``schema`` as a JSON response."""
    return current_app.response_class(
        json.dumps(schema.dump(obj)), status=status, mimetype="application/json"
    )


def no_content() -> Response:
    """Answer 204 with no body, and so no Content-Type."""
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response
