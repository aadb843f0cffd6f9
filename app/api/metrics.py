"""Metrics for a monitor: read from the service when scraped, in Prometheus' text or Vault's JSON.

Nothing is kept for the scrape except one integer per status class, counted
by the access hook (app/api/lifecycle.py) and by the worker for the replies
it writes itself (app/counts.py): every other number is read from
the service at scrape time, so a service nobody scrapes pays for nothing
else. Each app has its own registry (never prometheus_client's global one),
so apps built side by side (tests) never share numbers. Every number is one
a holder may already see in /sys/health or /sys/shares, or a count of
requests: no nonce, fingerprint, token or client address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The counts live below app/api, where the worker that writes its own replies counts them too.
from ..counts import CLASSES, REQUEST_COUNTS, RequestCounts

if TYPE_CHECKING:  # the service hands the overview over; the API imports no ceremony
    from ..ceremonies.oversight import Overview

__all__ = [
    "CLASSES",
    "REQUEST_COUNTS",
    "RequestCounts",
    "ServiceCollector",
    "as_json",
    "as_prometheus",
    "make_registry",
]

PREFIX = "generate_share_"

# (name without prefix, help, how to read it from the overview)
_GAUGES: tuple[tuple[str, str, Callable[[Overview], float]], ...] = (
    ("initialized", "1 when the service holds a master key, else 0.", lambda o: o.initialized),
    ("threshold", "How many shares rebuild the key; 0 before init.", lambda o: o.threshold),
    ("share_limit", "The most shares that may ever exist; 0 before init.", lambda o: o.share_limit),
    (
        "shares_issued",
        "How many shares exist (issued at init, adopted or generated).",
        lambda o: o.shares_issued,
    ),
    (
        "attempt_in_progress",
        "1 while a generate-share attempt is in progress.",
        lambda o: o.attempt_in_progress,
    ),
    (
        "attempt_progress",
        "How many distinct shares the attempt in progress holds.",
        lambda o: o.attempt_progress,
    ),
    ("adoption_in_progress", "1 while an adoption is in progress.", lambda o: o.adoption_in_progress),
    (
        "audit_lines",
        "How many lines the audit trail holds (the sequence number of its head).",
        lambda o: o.audit_lines,
    ),
    (
        "data_writable",
        "1 when the data folder can take a record now (health answers 503 when 0).",
        lambda o: o.can_write,
    ),
    (
        "low_disk",
        "1 when the data folder is below GENERATE_SHARE_MIN_FREE_MB free: refusals are only counted.",
        lambda o: o.low_disk,
    ),
)


class ServiceCollector(Collector):
    """Read the service's public numbers and the request counts when scraped."""

    def __init__(self, overview: Callable[[], Overview], counts: RequestCounts, backlog: Callable[[], int]):
        self._overview = overview
        self._counts = counts
        self._backlog = backlog

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, read now."""
        now = self._overview()
        for name, text, read in _GAUGES:
            yield GaugeMetricFamily(PREFIX + name, text, value=float(read(now)))
        yield GaugeMetricFamily(
            PREFIX + "notify_backlog",
            "Audit events not yet delivered to every notification URL; 0 without notifications.",
            value=float(self._backlog()),
        )
        requests = CounterMetricFamily(
            PREFIX + "requests", "HTTP replies since the service started, by status class.", labels=["class"]
        )
        for label, count in self._counts.snapshot().items():
            requests.add_metric([label], float(count))
        yield requests


def make_registry(collector: ServiceCollector) -> CollectorRegistry:
    """Return a registry of the app's own holding only ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def as_prometheus(registry: CollectorRegistry) -> bytes:
    """Return the metrics in Prometheus' text exposition format (version 0.0.4)."""
    return generate_latest(registry)


def as_json(registry: CollectorRegistry) -> dict:
    """Return the metrics in the shape of Vault's JSON metrics: Gauges and Counters, each with Labels."""
    gauges, counters = [], []
    for family in registry.collect():
        for sample in family.samples:
            if family.type == "counter":
                if sample.name.endswith("_total"):  # not _created
                    counters.append(
                        {"Name": sample.name, "Count": int(sample.value), "Labels": sample.labels}
                    )
            else:
                gauges.append({"Name": sample.name, "Value": sample.value, "Labels": sample.labels})
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"Timestamp": stamp, "Gauges": gauges, "Counters": counters, "Samples": []}
