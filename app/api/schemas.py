"""Marshmallow schemas for every request body and query; the replies are re-exported from app/api/replies.py.

Requests: unknown fields are ignored and a known field that is null counts as
absent (Vault's behaviour; hvac sends extra fields, often null). Each error
message is a sentence that says what is expected. Each field's ``metadata``
says what it means: app/api/openapi.py writes the document from the fields.
"""

from marshmallow import EXCLUDE, Schema, fields, validate

from .adopt_schemas import (  # noqa: F401 (the document names them here)
    AdoptionStatusReply,
    AdoptRequest,
    SealConfigRequest,
    SnapshotRequest,
    SnapshotTakenReply,
)
from .fieldtypes import (
    Base64Bytes,
    RequestBody,
    ShortList,
    StatusCode,
    StrictInteger,
    UtcTime,
    VaultBool,
)
from .replies import (  # noqa: F401 (the document names them here)
    AuditHeadReply,
    CustodyReply,
    ErrorReply,
    HealthReply,
    InitReply,
    InitStatusReply,
    ShareRecordReply,
    SharesReply,
    StatusReply,
)

__all__ = [
    "InitRequest",
    "AttemptRequest",
    "UpdateRequest",
    "VerifyRequest",
    "HealthQuery",
    "MetricsQuery",
    "SharesQuery",
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
        metadata={"description": f"{what}, as hex or standard base64"},
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
        metadata={"description": "how many shares to create"},
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
        metadata={"description": "how many shares rebuild the key"},
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
        metadata={"description": "one base64 OpenPGP public key per share: share i is encrypted to key i"},
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

    pgp_key = Base64Bytes(
        load_default=None,
        error_messages={"invalid": f"pgp_key {_PGP_KEY_HELP}"},
        metadata={
            "description": "the new holder's OpenPGP public key, base64 of the binary or armored key: the "
            "new share is encrypted to it (an empty string counts as absent)"
        },
    )


class UpdateRequest(RequestBody):
    """PUT /sys/generate-share/update."""

    empty_is_absent = ("nonce",)

    key = _share_field("one existing share")
    nonce = fields.String(
        load_default=None,
        validate=validate.Length(max=64, error="nonce must be the attempt's nonce, a UUID"),
        error_messages={"invalid": "nonce must be a string: the nonce of the attempt in progress"},
        metadata={
            "description": "the nonce of the ceremony in progress; required when the server sets "
            "GENERATE_SHARE_REQUIRE_NONCE (an empty string counts as absent)"
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
        metadata={
            "description": "an RFC 3339 time with a zone: `verified` then counts the shares verified since "
            "then, and `since` in the reply repeats it in UTC"
        },
    )


class VerifyRequest(RequestBody):
    """PUT /sys/shares/verify."""

    key = _share_field("the share you hold")
