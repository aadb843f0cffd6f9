"""The request counter behind /v1/sys/metrics, beside a whole GET: compare the two medians.

Issue 14 asks that metrics cost no measurable throughput when nobody scrapes
them; what every request pays is one ``RequestCounts.add``.
"""

import pytest

from app import create_app
from app.api.metrics import RequestCounts


def test_counting_one_reply(benchmark):
    counts = RequestCounts()
    benchmark(counts.add, 200)


@pytest.fixture
def client(tmp_path):
    """An app over a fresh data folder, released at the end."""
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": "open", "RATE_LIMIT": "off"})
    yield app.test_client()
    app.extensions["generate_share_store"].close()


def test_one_health_get_in_process(benchmark, client):
    benchmark(client.get, "/v1/sys/health")
