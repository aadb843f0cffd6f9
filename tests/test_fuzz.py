"""schemathesis against the real gunicorn: every reply matches the OpenAPI document, none is a 5xx.

The document is docs/openapi.json, which test_openapi.py keeps equal to the
code and to what the server serves. (It is loaded at import, not through
``schemathesis.pytest.from_fixture``: that loader sets ``node._nodeid``, which
pytest 9.2 no longer has.) The operation tests run against a server holding a
2-of-3 key with an attempt in progress, so attempt and update get past "not
initialized". Each scenario of the stateful test gets its own server over an
empty folder (a scenario must replay the same way for hypothesis) and follows
the document's links from init to attempt to update. FUZZ_EXAMPLES and
FUZZ_SCENARIOS raise the bounds for a deeper run outside the suite.
"""

import base64
import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.core import NOT_SET

from app.api.openapi import SPEC_PATH
from server import Server

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_SCENARIOS", "25"))
STATEFUL_STEPS = 8

# positive_data_acceptance expects 2xx for every body that fits the document;
# here a well-formed body is refused whenever the state says so (a second init,
# an update without an attempt, a base64 string that is not a PGP key), and the
# contract answers those with 400 by design.
EXCLUDED_CHECKS = ["positive_data_acceptance"]
# Invalid data must be refused; a generated body past the 64 KiB limit is
# refused with the 413 the document lists, before its content is read.
REJECTION_STATUSES = [*NegativeDataRejectionConfig().expected_statuses, "413"]


def _start(tmp_path_factory, name: str) -> Server:
    """Start gunicorn on a free port over a fresh data folder, in open mode."""
    folder = tmp_path_factory.mktemp(name)
    # Open: the generated requests carry no X-Vault-Token, and in token mode every
    # write would stop at the same 403 before reaching what the schema describes.
    env = {"GENERATE_SHARE_CEREMONY_AUTH": "open"}
    return Server(folder / "data", folder / "gunicorn.log", env=env).start()


def _load(*, phases: list[str], base_url: str | None = None):
    """Load docs/openapi.json, bounded for the test suite."""
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    schema.config.update(request_timeout=30)
    if base_url is not None:
        schema.config.update(base_url=base_url)
    schema.config.generation.update(max_examples=MAX_EXAMPLES)
    schema.config.phases.update(phases=phases)
    schema.config.checks.update(excluded_check_names=EXCLUDED_CHECKS)
    schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=REJECTION_STATUSES
    )
    return schema


@pytest.fixture(scope="module")
def initialized_server(tmp_path_factory):
    """A server with a 2-of-3 key and an attempt in progress."""
    server = _start(tmp_path_factory, "fuzz")
    try:
        r = server.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2})
        assert r.status_code == 200, r.text
        assert server.put("/v1/sys/generate-share/attempt").status_code == 200
        yield server
    finally:
        server.stop()
        server.kill()
    assert "Traceback" not in server.output()


schema = _load(phases=["examples", "coverage", "fuzzing"])


@schema.parametrize()
def test_every_operation_keeps_to_the_document(case, initialized_server):
    """Send generated valid and invalid requests; check status, type, headers and body."""
    case.call_and_validate(base_url=initialized_server.url)


def test_the_ceremony_links_keep_to_the_document(tmp_path_factory):
    """Walk init -> attempt -> update through the document's links, each scenario on a fresh server."""
    folder = tmp_path_factory.mktemp("stateful")
    servers: list[Server] = []

    class FreshServer(_load(phases=["stateful"]).as_state_machine()):
        """Give every scenario its own gunicorn over an empty data folder, so it can be replayed."""

        def setup(self):
            """Start the scenario's server."""
            n = len(servers)
            self.server = Server(folder / f"data{n}", folder / f"gunicorn{n}.log").start()
            servers.append(self.server)

        def teardown(self):
            """Stop the scenario's server."""
            self.server.kill()
            super().teardown()

        def get_call_kwargs(self, case):
            """Send every call to the scenario's server."""
            return {"base_url": self.server.url}

    FreshServer.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    assert servers
    for server in servers:
        assert "Traceback" not in server.output()


def test_a_whole_ceremony_keeps_to_the_document(tmp_path_factory, keyring):
    """Run init, a PGP attempt and a quorum of updates; every reply must match the document."""
    spec = _load(phases=["examples"])
    server = _start(tmp_path_factory, "ceremony")
    try:

        def call(path: str, method: str, body=NOT_SET):
            """Make one documented call and validate its reply."""
            case = spec[path][method].Case() if body is NOT_SET else spec[path][method].Case(body=body)
            response = case.call_and_validate(base_url=server.url)
            return response.json() if response.content else None

        keys = call("/v1/sys/init", "PUT", {"secret_shares": 3, "secret_threshold": 2})["keys"]
        pgp_key = base64.b64encode(keyring.public_binary(keyring.ECC)).decode()
        nonce = call("/v1/sys/generate-share/attempt", "PUT", {"pgp_key": pgp_key})["nonce"]
        first = call("/v1/sys/generate-share/update", "POST", {"key": keys[0], "nonce": nonce})
        assert first["progress"] == 1
        done = call("/v1/sys/generate-share/update", "PUT", {"key": keys[1], "nonce": nonce})
        assert done["complete"] is True and done["pgp_fingerprint"] == keyring.fingerprint(keyring.ECC)
        assert len(keyring.decrypt(base64.b64decode(done["key_base64"]))) == 33
        assert call("/v1/sys/shares", "GET")["issued"] == 4
        call("/v1/sys/generate-share/attempt", "POST")
        call("/v1/sys/generate-share/attempt", "GET")
        assert call("/v1/sys/generate-share/attempt", "DELETE") is None
        call("/v1/sys/health", "GET")
        call("/v1/sys/init", "GET")
    finally:
        server.stop()
        server.kill()
    assert "Traceback" not in server.output()
