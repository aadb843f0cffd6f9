"""The OpenAPI document: built from the code, served, and kept in docs/openapi.json without drift."""

import json

import schemathesis

from app.api.openapi import OPERATIONS, SPEC_PATH, build_spec, render

V1 = "/v1/sys"
SKIP = {"HEAD", "OPTIONS"}
WRITES = {"put", "post", "delete"}


def test_docs_openapi_json_is_what_the_code_builds(app):
    assert SPEC_PATH.read_text(encoding="utf-8") == render(build_spec(app)), (
        "docs/openapi.json is out of date: run `make openapi` and commit the result"
    )


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
        if rule.endpoint == "static":
            continue
        path = rule.rule if rule.rule.startswith(V1) else V1 + rule.rule.removeprefix("/sys")
        routes |= {(path, m) for m in rule.methods - SKIP}
        # Each view has a hand-written entry, not the generic fallback.
        assert rule.endpoint.split("_", 1)[1] in OPERATIONS, f"add {rule.endpoint} to OPERATIONS"
    assert documented == routes


def test_every_operation_documents_its_errors_in_vaults_shape(app):
    spec = build_spec(app)
    ids = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            codes = set(op["responses"])
            assert {"404", "405", "500"} <= codes, (method, path)
            assert ("503" in codes) == (method in WRITES), (method, path)
            if "requestBody" in op:
                assert {"400", "413"} <= codes, (method, path)
                assert set(op["requestBody"]["content"]) == {"application/json"}
            assert codes & {"200", "204"}
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert response == {"$ref": f"#/components/responses/Error{code}"}
    assert len(ids) == len(set(ids))
    for name, response in spec["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorReply"
        }
        assert {"Cache-Control", "X-Content-Type-Options"} <= set(response["headers"]), name
    assert "/sys/" in spec["info"]["description"]  # the bare aliases are named there


def test_the_request_quirks_are_in_the_document(app):
    schemas = build_spec(app)["components"]["schemas"]
    update = schemas["UpdateRequest"]
    assert update["required"] == ["key"]
    assert update["properties"]["nonce"]["nullable"] is True
    assert "additionalProperties" not in update  # unknown fields are ignored
    assert schemas["AttemptRequest"]["properties"]["pgp_key"] == {
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
