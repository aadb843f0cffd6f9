"""Marshmallow schemas of the replies that are not the adoption's (app/api/adopt_schemas.py).

Each field says what it means, and any fact of its JSON form its class does
not (a pattern, a bound, a type), in its ``metadata``: app/api/openapi.py
writes the document from the fields and adds nothing of its own. Kept apart
from app/api/schemas.py (the requests, which re-exports these).
"""

from marshmallow import Schema, fields

from .adopt_schemas import SnapshotTakenReply
from .fieldtypes import HexBytes, OmitEmpty, b64

__all__ = [
    "AuditHeadReply",
    "CustodyReply",
    "ErrorReply",
    "HealthReply",
    "InitReply",
    "InitStatusReply",
    "ShareRecordReply",
    "SharesReply",
    "StatusReply",
]

_HEX = "^([0-9a-f]{2})*$"  # lowercase hex of whole bytes
_ORIGIN = "init, generate-share or adopted"
_OPERATOR_HELP = (
    "token mode: the operator token, shown this once; send it as X-Vault-Token (or Authorization: "
    "Bearer) to start or cancel an attempt. Only its hash is kept"
)


class StatusReply(OmitEmpty):
    """The attempt's status: GET and every successful PUT of attempt and update."""

    warnings = fields.List(
        fields.String(),
        metadata={
            "description": "an update's reply only, when a share was taken that the service could "
            "not check (no custody digest at its x): a sentence naming each such x"
        },
    )
    omit_empty = ("otp", "otp_check", "warnings")
    omit_none = ("otp_length",)

    started = fields.Boolean(
        required=True,
        metadata={"description": "whether an attempt is in progress (or, with complete, just ended)"},
    )
    nonce = fields.String(
        required=True,
        metadata={
            "description": "the attempt's nonce, which every share must carry; in token mode a secret "
            "of the lead and the holders, shown only with the operator token (empty without it)"
        },
    )
    progress = fields.Integer(
        required=True, metadata={"description": "how many distinct shares the attempt holds", "minimum": 0}
    )
    required = fields.Integer(
        required=True, metadata={"description": "how many shares complete the attempt: the threshold"}
    )
    pgp_fingerprint = fields.String(
        required=True,
        metadata={
            "description": "the fingerprint of the new holder's PGP key (lowercase hex); empty without one"
        },
    )
    pgp_subkey_fingerprint = fields.String(
        required=True,
        metadata={
            "description": "the encryption subkey the new share will be encrypted to; "
            "empty when there is no PGP key"
        },
    )
    complete = fields.Boolean(
        required=True, metadata={"description": "true in the one reply that carries the new share"}
    )
    key = HexBytes(
        required=True, metadata={"description": "the new share (or OpenPGP message), hex", "pattern": _HEX}
    )
    key_base64 = fields.Function(
        lambda status: b64(status.key),
        required=True,
        metadata={"description": "the same bytes as key, base64", "type": "string", "format": "byte"},
    )
    otp = fields.Function(
        lambda status: b64(status.otp),
        metadata={
            "description": "token mode, no PGP key: the one-time pad, base64, in the start reply only; "
            "the completing reply's key is the new share XOR this pad, so the lead must keep it"
        },
    )
    otp_length = fields.Integer(
        metadata={
            "description": "token mode: the length in bytes of the attempt's one-time pad (a "
            "share's length); 0 when there is none (a PGP key protects the share)"
        },
    )
    otp_check = fields.String(
        metadata={
            "description": "the completing reply of a masked share only: HMAC-SHA256 keyed by the pad "
            "over the label 'generate-share otp check v1', a zero byte and the masked share, its first "
            "16 bytes in hex; whoever holds the pad checks with it that pad and masked share belong "
            "together before trusting the unmasked share"
        },
    )


class InitReply(OmitEmpty):
    """The shares of a new master key."""

    omit_empty = ("root_token",)

    keys = fields.List(
        HexBytes(metadata={"pattern": "^([0-9a-f]{2})+$"}),
        required=True,
        metadata={"description": "the shares as hex (or the OpenPGP messages that encrypt them)"},
    )
    keys_base64 = fields.Function(
        lambda result: [b64(k) for k in result.keys],
        required=True,
        metadata={
            "description": "the same bytes as keys, base64",
            "type": "array",
            "items": {"type": "string", "format": "byte"},
        },
    )
    pgp_fingerprints = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "the fingerprint of the key each share is encrypted to; empty without pgp_keys"
        },
    )
    root_token = fields.String(metadata={"description": _OPERATOR_HELP})


class InitStatusReply(Schema):
    """GET /sys/init."""

    initialized = fields.Boolean(
        required=True,
        metadata={"description": "whether the service holds a master key (made here or adopted)"},
    )


