"""/sys/shares and /sys/health: what every holder and every probe may see."""

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, request
from marshmallow import ValidationError

from ..errors import BadRequest
from .common import get_service, load_body, reply, sentences
from .schemas import CustodyReply, HealthReply, SharesQuery, SharesReply, VerifyRequest

bp = Blueprint("oversight", __name__)

SHARES_REPLY = SharesReply()
SHARES_QUERY = SharesQuery()
HEALTH_REPLY = HealthReply()
VERIFY_REQUEST = VerifyRequest()
CUSTODY_REPLY = CustodyReply()

try:
    VERSION = version("generate-share")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "unknown"


@bp.get("/shares")
def registry():
    """List every share ever issued, and how many were verified since ?since=."""
    try:
        since = SHARES_QUERY.load(request.args)["since"]  # a zero-padded UTC string, or None
    except ValidationError as exc:
        raise BadRequest(*sentences(exc.messages)) from None
    return reply(SHARES_REPLY, get_service().registry(since))


@bp.route("/shares/verify", methods=["PUT", "POST"])
def verify_custody():
    """Tell a holder whether the share they keep is the one the service issued."""
    body = load_body(VERIFY_REQUEST)
    custody = get_service().verify_custody(body["key"])
    if not custody.valid:
        return reply(CUSTODY_REPLY, {"valid": False})
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


@bp.get("/health")
def health():
    """Report whether the service is initialized and busy."""
    return reply(HEALTH_REPLY, get_service().health() | {"version": VERSION})
