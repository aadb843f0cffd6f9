"""Fixtures shared by the whole test suite."""

from collections.abc import Iterator

import pytest

import app as app_package
from app import create_app
from gpgtools import Keyring


def pytest_assertrepr_compare(config, op, left, right):
    """Never print the values of a failed "not in" check: they may be shares."""
    if op == "not in" and isinstance(left, str | bytes) and isinstance(right, str | bytes):
        return [
            f"a {type(left).__name__} of length {len(left)} was found where it must not be (values not shown)"
        ]
    return None


@pytest.fixture(scope="session")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    """Make the session's OpenPGP test keys once; stop their gpg-agent at the end."""
    ring = Keyring(tmp_path_factory.mktemp("gnupg"))
    yield ring
    ring.cleanup()


def ceremony_auth(node: pytest.Item | pytest.Collector) -> str | None:
    """Return the mode a test, its class or its module asks for with ``ceremony_auth``, or None."""
    marker = node.get_closest_marker("ceremony_auth")
    if marker is None:
        return None
    if marker.args not in (("open",), ("token",)):
        raise pytest.UsageError(f'{node.nodeid}: write @pytest.mark.ceremony_auth("open") or ("token")')
    return marker.args[0]


@pytest.fixture(autouse=True)
def settings_of_the_test(request, monkeypatch):
    """Lay the test's settings under every app and gunicorn server it makes.

    The ceremony mode is the service's default (``token``) unless the test, its
    class or its module is marked ``@pytest.mark.ceremony_auth("open")``; a test
    may also name CEREMONY_AUTH in its own config or env, which wins. The
    per-client write limit is off: tests/test_flood.py tests it, and the tables
    of bad input send far more than 20 writes a second from one client.
    """
    monkeypatch.setitem(app_package.TEST_DEFAULTS, "RATE_LIMIT", "off")
    mode = ceremony_auth(request.node)
    if mode is not None:
        monkeypatch.setitem(app_package.TEST_DEFAULTS, "CEREMONY_AUTH", mode)
        # In the environment, so every gunicorn a test starts inherits it, through
        # tests/server.py (imported as server or as tests.server) or not.
        monkeypatch.setenv("GENERATE_SHARE_CEREMONY_AUTH", mode)
    else:
        monkeypatch.delenv("GENERATE_SHARE_CEREMONY_AUTH", raising=False)  # not the shell's


@pytest.fixture
def app(tmp_path):
    """An app over a fresh data folder, in the test's mode (token unless marked), released at the end."""
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    yield app
    app.extensions["generate_share_store"].close()


@pytest.fixture
def client(app):
    """A Flask test client of ``app``."""
    return app.test_client()


@pytest.fixture
def initialized(client) -> dict:
    """Initialize 3 of 5 and return init's reply: the shares as hex, and in token mode the root token."""
    r = client.put("/v1/sys/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 200
    return r.get_json()


@pytest.fixture
def shares(initialized) -> list[str]:
    """Initialize 3 of 5 and return the shares as hex."""
    return initialized["keys"]


@pytest.fixture
def lead(initialized) -> dict:
    """Return the ceremony lead's headers: init's root token as X-Vault-Token (none in open mode)."""
    token = initialized.get("root_token")
    return {"X-Vault-Token": token} if token else {}


@pytest.fixture
def folder(app):
    """The data folder of ``app``."""
    return app.extensions["generate_share_store"].path
