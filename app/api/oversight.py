"""/sys/shares and /sys/health: what every holder and every probe may see."""

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint

from .common import get_service, reply
from .schemas import HealthReply, SharesReply

bp = Blueprint("oversight", __name__)

SHARES_REPLY = SharesReply()
HEALTH_REPLY = HealthReply()

try:
    VERSION = version("generate-share")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "unknown"


@bp.get("/shares")
def registry():
    """List every share ever issued."""
    return reply(SHARES_REPLY, get_service().registry())


@bp.get("/health")
def health():
    """Report whether the service is initialized and busy."""
    return reply(HEALTH_REPLY, get_service().health() | {"version": VERSION})
