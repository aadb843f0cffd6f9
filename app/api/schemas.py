"""Marshmallow schemas for every request body and every reply.

Requests: unknown fields are ignored and a known field that is null counts as
absent (Vault's behaviour; hvac sends extra fields, often null). Each error
message is a sentence that says what is expected.
"""

from marshmallow import (
    EXCLUDE,
    Schema,
    fields,
    validate,
)

from .adopt_schemas import (  # noqa: F401 (the document names them here)
    AdoptionStatusReply,
    AdoptRequest,
    SealConfigRequest,
    SnapshotRequest,
    SnapshotTakenReply,
)
from .fieldtypes import (
    Base64Bytes,
    HexBytes,
    OmitEmpty,
    RequestBody,
    ShortList,
    StatusCode,
    StrictInteger,
    UtcTime,
    VaultBool,
    b64,
)

__all__ = [
    "InitRequest",
    "AttemptRequest",
    "UpdateRequest",
    "StatusReply",
    "InitReply",
    "InitStatusReply",
    "SharesReply",
    "HealthReply",
    "HealthQuery",
    "MetricsQuery",
    "ErrorReply",
]


_PGP_KEY_HELP = (
    "must be a base64-encoded OpenPGP public key (the binary key file, or an "
    "ASCII-armored one, encoded with `base64 -w0`)"
)


def _share_field(what: str) -> fields.String:
    """Return the `key` field that carries one share, as hex or base64."""
    return fields.String(
        required=True,
        validate=validate.Length(
            min=1, max=1024, error="key must be one share as hex or base64, at most 1024 characters"
        ),
        error_messages={
            "required": f"key is required: {what}, as hex or base64",
            "invalid": f"key must be a string: {what}, as hex or base64",
        },
    )


class InitRequest(RequestBody):
    """PUT /sys/init."""

    secret_shares = StrictInteger(
        required=True,
        validate=validate.Range(
            min=2, max=255, error="secret_shares must be from 2 to 255 (the number of shares to create)"
        ),
        error_messages={
            "required": "secret_shares is required: the number of shares to create, from 2 to 255",
            "invalid": "secret_shares must be a JSON integer from 2 to 255",
        },
    )
    secret_threshold = StrictInteger(
        required=True,
        validate=validate.Range(
            min=2,
            max=255,
            error="secret_threshold must be from 2 to 255: with a threshold of 1 every share "
            "is the key itself, so there would be no shares to regenerate",
        ),
        error_messages={
            "required": "secret_threshold is required: how many shares rebuild the key, "
            "from 2 to secret_shares",
            "invalid": "secret_threshold must be a JSON integer from 2 to secret_shares",
        },
    )
    pgp_keys = ShortList(
        Base64Bytes(error_messages={"invalid": f"each entry of pgp_keys {_PGP_KEY_HELP}"}),
        max_length=255,
        load_default=None,
        error_messages={
            "invalid": "pgp_keys must be a JSON list with one PGP key per share",
            "too_long": "pgp_keys has {length} entries; it must have one PGP key per share, "
            "and there are at most {max} shares",
        },
    )

    share_limit = StrictInteger(
        load_default=None,
        validate=validate.Range(
            min=2, max=255, error="share_limit must be from secret_shares to 255 (the default)"
        ),
        error_messages={"invalid": "share_limit must be a JSON integer from secret_shares to 255"},
        metadata={"description": "the most shares that may ever exist; fixed at init (default 255)"},
    )


class AttemptRequest(RequestBody):
    """PUT /sys/generate-share/attempt."""

    empty_is_absent = ("pgp_key",)

    pgp_key = Base64Bytes(load_default=None, error_messages={"invalid": f"pgp_key {_PGP_KEY_HELP}"})


