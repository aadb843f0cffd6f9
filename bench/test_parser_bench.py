"""Bodies built to be slow to parse, against a small one: nesting and huge numbers must cost no more.

Run with ``pytest bench --benchmark-only`` (``make bench``); these are not part of
``make test`` and assert outcomes only, never times. Compare each group's rows:
a 60 KiB hostile body should cost about what reading 60 KiB costs, not more.
"""

import pytest

from app import create_app
from app.api.common import load_body
from app.api.schemas import UpdateRequest
from app.errors import BadRequest

UPDATE = "/v1/sys/generate-share/update"
SIZE = 60 * 1024

BODIES = {
    "small": b'{"key": "not a share", "nonce": "00000000-0000-4000-8000-000000000000"}',
    "nested-arrays-60k": b"[" * (SIZE // 2) + b"]" * (SIZE // 2),
    "nested-objects-60k": b'{"a":' * (SIZE // 6) + b"1" + b"}" * (SIZE // 6),
    "digits-60k": b'{"key": ' + b"9" * (SIZE - 10) + b"}",
    "exponent": b'{"key": 1e999999999}',
    "fraction-60k": b'{"key": 0.' + b"1" * (SIZE - 12) + b"}",
    "escapes-60k": b'{"key": "' + b"\\u0000" * (SIZE // 6 - 2) + b'"}',
    "many-keys-60k": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(SIZE // 14)) + b"}",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """An initialized app with an attempt in progress, so update parses its body."""
    # The rate limit off: the benchmark sends thousands of refused writes a second.
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("bench") / "data"), "RATE_LIMIT": "off"})
    client = app.test_client()
    reply = client.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2})
    assert reply.status_code == 200
    lead = {"X-Vault-Token": reply.get_json()["root_token"]}  # token mode, the default
    assert client.put("/v1/sys/generate-share/attempt", headers=lead).status_code == 200
    yield app
    app.extensions["generate_share_store"].close()


@pytest.mark.parametrize("name", list(BODIES))
def test_parse_alone(benchmark, app, name):
    """Time load_body on one body in a request context: the parser and the schema, nothing else."""
    body = BODIES[name]
    assert len(body) <= 64 * 1024
    schema = UpdateRequest()
    benchmark.group = "load_body"

    def parse() -> str:
        """Parse the body once; return how it was refused."""
        with app.test_request_context(UPDATE, method="PUT", data=body, content_type="application/json"):
            try:
                load_body(schema)
            except BadRequest as exc:
                return exc.messages[0]
        return "accepted"

    assert benchmark(parse) != "accepted" or name == "small"


@pytest.mark.parametrize("name", list(BODIES))
def test_through_the_test_client(benchmark, app, name):
    """Time a whole PUT of one body through the Flask test client (every answer is a 400)."""
    client = app.test_client()
    body = BODIES[name]
    benchmark.group = "PUT " + UPDATE

    def put() -> int:
        """Send the body once; return the status."""
        return client.put(UPDATE, data=body, content_type="application/json").status_code

    assert benchmark(put) == 400
