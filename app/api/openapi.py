"""The OpenAPI 3 document of the HTTP API, built from the routes and the marshmallow schemas.

``build_spec(app)`` walks ``app.url_map`` (apispec-webframeworks' Flask plugin
assumes one rule per view, and every view here has two: ``/v1/sys`` and the
bare ``/sys``), documents the ``/v1/sys`` rules with apispec's
MarshmallowPlugin, and names the aliases in the description only. What a
field means, and any fact of its JSON form (a pattern, a bound, a type its
class does not give), is in that field's ``metadata``, which the plugin passes
through: this module restates none of it. Each operation's refusals
(app/api/operations.py, in the terms of app/api/contract.py) become example
replies per status.
``make openapi`` (which calls ``main``) rewrites ``docs/openapi.json`` and its
Markdown rendering ``docs/API.md`` (app/api/reference.py); the test suite
compares both with the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from marshmallow import Schema

from . import schemas as s
from .common import SAFE_METHODS
from .contract import CROSS_SITE_ORIGIN, ERROR_TEXT, SHARED_REFUSALS, Operation, Refusal
from .fieldtypes import Base64Bytes, HexBytes
from .lifecycle import CROSS_SITE_HELP
from .operations import OPERATIONS
from .oversight import VERSION
from .reference import render_markdown

__all__ = ["build_spec", "bp", "OPERATIONS", "REFERENCE_PATH", "SPEC_PATH", "render", "render_markdown"]

OPENAPI_VERSION = "3.0.3"
PREFIX = "/v1/sys"  # the bare /sys aliases are named in the description only
SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REFERENCE_PATH = SPEC_PATH.parent / "API.md"  # the same contract as Markdown, from app/api/reference.py
_CACHE = "generate_share_openapi"
_IMPLICIT_METHODS = {"HEAD", "OPTIONS"}

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
- Replies are JSON with `Content-Type: application/json` exactly (except
  `GET /v1/sys/metrics?format=prometheus`, in Prometheus' text format), and
  carry `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
- `GET /v1/sys/health` answers 501 before init and 503 when the data folder
  cannot be written, as Vault's does, with its usual reply.
- Errors are `{"errors": ["..."]}`: 400 for anything the caller can fix
  (including a call that does not fit the current state), 404 for an unknown
  path, 405 for a wrong method, 413 for a body over the configured limit
  (64 KiB by default), 403 for a write from a browser page of another site,
  429 with `Retry-After` for a client's write over its rate limit
  (`GENERATE_SHARE_RATE_LIMIT`, 20 writes a second by default),
  503 when the server could not do its part of a write (nothing was
  changed), 500 only for a fault of the server itself.
- The API has no authentication of its own; see SECURITY.md.
"""