class UpdateRequest(RequestBody):
    """PUT /sys/generate-share/update."""

    empty_is_absent = ("nonce",)

    key = _share_field("one existing share")
    nonce = fields.String(
        load_default=None,
        validate=validate.Length(max=64, error="nonce must be the attempt's nonce, a UUID"),
        error_messages={"invalid": "nonce must be a string: the nonce of the attempt in progress"},
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

    started = fields.Boolean(required=True)
    nonce = fields.String(
        required=True,
        metadata={
            "description": "the attempt's nonce, which every share must carry; in token mode a secret "
            "of the lead and the holders, shown only with the operator token (empty without it)"
        },
    )
    progress = fields.Integer(required=True)
    required = fields.Integer(required=True)
    pgp_fingerprint = fields.String(required=True)
    pgp_subkey_fingerprint = fields.String(
        required=True,
        metadata={
            "description": "the encryption subkey the new share will be encrypted to; "
            "empty when there is no PGP key"
        },
    )
    complete = fields.Boolean(required=True)
    key = HexBytes(required=True, metadata={"description": "the new share (or OpenPGP message), hex"})
    key_base64 = fields.Function(
        lambda status: b64(status.key),
        required=True,
        metadata={"description": "the same bytes as key, base64"},
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


_OPERATOR_HELP = (
    "token mode: the operator token, shown this once; send it as X-Vault-Token (or Authorization: "
    "Bearer) to start or cancel an attempt. Only its hash is kept"
)


class InitReply(OmitEmpty):
    """The shares of a new master key."""

    omit_empty = ("root_token",)

    keys = fields.List(HexBytes(), required=True)
    keys_base64 = fields.Function(lambda result: [b64(k) for k in result.keys], required=True)
    pgp_fingerprints = fields.List(fields.String(), required=True)
    root_token = fields.String(metadata={"description": _OPERATOR_HELP})


class InitStatusReply(Schema):
    """GET /sys/init."""

    initialized = fields.Boolean(required=True)


class ShareRecordReply(Schema):
    """One issued share as the registry lists it."""

    index = fields.Integer(required=True)
    origin = fields.String(required=True)
    issued_at = fields.String(required=True)
    pgp_fingerprint = fields.String(required=True)
    verifiable = fields.Boolean(
        required=True,
        metadata={"description": "whether its holder can prove custody (PUT /v1/sys/shares/verify)"},
    )
    verified_at = fields.Function(
        lambda record: record.verified_at or None,
        required=True,
        allow_none=True,
        metadata={"description": "when its holder last proved custody; null if never"},
    )


class AuditHeadReply(Schema):
    """The last line of the audit trail: note it to catch lines cut from the end."""

    seq = fields.Integer(required=True)
    hash = fields.String(attribute="digest", required=True)


class SharesReply(Schema):
    """GET /sys/shares: the registry."""

    threshold = fields.Integer(required=True)
    share_limit = fields.Integer(required=True)
    issued = fields.Integer(required=True)
    shares = fields.List(fields.Nested(ShareRecordReply), required=True)
    audit_head = fields.Nested(AuditHeadReply, required=True)
    verifiable = fields.Integer(
        required=True, metadata={"description": "shares whose holders can prove custody"}
    )
    verified = fields.Integer(
        required=True, metadata={"description": "shares verified at least once (since `since`, when given)"}
    )
    since = fields.String(required=True, allow_none=True)
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

    initialized = fields.Boolean(required=True)
    generate_share_in_progress = fields.Boolean(required=True)
    adoption_in_progress = fields.Boolean(required=True)
    share_limit = fields.Integer(required=True, allow_none=True)
    shares_issued = fields.Integer(required=True)
    version = fields.String(required=True)
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


# 1xx is left out: it is no final reply, and a client given one waits for the real reply forever.
class HealthQuery(Schema):
    """GET or HEAD /sys/health?uninitcode=...: Vault's overrides of the status code."""

    class Meta:
        unknown = EXCLUDE

    activecode = StatusCode("activecode", 200)
    uninitcode = StatusCode("uninitcode", 501)
    sealedcode = StatusCode("sealedcode", 503)
    # Vault's codes for the states of a cluster this service never is in: checked, never used.
    standbycode = StatusCode("standbycode", 429)
    performancestandbycode = StatusCode("performancestandbycode", 473)
    drsecondarycode = StatusCode("drsecondarycode", 472)
    standbyok = VaultBool("standbyok", "accepted for Vault's probes; the service is never a standby")
    perfstandbyok = VaultBool("perfstandbyok", "accepted for Vault's probes; the service is never a standby")


class MetricsQuery(Schema):
    """GET /sys/metrics?format=prometheus."""

    class Meta:
        unknown = EXCLUDE

    format = fields.String(
        load_default="",
        validate=validate.OneOf(
            ["", "prometheus"],
            error="format must be prometheus (Prometheus' text format), or absent for Vault's JSON metrics",
        ),
        metadata={"description": "prometheus for Prometheus' text format; absent for Vault's JSON shape"},
    )


class ErrorReply(Schema):
    """Every error: Vault's shape."""

    errors = fields.List(fields.String(), required=True)


class SharesQuery(Schema):
    """GET /sys/shares?since=..."""

    class Meta:
        unknown = EXCLUDE

    since = UtcTime(
        load_default=None,
        format="iso",
        error_messages={
            "invalid": "since must be an RFC 3339 time with a zone, such as 2026-11-26T13:00:00Z",
            "invalid_awareness": "since must be an RFC 3339 time with a zone, such as 2026-11-26T13:00:00Z",
            "range": "since must lie from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z once turned into UTC",
        },
    )


class VerifyRequest(RequestBody):
    """PUT /sys/shares/verify."""

    key = _share_field("the share you hold")


class CustodyReply(Schema):
    """The answer to a custody check: `valid` and a `reason` when the share cannot be confirmed."""

    valid = fields.Boolean(required=True)
    reason = fields.String(
        metadata={"description": "why the share was not confirmed: not the recorded one, or never recorded"}
    )
    index = fields.Integer()
    origin = fields.String()
    issued_at = fields.String()
    verified_at = fields.String()
