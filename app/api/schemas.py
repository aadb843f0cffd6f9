"""Marshmallow schemas for every request body and every reply.

Requests: unknown fields are ignored and a known field that is null counts as
absent (Vault's behaviour; hvac sends extra fields, often null). Each error
message is a sentence that says what is expected.
"""

import base64
import binascii
from datetime import UTC

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_dump,
    pre_load,
    validate,
    validates_schema,
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


class _NullIsInvalid:
    """Say the field's own sentence for a null too (a null inside a list is no value)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.error_messages["null"] = self.error_messages["invalid"]


class StrictInteger(_NullIsInvalid, fields.Integer):
    """A JSON integer: no strings, floats or booleans."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Base64Bytes(_NullIsInvalid, fields.Field):
    """Bytes carried as standard padded base64."""

    default_error_messages = {"invalid": "must be standard padded base64"}

    def _serialize(self, value, attr, obj, **kwargs):
        return _b64(value) if value is not None else None

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise self.make_error("invalid") from None


class ShortList(fields.List):
    """A JSON list refused by its length before any entry is looked at."""

    default_error_messages = {"too_long": "{field} has {length} entries; at most {max} are allowed"}

    def __init__(self, cls_or_instance, *, max_length: int, **kwargs):
        super().__init__(cls_or_instance, **kwargs)
        self.max_length = max_length
        # Never reached on a long list (checked first below); it is here so
        # that the OpenAPI document says maxItems.
        self.validators.append(validate.Length(max=max_length))

    def _deserialize(self, value, attr, data, **kwargs):
        # Checked first: a long list of bad entries would otherwise cost one
        # sentence, and one validation, per entry.
        if isinstance(value, list) and len(value) > self.max_length:
            raise self.make_error("too_long", field=self.name, length=len(value), max=self.max_length)
        return super()._deserialize(value, attr, data, **kwargs)


class UtcTime(fields.AwareDateTime):
    """A time with a zone, loaded as a zero-padded UTC string such as 2026-11-26T13:00:00Z.

    The registry's times are strings of that form and are compared as strings,
    so the form must be exactly theirs: four-digit year (strftime("%Y") gives
    "999" for the year 999 on glibc), whole seconds (a fraction is dropped, as
    the registry records none).
    """

    default_error_messages = {
        "range": "must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z once turned into UTC"
    }

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-23:59 lies past the year 9999 in UTC
            raise self.make_error("range") from None
        return (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
        )


class OmitEmpty(Schema):
    """A reply whose ``omit_empty`` fields appear only when they carry something."""

    #: Fields left out when empty: a secret shown once, or a field of token mode only.
    omit_empty: tuple[str, ...] = ()
    #: Fields left out when None: a field open mode does not have.
    omit_none: tuple[str, ...] = ()

    @post_dump
    def _omit_empty(self, data, **kwargs):
        """Leave out the ``omit_empty`` fields that are empty and the ``omit_none`` ones that are None."""
        for name in self.omit_empty:
            if not data.get(name):
                data.pop(name, None)
        for name in self.omit_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class HexBytes(fields.Field):
    """Bytes carried as lowercase hex (replies only)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return value.hex() if value is not None else None


class Request(Schema):
    """Base of every request body."""

    #: Fields where an empty string means "not given", as Vault reads them.
    empty_is_absent: tuple[str, ...] = ()

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _drop_absent(self, data, **kwargs):
        """Drop null fields (and empty ones where that means absent)."""
        if not isinstance(data, dict):
            raise ValidationError("the request body must be a JSON object")
        return {
            k: v for k, v in data.items() if v is not None and not (v == "" and k in self.empty_is_absent)
        }


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


class InitRequest(Request):
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

    @validates_schema(skip_on_field_errors=True)
    def _threshold_fits(self, data, **kwargs):
        """Check the rules that join several fields."""
        shares, threshold = data["secret_shares"], data["secret_threshold"]
        if threshold > shares:
            raise ValidationError(f"secret_threshold ({threshold}) must not exceed secret_shares ({shares})")
        limit = data.get("share_limit")
        if limit is not None and limit < shares:
            raise ValidationError(
                f"share_limit ({limit}) must be at least secret_shares ({shares}): "
                "the limit counts the shares made at init too"
            )
        keys = data.get("pgp_keys")
        if keys is not None and len(keys) != shares:
            raise ValidationError(
                f"pgp_keys has {len(keys)} entries; it must have exactly secret_shares "
                f"({shares}), one PGP key per share"
            )


class AttemptRequest(Request):
    """PUT /sys/generate-share/attempt."""

    empty_is_absent = ("pgp_key",)

    pgp_key = Base64Bytes(load_default=None, error_messages={"invalid": f"pgp_key {_PGP_KEY_HELP}"})


class UpdateRequest(Request):
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

    omit_empty = ("otp",)
    omit_none = ("otp_length",)

    started = fields.Boolean(required=True)
    nonce = fields.String(required=True)
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
        lambda status: _b64(status.key),
        required=True,
        metadata={"description": "the same bytes as key, base64"},
    )
    otp = fields.Function(
        lambda status: _b64(status.otp),
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


_OPERATOR_HELP = (
    "token mode: the operator token, shown this once; send it as X-Vault-Token (or Authorization: "
    "Bearer) to start or cancel an attempt. Only its hash is kept"
)


class InitReply(OmitEmpty):
    """The shares of a new master key."""

    omit_empty = ("root_token",)

    keys = fields.List(HexBytes(), required=True)
    keys_base64 = fields.Function(lambda result: [_b64(k) for k in result.keys], required=True)
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
_STATUS_CODE = "{name} must be an HTTP status code, a whole number from 200 to 599"


class StatusCode(fields.Integer):
    """A status code a probe asks health to answer with, as Vault's health takes it."""

    def __init__(self, name: str, default: int):
        message = _STATUS_CODE.format(name=name)
        super().__init__(
            load_default=default,
            strict=False,
            validate=validate.Range(200, 599, error=message),
            error_messages={"invalid": message, "too_large": message},
            metadata={"description": f"the status to answer with instead of {default}"},
        )


