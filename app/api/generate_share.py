"""/sys/generate-share/attempt and /sys/generate-share/update."""

from flask import Blueprint

from .common import get_service, lead_token, load_body, no_content, reply, who
from .schemas import AttemptRequest, StatusReply, UpdateRequest

bp = Blueprint("generate_share", __name__)

ATTEMPT_REQUEST = AttemptRequest()
UPDATE_REQUEST = UpdateRequest()
STATUS_REPLY = StatusReply()


@bp.get("/generate-share/attempt")
def read_attempt():
    """Report the attempt in progress (token mode: its nonce only with the operator token)."""
    return reply(STATUS_REPLY, get_service().status(lead_token()))


@bp.route("/generate-share/attempt", methods=["PUT", "POST"])
def start_attempt():
    """Start an attempt, optionally with the new holder's PGP key (token mode: the lead's token)."""
    service = get_service()
    token = lead_token()
    if service.ceremony_auth == "token":
        service.authorize_lead(token, who=who())  # before the body is read: a stranger costs nothing
    body = load_body(ATTEMPT_REQUEST)
    return reply(STATUS_REPLY, service.start(body["pgp_key"], token, who=who()))


@bp.delete("/generate-share/attempt")
def cancel_attempt():
    """Cancel the attempt and forget its shares (token mode: the lead's token)."""
    get_service().cancel(lead_token(), who=who())
    return no_content()


@bp.route("/generate-share/update", methods=["PUT", "POST"])
def update():
    """Take one share of the quorum."""
    body = load_body(UPDATE_REQUEST)
    return reply(STATUS_REPLY, get_service().update(body["key"], body["nonce"], who=who()))
