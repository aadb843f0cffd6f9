"""What every route needs: the service, a parsed body, a JSON reply."""

import json

from flask import Response, current_app, request
from marshmallow import Schema, ValidationError

from ..errors import BadRequest
from ..service import GenerateShareService

__all__ = ["get_service", "load_body", "reply"]

EXTENSION = "generate_share"


def get_service() -> GenerateShareService:
    """Return the service of the running app."""
    return current_app.extensions[EXTENSION]


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_body(schema: Schema) -> dict:
    """Parse the request body as JSON (empty counts as {}) and load it with ``schema``."""
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if raw.strip():
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise BadRequest(
                'the request body is not valid JSON; send a JSON object such as {"key": "..."}'
            ) from None
    else:
        data = {}
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise BadRequest(*_sentences(exc.messages)) from None


def _sentences(messages) -> list[str]:
    """Flatten marshmallow's nested messages into a list of sentences."""
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            for sentence in _sentences(value):
                out.append(sentence if isinstance(key, str) else f"entry {key}: {sentence}")
        return out
    return [s for m in messages for s in _sentences(m)]


def reply(schema: Schema, obj, status: int = 200) -> Response:
    """Dump ``obj`` with ``schema`` as a JSON response."""
    return current_app.response_class(
        json.dumps(schema.dump(obj)), status=status, mimetype="application/json"
    )
