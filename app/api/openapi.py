"""The OpenAPI 3 document of the HTTP API, built from the routes and the marshmallow schemas.

``build_spec(app)`` walks ``app.url_map`` (apispec-webframeworks' Flask plugin
assumes one rule per view, and every view here has two: ``/v1/sys`` and the
bare ``/sys``), documents the ``/v1/sys`` rules with apispec's
MarshmallowPlugin, and names the aliases in the description only. The copy in
``docs/openapi.json`` is rewritten by ``make openapi`` (which calls ``main``)
and compared with the code by the test suite.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from marshmallow import Schema

from . import schemas as s
from .oversight import VERSION

__all__ = ["build_spec", "bp", "OPERATIONS", "render", "main"]

OPENAPI_VERSION = "3.0.3"
PREFIX = "/v1/sys"  # the bare /sys aliases are named in the description only
SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
_CACHE = "generate_share_openapi"
_IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
_WRITES = {"PUT", "POST", "DELETE"}

bp = Blueprint("openapi", __name__)

DESCRIPTION = """\
Mint one new Shamir share of an existing master key, with a quorum and in full view.

The service speaks HashiCorp Vault's `sys/` dialect. Every path below also
answers under the bare `/sys/...` prefix (for example `/sys/init`) with the
same behaviour; only the `/v1/sys/...` spelling is listed here.

Conventions for every operation:

- `PUT` and `POST` are the same verb wherever a write is accepted.
- A request body is a JSON object; an empty body counts as `{}`. Fields an
  operation does not know are ignored, and a known field that is `null`
  counts as absent. The body is read as JSON whatever its Content-Type.