class ShareRecordReply(Schema):
    """One issued share as the registry lists it."""

    index = fields.Integer(required=True, metadata={"description": "the share's x, from 1 to 255"})
    origin = fields.String(required=True, metadata={"description": _ORIGIN})
    issued_at = fields.String(
        required=True, metadata={"description": "when it was issued or adopted, RFC 3339 in UTC"}
    )
    pgp_fingerprint = fields.String(
        required=True, metadata={"description": "the key it was encrypted to; empty for none"}
    )
    verifiable = fields.Boolean(
        required=True,
        metadata={"description": "whether its holder can prove custody (PUT /v1/sys/shares/verify)"},
    )
    verified_at = fields.Function(
        lambda record: record.verified_at or None,
        required=True,
        allow_none=True,
        metadata={"description": "when its holder last proved custody; null if never", "type": "string"},
    )


class AuditHeadReply(Schema):
    """The last line of the audit trail: note it to catch lines cut from the end."""

    seq = fields.Integer(
        required=True, metadata={"description": "the number of the last line of the audit trail"}
    )
    hash = fields.String(
        attribute="digest", required=True, metadata={"description": "the SHA-256 of that line, hex"}
    )


class SharesReply(Schema):
    """GET /sys/shares: the registry."""

    threshold = fields.Integer(required=True, metadata={"description": "how many shares rebuild the key"})
    share_limit = fields.Integer(
        required=True, metadata={"description": "the most shares that may ever exist"}
    )
    issued = fields.Integer(required=True, metadata={"description": "how many shares exist"})
    shares = fields.List(
        fields.Nested(ShareRecordReply),
        required=True,
        metadata={"description": "every share ever issued or adopted"},
    )
    # A $ref takes no sibling in OpenAPI 3.0: AuditHeadReply describes itself.
    audit_head = fields.Nested(AuditHeadReply, required=True)
    verifiable = fields.Integer(
        required=True, metadata={"description": "shares whose holders can prove custody"}
    )
    verified = fields.Integer(
        required=True, metadata={"description": "shares verified at least once (since `since`, when given)"}
    )
    since = fields.String(
        required=True, allow_none=True, metadata={"description": "the `since` of the query in UTC, or null"}
    )
    snapshot = fields.Nested(
        SnapshotTakenReply,
        required=True,
        allow_none=True,
        metadata={"description": "the cluster snapshot the set is bound to; null when it is not"},
    )


class HealthReply(Schema):
    """GET /sys/health."""

    service = fields.Constant(
        "generate-share",
        required=True,
        metadata={"description": "always generate-share: a client checks it to never write to a real Vault"},
    )
    ceremony_auth = fields.String(
        required=True,
        metadata={
            "description": "token (an operator token steers ceremonies, nonces are required) "
            "or open (the seed's behaviour, for closed networks)"
        },
    )

    initialized = fields.Boolean(
        required=True, metadata={"description": "whether the service holds a master key"}
    )
    generate_share_in_progress = fields.Boolean(
        required=True, metadata={"description": "whether a generate-share attempt is in progress"}
    )
    adoption_in_progress = fields.Boolean(
        required=True, metadata={"description": "whether an adoption is in progress"}
    )
    share_limit = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "the most shares that may ever exist; null before init"},
    )
    shares_issued = fields.Integer(
        required=True, metadata={"description": "how many shares exist; 0 before init"}
    )
    version = fields.String(required=True, metadata={"description": "the version of the service"})
    sealed = fields.Boolean(
        required=True,
        metadata={
            "description": "true when the service cannot write its data folder (read-only, full, or "
            "not writable by its user): it can then record no ceremony, and health answers 503"
        },
    )
    standby = fields.Boolean(
        required=True, metadata={"description": "always false: one process serves a data folder"}
    )
    low_disk = fields.Boolean(
        required=True,
        metadata={
            "description": "true when the data folder has less free space than GENERATE_SHARE_MIN_FREE_MB: "
            "refused requests are then only counted in memory, and written as one line per action before "
            "the next other event; ceremonies are still recorded"
        },
    )


class ErrorReply(Schema):
    """Every error: Vault's shape."""

    errors = fields.List(
        fields.String(metadata={"minLength": 1}),
        required=True,
        metadata={"description": "sentences that say what was wrong and what is expected", "minItems": 1},
    )


class CustodyReply(Schema):
    """The answer to a custody check: `valid` and a `reason` when the share cannot be confirmed."""

    valid = fields.Boolean(
        required=True, metadata={"description": "whether the share is the one the service recorded at its x"}
    )
    reason = fields.String(
        metadata={"description": "why the share was not confirmed: not the recorded one, or never recorded"}
    )
    index = fields.Integer(metadata={"description": "the share's x (only when valid)"})
    origin = fields.String(metadata={"description": f"{_ORIGIN} (only when valid)"})
    issued_at = fields.String(metadata={"description": "when it was issued (only when valid)"})
    verified_at = fields.String(
        metadata={"description": "when its holder proved custody, now included (only when valid)"}
    )
