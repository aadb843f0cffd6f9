"""The OpenAPI document and the reference: built from the code, served, kept in docs/ without drift.

Every example sentence the document (and so docs/API.md) shows is replayed
here: the documented request goes to the app and the reply must carry the
sentence word for word.
"""

import errno
import json

import marshmallow
import pytest
import schemathesis
from apispec.ext.marshmallow.field_converter import _VALID_PROPERTIES as JSON_SCHEMA_KEYWORDS

from app import create_app, shamir
from app.api import contract, schemas
from app.api.fieldtypes import RequestBody
from app.api.openapi import OPERATIONS, REFERENCE_PATH, SPEC_PATH, build_spec, render, render_markdown
from app.api.reference import HEADER
from helpers import assert_error

# Open mode: the document's examples are replayed without a token, as open mode answers them.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"
SKIP = {"HEAD", "OPTIONS"}
WRITES = {"put", "post", "delete"}


def test_docs_openapi_json_is_what_the_code_builds(app):
    assert SPEC_PATH.read_text(encoding="utf-8") == render(build_spec(app)), (
        "docs/openapi.json is out of date: run `make openapi` and commit the result"
    )


def test_docs_api_md_is_what_the_code_renders(app):
    text = REFERENCE_PATH.read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER  # says it is generated and not to be edited
    assert text == render_markdown(build_spec(app)), (
        "docs/API.md is out of date: run `make openapi` and commit the result"
    )


def test_the_reference_covers_every_endpoint_field_and_error(app):
    spec = build_spec(app)
    text = render_markdown(spec)
    for path, ops in spec["paths"].items():
        assert f"`{path}`" in text
        for op in ops.values():
            for status in op["responses"]:
                assert f"| {status} |" in text or f"Reply `{status}`" in text, (path, status)
    for name, schema in spec["components"]["schemas"].items():
        for prop in schema.get("properties", {}) if name != "ErrorReply" else ():  # the errors column
            assert f"`{prop}`" in text or f".{prop}`" in text, (name, prop)
    # The parts the hand-kept page lacked.
    for part in ("`/v1/sys/adopt/attempt`", "`/v1/sys/adopt/update`", "`/v1/sys/shares/verify`"):
        assert part in text
    for part in ("| `since` |", "| `audit_head` |", "| `audit_head.hash` |", "| `adoption_in_progress` |"):
        assert part in text
    assert "| 403 |" in text


def test_every_field_and_parameter_is_described(app):
    spec = build_spec(app)
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("description"), name
        for prop, definition in schema.get("properties", {}).items():
            assert definition.get("description") or "$ref" in definition, (
                f"{name}.{prop} has no description: give the field metadata={{'description': ...}}"
            )
    for ops in spec["paths"].values():
        for op in ops.values():
            assert all(p.get("description") for p in op.get("parameters", ())), op["operationId"]


def _fields(field):
    """Yield a field and the fields inside it (a list's entries)."""
    yield field
    if isinstance(field, marshmallow.fields.List):
        yield from _fields(field.inner)


def test_every_field_fact_is_the_fields_own(app):
    # One home for each fact: the document says of a field what its metadata
    # says, and app/api/openapi.py adds no table of its own.
    for name, schema in build_spec(app)["components"]["schemas"].items():
        declared = getattr(schemas, name)._declared_fields
        for prop, definition in schema.get("properties", {}).items():
            field = declared[prop]
            for part in _fields(field):
                unknown = set(part.metadata) - JSON_SCHEMA_KEYWORDS
                assert not unknown, f"{name}.{prop}: {unknown} would be left out of the document"
            if "$ref" not in definition:
                assert definition["description"] == field.metadata["description"], (name, prop)


def test_every_optional_request_field_may_be_null(app):
    for name, schema in build_spec(app)["components"]["schemas"].items():
        if not issubclass(getattr(schemas, name), RequestBody):
            continue
        assert schema["description"] == RequestBody.Meta.description, name
        for prop, definition in schema["properties"].items():
            if prop not in schema.get("required", ()):
                branches = [definition, *definition.get("anyOf", ())]
                assert any(b.get("nullable") for b in branches), f"{name}.{prop}: null counts as absent"


def test_the_health_fields_are_the_real_reply(client):
    properties = build_spec(client.application)["components"]["schemas"]["HealthReply"]["properties"]
    assert set(client.get(f"{V1}/health").get_json()) == set(properties)


def test_the_document_is_served_under_both_prefixes(client):
    expected = build_spec(client.application)
    for prefix in (V1, "/sys"):
        r = client.get(f"{prefix}/openapi.json")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.get_json() == expected


def test_every_route_and_verb_is_documented_and_described(app):
    spec = build_spec(app)
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("ui."):
            continue  # the ceremony page is not part of the API
        path = rule.rule if rule.rule.startswith(V1) else V1 + rule.rule.removeprefix("/sys")
        routes |= {(path, m) for m in rule.methods - SKIP}
        # Each view has a hand-written entry, not the generic fallback.
        assert rule.endpoint.split("_", 1)[1] in OPERATIONS, f"add {rule.endpoint} to OPERATIONS"
    assert documented == routes


