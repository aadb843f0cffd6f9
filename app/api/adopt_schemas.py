"""The adoption's schemas, with the fields of a raft snapshot as `adopt start --snapshot` sends them.

Only what the check needs leaves the lead's machine: the seal configs read
from state.bin, and meta.json, SHA256SUMS and SHA256SUMS.sealed as they are
in the archive (a few hundred bytes; state.bin, the encrypted store, never).
Kept apart from app/api/schemas.py, which re-exports them.
"""

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from ..snapshot import SealConfig
from .fieldtypes import Base64Bytes, OmitEmpty, RequestBody, ShortList, StrictInteger

__all__ = [
    "AdoptRequest",
    "AdoptionStatusReply",
    "SealConfigRequest",
    "SnapshotRequest",
    "SnapshotTakenReply",
    "seal_config",
]


class _Part(RequestBody):
    """A JSON object inside the request body."""

    @pre_load
    def _drop_absent(self, data, **kwargs):
        """Drop null fields; refuse anything but an object, naming it."""
        if not isinstance(data, dict):
            raise ValidationError(f"must be a JSON object: {self.part}")
        return {k: v for k, v in data.items() if v is not None}


class SealConfigRequest(_Part):
    """A seal config as the cluster stores it (core/seal-config); other fields are ignored."""

    part = 'a seal config such as {"type": "shamir", "secret_shares": 5, "secret_threshold": 3}'

    type = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64, error="type must be the seal's type, such as shamir"),
        error_messages={
            "required": "type is required: the seal's type, such as shamir",
            "invalid": "type must be a string: the seal's type, such as shamir",
        },
        metadata={"description": "the seal's type: shamir, or an auto-unseal seal (awskms, transit, ...)"},
    )
    secret_shares = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=255, error="secret_shares must be from 1 to 255"),
        error_messages={
            "required": "secret_shares is required: how many shares the cluster split its key into",
            "invalid": "secret_shares must be a JSON integer from 1 to 255",
        },
        metadata={"description": "how many shares the cluster split its key into"},
    )
    secret_threshold = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=255, error="secret_threshold must be from 1 to 255"),
        error_messages={
            "required": "secret_threshold is required: how many shares rebuild the cluster's key",
            "invalid": "secret_threshold must be a JSON integer from 1 to 255",
        },
        metadata={"description": "how many shares rebuild the cluster's key"},
    )


def _file(name: str, what: str) -> Base64Bytes:
    """Return the field of one small file of the archive, base64."""
    return Base64Bytes(
        required=True,
        error_messages={
            "required": f"{name} is required: {what}, base64",
            "invalid": f"{name} must be standard padded base64 of {what}",
        },
        metadata={"description": f"{what}, base64, byte for byte as in the archive"},
    )


class SnapshotRequest(_Part):
    """The part of a Vault or OpenBao raft snapshot that proves shares: never the encrypted store."""

    part = "the seal configs and three small files of a raft snapshot"

    seal_config = fields.Nested(
        SealConfigRequest,
        required=True,
        error_messages={
            "required": "seal_config is required: core/seal-config from the snapshot's state.bin"
        },
        metadata={"description": "core/seal-config from the snapshot's state.bin"},
    )
    recovery_seal_config = fields.Nested(
        SealConfigRequest,
        load_default=None,
        metadata={"description": "core/recovery-seal-config, for a cluster whose seal is not shamir"},
    )
    meta = _file("meta", "the snapshot's meta.json")
    sha256sums = _file("sha256sums", "the snapshot's SHA256SUMS")
    sealed = _file("sealed", "the snapshot's SHA256SUMS.sealed")


class AdoptRequest(RequestBody):
    """PUT /sys/adopt/attempt."""

    secret_threshold = StrictInteger(
        load_default=None,
        validate=validate.Range(
            min=2,
            max=254,
            error="secret_threshold must be from 2 to 254: adoption needs more shares than the threshold "
            "(required > secret_threshold, at most 255) to check that they agree",
        ),
        error_messages={
            "invalid": "secret_threshold must be a JSON integer from 2 to 254",
        },
        metadata={"description": "how many shares rebuild the existing key; required without a snapshot"},
    )
    required = StrictInteger(
        load_default=None,
        validate=validate.Range(min=2, max=255, error="required must be from secret_threshold + 1 to 255"),
        error_messages={"invalid": "required must be a JSON integer from secret_threshold + 1 to 255"},
        metadata={
            "description": "how many distinct shares must be brought: default secret_threshold + 1, "
            "or with a snapshot its threshold"
        },
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
        # Its default is [], so marshmallow does not allow None; the body's null is dropped first.
        metadata={
            "description": "x of shares that exist but whose holders will not take part",
            "nullable": True,
        },
    )
    share_limit = StrictInteger(
        load_default=None,
        validate=validate.Range(
            min=3, max=255, error="share_limit must be from required to 255 (the default)"
        ),
        error_messages={"invalid": "share_limit must be a JSON integer from required to 255"},
        metadata={"description": "the most shares that may ever exist (default 255)"},
    )
    snapshot = fields.Nested(
        SnapshotRequest,
        load_default=None,
        metadata={
            "description": "what `generate-share adopt start --snapshot FILE` reads from a raft snapshot: "
            "the threshold then comes from its seal config, `required` defaults to it, and the set is "
            "adopted only if the shares' key opens the snapshot"
        },
    )


class AdoptionStatusReply(OmitEmpty):
    """The adoption's status: GET and every successful PUT of adopt/attempt and adopt/update."""

    omit_empty = ("root_token", "warnings")

    started = fields.Boolean(
        required=True,
        metadata={"description": "whether an adoption is in progress (or, with complete, just ended)"},
    )
    nonce = fields.String(
        required=True,
        metadata={
            "description": "the adoption's nonce, sent with every share; in token mode shown only with "
            "the operator token of the adoption's start reply; empty when none is in progress"
        },
    )
    progress = fields.Integer(
        required=True, metadata={"description": "how many distinct shares the adoption holds"}
    )
    required = fields.Integer(
        required=True,
        metadata={"description": "how many shares complete the adoption; 0 when none is in progress"},
    )
    secret_threshold = fields.Integer(
        required=True,
        metadata={"description": "the threshold of the share set; 0 when none is in progress"},
    )
    complete = fields.Boolean(
        required=True, metadata={"description": "true in the reply that adopts the set"}
    )
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
    check = fields.String(
        required=True,
        metadata={
            "description": "snapshot: the shares must open the cluster's snapshot; consistency: more "
            "than secret_threshold shares must agree; empty when no adoption is in progress"
        },
    )
    warnings = fields.List(
        fields.String(),
        metadata={
            "description": "what the lead should know, such as a snapshot that cannot prove recovery keys"
        },
    )


class SnapshotTakenReply(Schema):
    """The cluster snapshot an adopted set is bound to: every share minted from it opens the snapshot."""

    index = fields.Integer(
        required=True, metadata={"description": "the raft index of the snapshot (meta.json)"}
    )
    term = fields.Integer(
        required=True, metadata={"description": "the raft term of the snapshot (meta.json)"}
    )


def seal_config(doc: dict | None) -> SealConfig | None:
    """Return a loaded seal config as the core's SealConfig (None stays None)."""
    if doc is None:
        return None
    return SealConfig(
        type=doc["type"], secret_shares=doc["secret_shares"], secret_threshold=doc["secret_threshold"]
    )