- Replies are JSON with `Content-Type: application/json` exactly, and carry
  `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
- Errors are `{"errors": ["..."]}`: 400 for anything the caller can fix
  (including a call that does not fit the current state), 404 for an unknown
  path, 405 for a wrong method, 413 for a body over the configured limit
  (64 KiB by default), 503 when the server could not do its part of a write
  (nothing was changed), 500 only for a fault of the server itself.
- The API has no authentication of its own; see SECURITY.md.
"""


@dataclass(frozen=True)
class Operation:
    """What one view takes and gives, beyond what its route says.

    Schemas are named (classes of ``app.api.schemas``), so that a renamed
    schema breaks this document and its test, not the import of the app.
    """

    reply: str | dict | None  # a schema name, an inline JSON Schema, or None: 204 with no body
    request: str | None = None
    query: str | None = None
    body_required: bool = False
    errors: tuple[int, ...] = (400,)
    description: str = ""
    links: Mapping[str, Mapping] = field(default_factory=dict)


# OpenAPI links between the ceremony's steps, for readers and for
# schemathesis's stateful tests: init hands out shares, an attempt hands out
# the nonce, and every update reply carries the nonce on to the next update.
_INIT_LINKS = {
    "StartAttempt": {"operationId": "start_attempt_put"},
    "SubmitFirstShare": {"operationId": "update_put", "requestBody": {"key": "$response.body#/keys/0"}},
    "SubmitSecondShare": {"operationId": "update_put", "requestBody": {"key": "$response.body#/keys/1"}},
    "VerifyCustody": {"operationId": "verify_custody_put", "requestBody": {"key": "$response.body#/keys/0"}},
}
_NONCE_LINKS = {
    "SubmitShareWithNonce": {"operationId": "update_put", "requestBody": {"nonce": "$response.body#/nonce"}},
    "ReadAttempt": {"operationId": "read_attempt_get"},
    "CancelAttempt": {"operationId": "cancel_attempt_delete"},
}
_ADOPTION_LINKS = {
    "AdoptShareWithNonce": {
        "operationId": "adopt_update_put",
        "requestBody": {"nonce": "$response.body#/nonce"},
    },
    "ReadAdoption": {"operationId": "read_adoption_get"},
    "CancelAdoption": {"operationId": "cancel_adoption_delete"},
}
_STATE_400 = "400 also when the call does not fit the current state (for example before init)."

#: Every view, by "<blueprint>.<function>"; a view missing here is still
#: documented, as a reply of any JSON object, and a test fails until it is added.
OPERATIONS: dict[str, Operation] = {
    "init.read_init": Operation(reply="InitStatusReply", errors=()),
    "init.initialize": Operation(
        reply="InitReply",
        request="InitRequest",
        body_required=True,
        description="400 also when secret_threshold exceeds secret_shares, when pgp_keys does not "
        "have one key per share or a key cannot encrypt, and when the service is already initialized.",
        links=_INIT_LINKS,
    ),
    "generate_share.read_attempt": Operation(reply="StatusReply", description=_STATE_400, links=_NONCE_LINKS),
    "generate_share.start_attempt": Operation(
        reply="StatusReply",
        request="AttemptRequest",
        description="400 also before init, while another attempt is in progress, when pgp_key is not "
        "one public key able to encrypt, and when no further share may be issued.",
        links=_NONCE_LINKS,
    ),
    "generate_share.cancel_attempt": Operation(
        reply=None, errors=(), description="204 also when no attempt was in progress."
    ),
    "generate_share.update": Operation(
        reply="StatusReply",
        request="UpdateRequest",
        body_required=True,
        description="400 also before init, without an attempt, for a nonce that differs from the "
        "attempt's (or a missing one when the server requires it), for a share that does not decode "
        "to the key's length, for a share or x already submitted, and when the quorum's shares do "
        "not reconstruct the master key (progress then returns to 0). At the threshold the reply has "
        "complete = true and key / key_base64 = the new share, or the OpenPGP message that encrypts it.",
        links={"SubmitNextShare": _NONCE_LINKS["SubmitShareWithNonce"]},
    ),
    "adopt.read_adoption": Operation(reply="AdoptionStatusReply", description=_STATE_400),
    "adopt.start_adoption": Operation(
        reply="AdoptionStatusReply",
        request="AdoptRequest",
        body_required=True,
        description=_STATE_400,
        links=_ADOPTION_LINKS,
    ),
    "adopt.cancel_adoption": Operation(
        reply=None, errors=(), description="204 also when no adoption was in progress."
    ),
    "adopt.adopt_update": Operation(
        reply="AdoptionStatusReply",
        request="UpdateRequest",
        body_required=True,
        description=_STATE_400,
        links={"AdoptNextShare": _ADOPTION_LINKS["AdoptShareWithNonce"]},
    ),
    "oversight.registry": Operation(reply="SharesReply", query="SharesQuery", description=_STATE_400),
    "oversight.verify_custody": Operation(
        reply="CustodyReply", request="VerifyRequest", body_required=True, description=_STATE_400
    ),
    "oversight.health": Operation(reply="HealthReply", errors=()),
    "openapi.document": Operation(reply={"type": "object"}, errors=()),
}

_ERROR_TEXT = {
    400: "The caller can fix the request: bad JSON, a wrong type or value, or a call that does "
    "not fit the current state. Nothing was changed.",
    404: "No such path (the answer to any unknown path under the prefix).",
    405: "The path does not take this method; the Allow header lists those it takes.",
    413: "The request body is larger than the configured limit (GENERATE_SHARE_MAX_CONTENT_LENGTH).",
    500: "A fault of the server itself; the detail is in the server log.",
    503: "The server could not do its part (disk, gpg); nothing was changed or issued.",
}

# Fields the MarshmallowPlugin cannot know from the field classes alone.
_PROPERTY_FIXES = {
    ("StatusReply", "key"): {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
    ("StatusReply", "key_base64"): {"type": "string", "format": "byte"},
    ("StatusReply", "progress"): {"type": "integer", "minimum": 0},
    ("InitReply", "keys"): {"type": "array", "items": {"type": "string", "pattern": "^([0-9a-f]{2})+$"}},
    ("InitReply", "keys_base64"): {"type": "array", "items": {"type": "string", "format": "byte"}},
    ("ErrorReply", "errors"): {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
}


def _headers() -> dict:
    """Return the headers every reply carries, as OpenAPI header objects."""
    return {
        "Cache-Control": {"$ref": "#/components/headers/CacheControl"},
        "X-Content-Type-Options": {"$ref": "#/components/headers/NoSniff"},
    }


def _json(schema_ref: str | dict) -> dict:
    """Return an OpenAPI content map of one application/json schema."""
    schema = {"$ref": f"#/components/schemas/{schema_ref}"} if isinstance(schema_ref, str) else schema_ref
    return {"application/json": {"schema": schema}}


def _add_components(spec: APISpec) -> None:
    """Register every schema, the shared headers and the error responses."""
    plugin = next(p for p in spec.plugins if isinstance(p, MarshmallowPlugin))
    plugin.map_to_openapi_type(s.Base64Bytes, "string", "byte")
    plugin.map_to_openapi_type(s.HexBytes, "string", None)
    names = {"ErrorReply"} | {
        name for op in OPERATIONS.values() for name in (op.reply, op.request) if isinstance(name, str)
    }
    for name in sorted(names):
        spec.components.schema(name, schema=_schema(name))
    spec.components.header(
        "CacheControl",
        {
            "description": "Replies (some carry shares) stay out of every cache.",
            "required": True,
            "schema": {"type": "string", "enum": ["no-store"]},
        },
    )
    spec.components.header(
        "NoSniff",
        {
            "description": "Browsers must not guess another content type.",
            "required": True,
            "schema": {"type": "string", "enum": ["nosniff"]},
        },
    )
    for status, text in _ERROR_TEXT.items():
        response = {"description": text, "headers": _headers(), "content": _json("ErrorReply")}
        if status == 405:
            response["headers"] = {
                **_headers(),
                "Allow": {"description": "The methods the path takes.", "schema": {"type": "string"}},
            }
        spec.components.response(f"Error{status}", response)


def _schema(name: str) -> type[Schema]:
    """Return the schema class of that name in app.api.schemas."""
    schema = getattr(s, name, None)
    if not (isinstance(schema, type) and issubclass(schema, Schema)):
        raise LookupError(f"OPERATIONS in app/api/openapi.py names {name}, which app.api.schemas lacks")
    return schema


def _fix_schemas(schemas: dict) -> None:
    """Write into the schemas what the request contract adds to marshmallow's view."""
    for (name, prop), value in _PROPERTY_FIXES.items():
        if prop in schemas.get(name, {}).get("properties", {}):
            schemas[name]["properties"][prop] = value
    for name, schema in schemas.items():
        cls = getattr(s, name, None)
        if not (isinstance(cls, type) and issubclass(cls, s.Request)):
            continue
        required = set(schema.get("required", ()))
        for prop, definition in schema["properties"].items():
            if prop not in required:
                definition["nullable"] = True  # null counts as absent
        schema["description"] = (
            f"{schema.get('description', '')} Unknown fields are ignored; a null field counts as absent."
        ).strip()


def _operation(endpoint: str, view, method: str) -> dict:
    """Return the OpenAPI operation of one view and method."""
    key = endpoint.split(".", 1)[1] if "." in endpoint else endpoint
    blueprint = endpoint.split(".", 1)[0].split("_", 1)[1] if "." in endpoint else ""
    name = f"{blueprint}.{key}" if blueprint else key
    op = OPERATIONS.get(name, Operation(reply={"type": "object"}))
    summary = (view.__doc__ or key).strip().splitlines()[0]
    operation: dict = {
        "operationId": f"{key}_{method.lower()}",
        "summary": summary,
        "tags": [blueprint or "other"],
    }
    if op.description:
        operation["description"] = op.description
    if op.query is not None:
        operation["parameters"] = [{"in": "query", "schema": _schema(op.query)}]
    if op.request is not None:
        operation["requestBody"] = {
            "required": op.body_required,
            "description": "A JSON object; an empty body counts as {}.",
            "content": _json(op.request),
        }
    ok = {"description": summary, "headers": _headers()}
    if op.reply is not None:
        ok["content"] = _json(op.reply)
    if op.links:
        ok["links"] = {k: dict(v) for k, v in op.links.items()}
    statuses = set(op.errors) | {404, 405, 500}
    if op.request is not None:
        statuses |= {400, 413}
    if op.query is not None:
        statuses.add(400)
    if method in _WRITES:
        statuses.add(503)
    responses = {"204" if ok.get("content") is None else "200": ok}
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    operation["responses"] = responses
    return operation


def build_spec(app: Flask) -> dict:
    """Return the OpenAPI 3 document of ``app``'s /v1/sys routes as a dict."""
    spec = APISpec(
        title="generate-share",
        version=VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION, "license": {"name": "MPL-2.0"}},
    )
    _add_components(spec)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        view = app.view_functions[rule.endpoint]
        path = paths.setdefault(rule.rule, {})
        for method in sorted((rule.methods or set()) - _IMPLICIT_METHODS):
            path[method.lower()] = _operation(rule.endpoint, view, method)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _fix_schemas(document["components"]["schemas"])
    return document


def render(document: dict) -> str:
    """Return the document as the text of docs/openapi.json."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@bp.get("/openapi.json")
def document():
    """Serve the OpenAPI 3 document of this API."""
    app = current_app._get_current_object()
    if _CACHE not in app.extensions:
        app.extensions[_CACHE] = build_spec(app)
    return app.response_class(json.dumps(app.extensions[_CACHE]), mimetype="application/json")


def main(argv: list[str] | None = None) -> int:
    """Write docs/openapi.json (or the path given) from the code."""
    import tempfile

    from .. import create_app

    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SPEC_PATH
    with tempfile.TemporaryDirectory() as data:
        app = create_app({"DATA_DIR": data})
        try:
            text = render(build_spec(app))
        finally:
            app.extensions["generate_share_store"].close()
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0