class VaultBool(fields.Boolean):
    """A flag as Vault's health reads it: present without a value counts as true."""

    truthy = {"", "true", "True", "TRUE", "t", "T", "1"}
    falsy = {"false", "False", "FALSE", "f", "F", "0"}

    def __init__(self, name: str, text: str):
        super().__init__(
            load_default=False,
            error_messages={"invalid": f"{name} must be true or false (or given without a value, for true)"},
            metadata={"description": text},
        )


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


class VerifyRequest(Request):
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


class AdoptRequest(Request):
    """PUT /sys/adopt/attempt."""

    secret_threshold = StrictInteger(
        required=True,
        validate=validate.Range(
            min=2,
            max=254,
            error="secret_threshold must be from 2 to 254: adoption needs more shares than the threshold "
            "(required > secret_threshold, at most 255) to check that they agree",
        ),
        error_messages={
            "required": "secret_threshold is required: how many shares rebuild the existing key",
            "invalid": "secret_threshold must be a JSON integer from 2 to 254",
        },
    )
    required = StrictInteger(
        load_default=None,
        validate=validate.Range(min=3, max=255, error="required must be from secret_threshold + 1 to 255"),
        error_messages={"invalid": "required must be a JSON integer from secret_threshold + 1 to 255"},
        metadata={"description": "how many distinct shares must be brought (default secret_threshold + 1)"},
    )
    known_indices = ShortList(
        StrictInteger(
            validate=validate.Range(min=1, max=255, error="each of known_indices must be an x from 1 to 255"),
            error_messages={"invalid": "each of known_indices must be a JSON integer from 1 to 255"},
        ),
        max_length=255,
        load_default=list,
        error_messages={
            "invalid": "known_indices must be a JSON list of x coordinates (1 to 255)",
            "too_long": "known_indices has {length} entries; there are only {max} x coordinates, "
            "so it can list at most {max}",
        },
        metadata={"description": "x of shares that exist but whose holders will not take part"},
    )
    share_limit = StrictInteger(
        load_default=None,
        validate=validate.Range(
            min=3, max=255, error="share_limit must be from required to 255 (the default)"
        ),
        error_messages={"invalid": "share_limit must be a JSON integer from required to 255"},
    )

    @validates_schema(skip_on_field_errors=True)
    def _room_for_a_check(self, data, **kwargs):
        """Check the rules that join several fields."""
        threshold, required = data["secret_threshold"], data["required"]
        if required is not None and required <= threshold:
            raise ValidationError(
                f"required ({required}) must exceed secret_threshold ({threshold}): one share more "
                "than the threshold is what lets the service catch a wrong one"
            )
        known = data["known_indices"]
        if len(set(known)) != len(known):
            raise ValidationError("known_indices must not list the same x twice")


class AdoptionStatusReply(OmitEmpty):
    """The adoption's status: GET and every successful PUT of adopt/attempt and adopt/update."""

    omit_empty = ("root_token",)

    started = fields.Boolean(required=True)
    nonce = fields.String(required=True)
    progress = fields.Integer(required=True)
    required = fields.Integer(required=True)
    secret_threshold = fields.Integer(required=True)
    complete = fields.Boolean(required=True)
    indices = fields.List(
        fields.Integer(),
        required=True,
        metadata={"description": "on completion, every x recorded in the registry as adopted"},
    )
    root_token = fields.String(
        metadata={
            "description": "token mode, in the start reply only: the operator token, shown this "
            "once; it cancels this adoption and stays the operator token once the set is adopted"
        }
    )