def _resolve(spec, response):
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def _sentences(spec, response):
    examples = _resolve(spec, response)["content"]["application/json"]["examples"]
    return [s for example in examples.values() for s in example["value"]["errors"]]


def test_every_operation_documents_its_errors_in_vaults_shape(app):
    spec = build_spec(app)
    ids = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            codes = set(op["responses"])
            assert {"404", "405", "500"} <= codes, (method, path)
            assert ("503" in codes) == (method in WRITES), (method, path)
            assert ("403" in codes) == (method in WRITES), (method, path)
            assert ("429" in codes) == (method in WRITES), (method, path)
            if "requestBody" in op:
                assert {"400", "413"} <= codes, (method, path)
                assert set(op["requestBody"]["content"]) == {"application/json"}
            if "parameters" in op:
                assert "400" in codes, (method, path)
            assert codes & {"200", "204"}
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    content = _resolve(spec, response)["content"]["application/json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/ErrorReply"}
                    assert _sentences(spec, response), (method, path, code)  # an example sentence each
    assert len(ids) == len(set(ids))
    for name, response in spec["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorReply"
        }
        assert {"Cache-Control", "X-Content-Type-Options"} <= set(response["headers"]), name
    assert spec["components"]["responses"]["Error429"]["headers"]["Retry-After"]["required"] is True
    assert "/sys/" in spec["info"]["description"]  # the bare aliases are named there


def test_the_request_quirks_are_in_the_document(app):
    schemas = build_spec(app)["components"]["schemas"]
    update = schemas["UpdateRequest"]
    assert update["required"] == ["key"]
    assert update["properties"]["nonce"]["nullable"] is True
    assert "additionalProperties" not in update  # unknown fields are ignored
    # A ShortList says its bound, which it checks before any entry, as maxItems.
    assert schemas["InitRequest"]["properties"]["pgp_keys"]["maxItems"] == 255
    assert schemas["AdoptRequest"]["properties"]["known_indices"]["maxItems"] == 255
    assert schemas["AttemptRequest"]["properties"]["pgp_key"] | {"description": ""} == {
        "description": "",
        "type": "string",
        "format": "byte",
        "default": None,
        "nullable": True,
    }
    assert schemas["StatusReply"]["additionalProperties"] is False


