"""What the schemas are built from: the two base schemas and the field types.

``RequestBody`` ignores unknown fields and reads a null as absent (Vault's way);
``OmitEmpty`` leaves out reply fields that are empty. The field types (strict
numbers, base64 and hex bytes, short lists, UTC times, Vault's query values)
refuse what they cannot take with a sentence that says what is expected.
"""

import base64
import binascii
from datetime import UTC

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, pre_load, validate

__all__ = [
    "OmitEmpty",
    "RequestBody",
    "Base64Bytes",
    "HexBytes",
    "ShortList",
    "StatusCode",
    "StrictInteger",
    "UtcTime",
    "VaultBool",
    "b64",
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


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Base64Bytes(_NullIsInvalid, fields.Field):
    """Bytes carried as standard padded base64."""

    default_error_messages = {"invalid": "must be standard padded base64"}

    def _serialize(self, value, attr, obj, **kwargs):
        return b64(value) if value is not None else None

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise self.make_error("invalid") from None


class ShortList(fields.List):
    """A JSON list refused by its length before any entry is looked at.

    The bound is said once, as ``max_length``; the field writes it into its own
    metadata as maxItems, which apispec passes into the document. Not a
    ``validate.Length`` (never reached: the length is checked first, below),
    and not an apispec attribute function in app/api/openapi.py (a second place
    that knows about ShortList): the field that keeps the bound says it.
    """

    default_error_messages = {"too_long": "{field} has {length} entries; at most {max} are allowed"}

    def __init__(self, cls_or_instance, *, max_length: int, metadata: dict | None = None, **kwargs):
        super().__init__(cls_or_instance, metadata={"maxItems": max_length, **(metadata or {})}, **kwargs)
        self.max_length = max_length

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


class HexBytes(fields.Field):
    """Bytes carried as lowercase hex (replies only)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return value.hex() if value is not None else None


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


class RequestBody(Schema):
    """Base of every request body."""

    #: Fields where an empty string means "not given", as Vault reads them.
    empty_is_absent: tuple[str, ...] = ()

    class Meta:
        unknown = EXCLUDE
        # What the document says of every request body (apispec reads Meta.description).
        description = "Unknown fields are ignored; a null field counts as absent."

    @pre_load
    def _drop_absent(self, data, **kwargs):
        """Drop null fields (and empty ones where that means absent)."""
        if not isinstance(data, dict):
            raise ValidationError("the request body must be a JSON object")
        return {
            k: v for k, v in data.items() if v is not None and not (v == "" and k in self.empty_is_absent)
        }
