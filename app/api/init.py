"""/sys/init: create the master key and its shares."""

from flask import Blueprint

from .common import get_service, load_body, reply, who
from .schemas import InitReply, InitRequest, InitStatusReply

bp = Blueprint("init", __name__)

INIT_REQUEST = InitRequest()
INIT_REPLY = InitReply()
INIT_STATUS_REPLY = InitStatusReply()


@bp.get("/init")
def read_init():
    """Tell whether the service has a master key."""
    return reply(INIT_STATUS_REPLY, {"initialized": get_service().is_initialized()})


@bp.route("/init", methods=["PUT", "POST"])
def initialize():
    """Create the master key, split it, and hand out the shares."""
    body = load_body(INIT_REQUEST)
    result = get_service().initialize(
        body["secret_shares"], body["secret_threshold"], body["pgp_keys"], body["share_limit"], who=who()
    )
    return reply(INIT_REPLY, result)
