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


@pytest.fixture(autouse=True)
def open_mode_by_default(monkeypatch):
    """Run apps in open mode (the seed's behaviour), without a rate limit, unless a test asks.

    The suite written before the operator token tests open mode unchanged;
    tests/test_token.py passes "token" explicitly and checks the real default
    through gunicorn (tests/server.py does the same for its environment). The
    per-client write limit is off too: tests/test_flood.py tests it, and the
    tables of bad input send far more than 20 writes a second from one client.
    """
    monkeypatch.setitem(app_package.TEST_DEFAULTS, "CEREMONY_AUTH", "open")
    monkeypatch.setitem(app_package.TEST_DEFAULTS, "RATE_LIMIT", "off")


@pytest.fixture
def app(tmp_path):
    """An app over a fresh data folder, in open mode, released at the end."""
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": "open"})
    yield app
    app.extensions["generate_share_store"].close()


@pytest.fixture
def client(app):
    """A Flask test client of ``app``."""
    return app.test_client()


@pytest.fixture
def shares(client) -> list[str]:
    """Initialize 3 of 5 and return the shares as hex."""
    r = client.put("/v1/sys/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 200
    return r.get_json()["keys"]


@pytest.fixture
def folder(app):
    """The data folder of ``app``."""
    return app.extensions["generate_share_store"].path