def test_the_links_point_at_real_operations(app):
    spec = build_spec(app)
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    links = [
        link
        for ops in spec["paths"].values()
        for op in ops.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert links and {link["operationId"] for link in links} <= ids


def test_schemathesis_loads_the_document_without_warnings():
    document = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schema = schemathesis.openapi.from_dict(document)
    assert len(list(schema.get_all_operations())) == sum(len(ops) for ops in document["paths"].values())
    assert list(schema.iter_schema_warnings()) == []


# -- every documented sentence is what the service says -------------------

_NONCE = "nonce"


def _routes(app):
    """Map each documented view to its /v1/sys path and the method the test sends."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("v1_"):
            methods = sorted(rule.methods - SKIP)
            routes[rule.endpoint.removeprefix("v1_")] = (rule.rule, "PUT" if "PUT" in methods else methods[0])
    return routes


def _put(client, path, body):
    r = client.put(f"{V1}/{path}", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def _given(client, given: str) -> dict:
    """Bring the service into the documented state; return its shares and nonce."""
    if given == contract.BEFORE_INIT:
        return {"shares": []}
    if given in (contract.ADOPTION, contract.ADOPTION_TWO, contract.SNAPSHOT_ONE):
        shares = [s.hex() for s in shamir.split(bytes(range(32)), 3, 2)]
        if given == contract.SNAPSHOT_ONE:
            nonce = _put(client, "adopt/attempt", {"snapshot": contract.EXAMPLE_SNAPSHOT})["nonce"]
            _put(client, "adopt/update", {"key": shares[0], "nonce": nonce})
            return {"shares": shares, _NONCE: nonce}
        nonce = _put(client, "adopt/attempt", {"secret_threshold": 2, "required": 3})["nonce"]
        if given == contract.ADOPTION_TWO:
            for share in shares[:2]:
                _put(client, "adopt/update", {"key": share, "nonce": nonce})
        return {"shares": shares, _NONCE: nonce}
    if given == contract.UNCHECKED_ONE:
        shares = [s.hex() for s in shamir.split(bytes(range(32)), 5, 2)]
        known = {"known_indices": [bytes.fromhex(shares[4])[-1]]}
        nonce = _put(client, "adopt/attempt", {"secret_threshold": 2, "required": 3, **known})["nonce"]
        for share in shares[:3]:
            _put(client, "adopt/update", {"key": share, "nonce": nonce})
        nonce = _put(client, "generate-share/attempt", {})["nonce"]
        _put(client, "generate-share/update", {"key": shares[0], "nonce": nonce})
        return {"shares": shares, _NONCE: nonce}
    if given == contract.FULL:
        return {
            "shares": _put(client, "init", {"secret_shares": 2, "secret_threshold": 2, "share_limit": 2})[
                "keys"
            ]
        }
    shares = _put(client, "init", {"secret_shares": 5, "secret_threshold": 3})["keys"]
    if given == contract.AFTER_INIT:
        return {"shares": shares}
    nonce = _put(client, "generate-share/attempt", {})["nonce"]
    submitted = {contract.ATTEMPT: 0, contract.ATTEMPT_ONE: 1, contract.ATTEMPT_TWO: 2}[given]
    for share in shares[:submitted]:
        _put(client, "generate-share/update", {"key": share, "nonce": nonce})
    return {"shares": shares, _NONCE: nonce}


def _fill(body, state):
    """Put the real shares where the documented body says <share N>."""
    if isinstance(body, dict):
        return {k: _fill(v, state) for k, v in body.items()}
    if isinstance(body, str) and body.startswith("<share "):
        share = bytearray.fromhex(state["shares"][int(body[7])])
        if body.endswith(", altered>"):
            share[0] ^= 0x5A  # a wrong y at the same x
        return share.hex()
    return body


def _send(client, method, path, refusal, state):
    kwargs = {"query_string": refusal.query, "headers": dict(refusal.headers)}
    if isinstance(refusal.body, str):
        kwargs["data"] = refusal.body
    elif refusal.body is not None:
        kwargs["json"] = _fill(refusal.body, state)
    return client.open(path, method=method, **kwargs)


REFUSALS = [
    pytest.param(name, refusal, id=f"{name}:{refusal.when[:40]}")
    for name, op in OPERATIONS.items()
    for refusal in op.refusals
]


@pytest.mark.parametrize(("name", "refusal"), REFUSALS)
def test_every_documented_refusal_is_what_the_service_says(client, name, refusal):
    path, method = _routes(client.application)[name]
    state = _given(client, refusal.given)
    r = _send(client, method, path, refusal, state)
    sentence = refusal.sentence.replace(contract.EXAMPLE_NONCE, state.get(_NONCE, contract.EXAMPLE_NONCE))
    sent = refusal.body.get("key", "") if isinstance(refusal.body, dict) else ""
    if contract.EXAMPLE_X in sentence and sent.startswith("<share "):
        x = bytes.fromhex(state["shares"][int(sent[7])])[-1]  # the x of the share sent
        sentence = sentence.replace(contract.EXAMPLE_X, f"x = {x};")
    assert_error(r, refusal.status)
    assert sentence in r.get_json()["errors"]


def test_the_documented_405_and_403_sentences_are_what_the_service_says(client):
    spec = build_spec(client.application)
    for path, ops in spec["paths"].items():
        r = client.patch(path)
        assert_error(r, 405)
        for method, op in ops.items():
            assert r.get_json()["errors"] == _sentences(spec, op["responses"]["405"]), path
            if method in WRITES:
                cross = client.open(
                    path, method=method.upper(), headers={"Origin": contract.CROSS_SITE_ORIGIN}
                )
                assert_error(cross, 403)
                assert cross.get_json()["errors"] == _sentences(spec, op["responses"]["403"]), (method, path)


def test_the_shared_404_and_413_sentences_are_what_the_service_says(client):
    for status, request in (
        (404, lambda: client.get(f"{V1}/no-such-path")),
        (413, lambda: client.put(f"{V1}/init", data=contract.SHARED_REFUSALS[413].body)),
    ):
        r = request()
        assert_error(r, status)
        assert r.get_json()["errors"] == [contract.SHARED_REFUSALS[status].sentence]


def test_the_shared_503_sentence_is_what_a_full_disk_gets(app, client, shares, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    store = app.extensions["generate_share_store"]._store  # app.trail.Trail wraps the store
    monkeypatch.setattr(store._trail, "append", full)
    r = client.put(f"{V1}/generate-share/attempt")
    assert_error(r, 503)
    assert r.get_json()["errors"] == [contract.SHARED_REFUSALS[503].sentence]


def test_the_shared_500_sentence_is_what_a_fault_gets(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    service = app.extensions["generate_share"]
    monkeypatch.setattr(service, "health", broken)
    r = client.get(f"{V1}/health")
    assert_error(r, 500)
    assert r.get_json()["errors"] == [contract.SHARED_REFUSALS[500].sentence]


def test_the_shared_429_sentence_is_what_every_write_over_the_limit_gets(tmp_path):
    # The conftest turns the limit off; this app has the one the example names.
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "RATE_LIMIT": contract.RATE_LIMIT_EXAMPLE})
    try:
        client = app.test_client()
        spec = build_spec(app)
        assert client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).status_code == 200
        writes = [(path, method) for path, ops in spec["paths"].items() for method in ops if method in WRITES]
        assert len(writes) >= 8
        for path, method in writes:
            r = client.open(path, method=method.upper(), json={})
            assert_error(r, 429)
            assert r.get_json()["errors"] == _sentences(spec, spec["paths"][path][method]["responses"]["429"])
            assert r.get_json()["errors"] == [contract.SHARED_REFUSALS[429].sentence]
            assert 1 <= int(r.headers["Retry-After"]) <= 60
        # Reads are never limited.
        assert client.get(f"{V1}/health").status_code == 200
    finally:
        app.extensions["generate_share_store"].close()
