"""Each gunicorn name app/worker.py uses beyond the documented Worker API exists in this gunicorn."""

import importlib

import pytest

from app.worker import GUNICORN_NAMES


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and look the rest up as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


@pytest.mark.parametrize("dotted", GUNICORN_NAMES)
def test_each_gunicorn_name_the_worker_uses_exists(dotted):
    assert callable(_resolve(dotted)), dotted


def test_a_missing_name_is_noticed():
    with pytest.raises(AttributeError):
        _resolve("gunicorn.http.wsgi.no_such_function")
