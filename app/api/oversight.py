"""/sys/shares, /sys/health and /sys/metrics: what every holder and every probe may see."""

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, current_app, request
from marshmallow import Schema, ValidationError

from ..errors import BadRequest
from .common import get_service, load_body, reply, sentences, who
from .metrics import REQUEST_COUNTS, ServiceCollector, as_json, as_prometheus, make_registry
from .schemas import (
    CustodyReply,
    HealthQuery,
    HealthReply,
    MetricsQuery,
    SharesQuery,
    SharesReply,
    VerifyRequest,
)

bp = Blueprint("oversight", __name__)

SHARES_REPLY = SharesReply()
SHARES_QUERY = SharesQuery()
HEALTH_REPLY = HealthReply()
VERIFY_REQUEST = VerifyRequest()
CUSTODY_REPLY = CustodyReply()
HEALTH_QUERY = HealthQuery()
METRICS_QUERY = MetricsQuery()
_METRICS_REGISTRY = "generate_share_metrics"
NOTIFIER = "generate_share_notifier"  # where create_app keeps app/notify.py's Notifier
# What generate_latest writes (not prometheus_client's CONTENT_TYPE_LATEST, which newer releases move on).
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Statuses whose replies never carry a body.
_NO_BODY = frozenset({204, 304})

try:
    VERSION = version("generate-share")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "unknown"


def _query(schema: Schema) -> dict:
    """Load the query string with ``schema``; refuse it with its sentences."""
    try:
        return schema.load(request.args)
    except ValidationError as exc:
        raise BadRequest(*sentences(exc.messages)) from None


@bp.get("/shares")
def registry():
    """List every share ever issued, and how many were verified since ?since=."""
    since = _query(SHARES_QUERY)["since"]  # a zero-padded UTC string, or None
    return reply(SHARES_REPLY, get_service().registry(since))


@bp.route("/shares/verify", methods=["PUT", "POST"])
def verify_custody():
    """Tell a holder whether the share they keep is the one the service issued."""
    body = load_body(VERIFY_REQUEST)
    custody = get_service().verify_custody(body["key"], who=who())
    if not custody.valid:
        return reply(CUSTODY_REPLY, {"valid": False, "reason": custody.reason})
    record = custody.record
    return reply(
        CUSTODY_REPLY,
        {
            "valid": True,
            "index": record.index,
            "origin": record.origin,
            "issued_at": record.issued_at,
            "verified_at": record.verified_at,
        },
    )


@bp.get("/health")  # Flask answers HEAD with the same status and headers, and no body
def health():
    """Report whether the service is initialized, busy and able to write, in Vault's status codes."""
    codes = _query(HEALTH_QUERY)
    body = get_service().health() | {"version": VERSION}
    # Vault's order: uninitialized before sealed. The service is never a
    # standby, so standbyok and the standby codes change nothing.
    if not body["initialized"]:
        status = codes["uninitcode"]
    elif body["sealed"]:
        status = codes["sealedcode"]
    else:
        status = codes["activecode"]
    if status in _NO_BODY:
        response = current_app.response_class(status=status)
        del response.headers["Content-Type"]
        return response
    return reply(HEALTH_REPLY, body, status=status)


@bp.get("/metrics")
def metrics():
    """Report the service's numbers: Prometheus' text with ?format=prometheus, else Vault's JSON shape."""
    form = _query(METRICS_QUERY)["format"]
    app = current_app._get_current_object()
    registry = app.extensions.get(_METRICS_REGISTRY)
    if registry is None:  # built at the first scrape: a service never scraped never builds it
        service = get_service()
        collector = ServiceCollector(service.overview, app.extensions[REQUEST_COUNTS], _backlog(app))
        registry = app.extensions.setdefault(_METRICS_REGISTRY, make_registry(collector))
    if form == "prometheus":
        return app.response_class(as_prometheus(registry), content_type=PROMETHEUS_TYPE)
    return app.response_class(json.dumps(as_json(registry)), mimetype="application/json")


def _backlog(app) -> Callable[[], int]:
    """Return how to count the events that wait for delivery to a notification URL (app/notify.py)."""
    notifier = app.extensions.get(NOTIFIER)
    return notifier.backlog if notifier is not None else lambda: 0  # 0: no notifications
