"""The count of replies by status class, kept by whoever writes a reply: the app or the worker.

Most replies are the app's, counted by its access hook (app/api/lifecycle.py);
some the gunicorn worker writes itself, without the app (app/worker.py: a 408,
the framing's refusals, the 503 past an address's cap). Both count on one
``RequestCounts``, the one /v1/sys/metrics reports (app/api/metrics.py), so
this lives below app/api, where the worker may import it.

There is no module-level instance: each app keeps its own in
``app.extensions[REQUEST_COUNTS]`` (apps built side by side in tests never
share numbers), and the worker finds the app's through the app gunicorn
loaded (``worker.wsgi.extensions``), as gunicorn.conf.py finds the store. A
bare WSGI app (a benchmark's) has none, and the worker then counts nothing.
"""

from __future__ import annotations

import threading

__all__ = ["CLASSES", "REQUEST_COUNTS", "RequestCounts", "of"]

#: The status classes counted, in order; a status outside 100-599 counts as 5xx.
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Where each app keeps its RequestCounts: made by app/api/lifecycle.py, read when scraped.
REQUEST_COUNTS = "generate_share_request_counts"


class RequestCounts:
    """One counter per status class, bumped under a lock (cheaper than prometheus_client's Counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * len(CLASSES)

    def add(self, status: int) -> None:
        """Count one reply of ``status``."""
        index = status // 100 - 1
        if not 0 <= index < len(CLASSES):
            index = len(CLASSES) - 1
        with self._lock:  # the app runs on threads, the worker's own replies in its loop: += could lose one
            self._counts[index] += 1

    def snapshot(self) -> dict[str, int]:
        """Return the counts by class."""
        with self._lock:
            return dict(zip(CLASSES, self._counts, strict=True))


def of(app) -> RequestCounts | None:
    """Return the counts ``app`` keeps (the WSGI app gunicorn loaded), or None if it keeps none."""
    extensions = getattr(app, "extensions", None)
    return extensions.get(REQUEST_COUNTS) if isinstance(extensions, dict) else None
