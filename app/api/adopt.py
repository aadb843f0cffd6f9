"""/sys/adopt/attempt and /sys/adopt/update: bring an existing share set in."""

from flask import Blueprint

from ..ceremonies.adoption import Snapshot
from .adopt_schemas import seal_config
from .common import get_service, lead_token, load_body, no_content, reply, who
from .schemas import AdoptionStatusReply, AdoptRequest, UpdateRequest

bp = Blueprint("adopt", __name__)

ADOPT_REQUEST = AdoptRequest()
UPDATE_REQUEST = UpdateRequest()
ADOPTION_STATUS_REPLY = AdoptionStatusReply()


@bp.get("/adopt/attempt")
def read_adoption():
    """Report the adoption in progress (token mode: its nonce only with the token its start returned)."""
    return reply(ADOPTION_STATUS_REPLY, get_service().adoption_status(lead_token()))


@bp.route("/adopt/attempt", methods=["PUT", "POST"])
def start_adoption():
    """Start adopting a share set split elsewhere."""
    body = load_body(ADOPT_REQUEST)
    sent = body["snapshot"]
    snapshot = None
    if sent is not None:
        snapshot = Snapshot(
            seal=seal_config(sent["seal_config"]),
            recovery=seal_config(sent["recovery_seal_config"]),
            meta=sent["meta"],
            sums=sent["sha256sums"],
            sealed=sent["sealed"],
        )
    status = get_service().start_adoption(
        body["secret_threshold"],
        body["required"],
        body["known_indices"],
        body["share_limit"],
        snapshot,
        who=who(),
    )
    return reply(ADOPTION_STATUS_REPLY, status)


@bp.delete("/adopt/attempt")
def cancel_adoption():
    """Cancel the adoption and forget its shares (token mode: the token its start returned)."""
    get_service().cancel_adoption(lead_token(), who=who())
    return no_content()


@bp.route("/adopt/update", methods=["PUT", "POST"])
def adopt_update():
    """Take one existing share of the set."""
    body = load_body(UPDATE_REQUEST)
    return reply(ADOPTION_STATUS_REPLY, get_service().adopt_update(body["key"], body["nonce"], who=who()))