#: The groups of operations, in the order a ceremony meets them.
TAGS = {
    "init": "Create a master key and its shares.",
    "generate_share": "A quorum of holders mints one new share of the key.",
    "adopt": "Bring in a share set that Vault (or OpenBao) split, so that shares of that key can be minted.",
    "oversight": "What every holder and every probe may see, and the custody check of one share.",
    "openapi": "This contract, as an OpenAPI 3 document.",
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
    plugin.map_to_openapi_type(Base64Bytes, "string", "byte")
    plugin.map_to_openapi_type(HexBytes, "string", None)
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
    for status, refusal in SHARED_REFUSALS.items():
        spec.components.response(f"Error{status}", _error_response(status, (refusal,)))


def _examples(refusals: tuple[Refusal, ...]) -> dict:
    """Return OpenAPI example objects, one reply per refusal, named after its case."""
    examples: dict = {}
    for refusal in refusals:
        name = re.sub(r"[^a-z0-9]+", "-", refusal.when.lower()).strip("-")[:48].rstrip("-")
        while name in examples:
            name += "-again"
        examples[name] = {"summary": refusal.when, "value": {"errors": [refusal.sentence]}}
    return examples


def _error_response(status: int, refusals: tuple[Refusal, ...], allow: str = "") -> dict:
    """Return one error response: what the status means, and an example reply per refusal."""
    content = _json("ErrorReply")
    content["application/json"]["examples"] = _examples(refusals)
    headers = _headers()
    if status == 429:
        headers["Retry-After"] = {
            "description": "In how many seconds the client's window ends and its writes are taken again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    if allow:
        headers["Allow"] = {
            "description": f"The methods the path takes: {allow}.",
            "schema": {"type": "string"},
        }
    return {"description": ERROR_TEXT[status], "headers": headers, "content": content}


def cross_site_refusal(method: str) -> Refusal:
    """Return the 403 refusal of a write sent by a web page of another origin."""
    return Refusal(
        "a write from a web page of another origin (an Origin header that is not the service's own "
        "address, GENERATE_SHARE_PUBLIC_URL or in GENERATE_SHARE_ALLOWED_ORIGINS, or "
        "Sec-Fetch-Site: cross-site) is refused",
        f"this {method} was sent by a web page of another origin (Origin: {CROSS_SITE_ORIGIN}); "
        + CROSS_SITE_HELP,
        headers=(("Origin", CROSS_SITE_ORIGIN),),
        status=403,
    )


def method_refusal(path: str, allowed: str) -> Refusal:
    """Return the 405 refusal of a path: its sentence names the methods it takes."""
    return Refusal(
        "a method the path does not take, here PATCH",
        f"PATCH is not allowed on {path}; use {allowed}",
        status=405,
    )


def _schema(name: str) -> type[Schema]:
    """Return the schema class of that name in app.api.schemas."""
    schema = getattr(s, name, None)
    if not (isinstance(schema, type) and issubclass(schema, Schema)):
        raise LookupError(f"OPERATIONS in app/api/operations.py names {name}, which app.api.schemas lacks")
    return schema


def _describe(schemas: dict) -> None:
    """Give every schema without a description of its own its class's docstring."""
    for name, schema in schemas.items():
        cls = getattr(s, name, None)
        if cls is not None and cls.__doc__ and "description" not in schema:
            schema["description"] = cls.__doc__.strip().splitlines()[0]


def _operation(endpoint: str, view, method: str, path: str, allowed: str) -> dict:
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
        ok["content"].update({media: {"schema": dict(schema)} for media, schema in op.other_media.items()})
    if op.links:
        ok["links"] = {k: dict(v) for k, v in op.links.items()}
    operation["responses"] = {"204" if ok.get("content") is None else "200": ok} | _errors(
        op, method, path, allowed
    )
    return operation


def _errors(op: Operation, method: str, path: str, allowed: str) -> dict:
    """Return the error responses of one operation, each with its example replies."""
    own: dict[int, tuple[Refusal, ...]] = {}
    for refusal in op.refusals:
        own[refusal.status] = (*own.get(refusal.status, ()), refusal)
    own[405] = (method_refusal(path, allowed),)
    if method not in SAFE_METHODS:
        own[403] = (cross_site_refusal(method),)
    shared = (
        {404, 500}
        | ({413} if op.request is not None else set())
        | ({429, 503} if method not in SAFE_METHODS else set())  # every write counts against the rate limit
    )
    responses = {}
    for status in sorted(own.keys() | shared):
        if status in own:
            responses[str(status)] = _error_response(status, own[status], allowed if status == 405 else "")
        else:
            responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return responses


def build_spec(app: Flask) -> dict:
    """Return the OpenAPI 3 document of ``app``'s /v1/sys routes as a dict."""
    spec = APISpec(
        title="generate-share",
        version=VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION, "license": {"name": "MPL-2.0"}},
        tags=[{"name": name, "description": text} for name, text in TAGS.items()],
    )
    _add_components(spec)
    rules = sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith(PREFIX + "/")), key=lambda r: r.rule
    )
    allowed: dict[str, set[str]] = {}
    for rule in rules:
        allowed.setdefault(rule.rule, set()).update((rule.methods or set()) - _IMPLICIT_METHODS)
    paths: dict[str, dict] = {}
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        path = paths.setdefault(rule.rule, {})
        methods = ", ".join(sorted(allowed[rule.rule]))
        for method in sorted((rule.methods or set()) - _IMPLICIT_METHODS):
            path[method.lower()] = _operation(rule.endpoint, view, method, rule.rule, methods)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _describe(document["components"]["schemas"])
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
