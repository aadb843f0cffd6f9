"""The state file: what the service keeps between restarts, and its format.

What is kept: the threshold, the key length, the verifier (an HMAC that tells
a right reconstruction from a wrong one without storing the key), the custody
key, the registry of every x ever issued, and the head of the audit trail at
the last change of state (the head file, ``audit.head``, records it after
every other event; from format 2 on it must exist beside the state file).
No share and no key is ever written here. This module only describes and
parses the file; ``app.records`` writes it (atomically, together with the
trail's line) and ``app.folder`` holds the folder it lives in.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from .audit import GENESIS, LINE_FORMAT
from .snapshot import Proof, SnapshotError, parse_proof

__all__ = ["STATE_FILE", "Head", "ShareRecord", "State", "encode_state_file", "parse_state_file"]

STATE_FILE = "state.json"
FORMAT = LINE_FORMAT  # 2: the head file exists beside the state file
#: Format 1 predates the head file; a folder in it is upgraded at the next start.
LEGACY_FORMATS = frozenset({1})


@dataclass(frozen=True)
class ShareRecord:
    """One issued x: where it came from, when, to whose PGP key, and its custody.

    ``digest`` is HMAC-SHA256 of the share under the store's custody key: it
    confirms a share a holder presents, but cannot help anyone find one. It is
    empty for a share the service never saw (an adopted index that was only
    named). ``verified_at`` is when a holder last proved they still have it.
    """

    index: int
    origin: str
    issued_at: str
    pgp_fingerprint: str = ""
    digest: str = ""
    verified_at: str = ""

    @property
    def verifiable(self) -> bool:
        """Tell whether a holder can prove custody of this share."""
        return bool(self.digest)


@dataclass(frozen=True)
class State:
    """Everything the service keeps between restarts."""

    threshold: int
    key_length: int
    verifier_salt: bytes
    verifier_mac: bytes
    custody_key: bytes
    share_limit: int = 255
    shares: tuple[ShareRecord, ...] = field(default_factory=tuple)
    #: SHA-256 (hex) of the operator token; "" when there is none (open mode, or
    #: a file written before tokens existed). A plain hash is enough: the token
    #: is 256 random bits, so there is nothing to guess and no need for a slow one.
    token_hash: str = ""
    #: The cluster snapshot an adopted set was proved against (not secret): every
    #: share minted from the set must open it too. None for a key made here, or
    #: a set adopted without a snapshot.
    snapshot: Proof | None = None

    @property
    def issued_x(self) -> frozenset[int]:
        """Return every x ever handed out."""
        return frozenset(r.index for r in self.shares)

    def to_dict(self) -> dict:
        """Return the JSON-ready form kept in the state file."""
        return {
            "threshold": self.threshold,
            "key_length": self.key_length,
            "share_limit": self.share_limit,
            "verifier": {"salt": self.verifier_salt.hex(), "hmac": self.verifier_mac.hex()},
            "custody_key": self.custody_key.hex(),
            "shares": [dict(vars(r)) for r in self.shares],  # asdict() deep-copies: slow here
            "token_hash": self.token_hash,
            "snapshot": _proof_dict(self.snapshot),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> State:
        """Parse the state file's form; ValueError names what is wrong."""
        try:
            shares = tuple(
                ShareRecord(
                    index=_int(r["index"], 1, 255),
                    origin=str(r["origin"]),
                    issued_at=str(r["issued_at"]),
                    pgp_fingerprint=str(r.get("pgp_fingerprint", "")),
                    digest=str(r.get("digest", "")),
                    verified_at=str(r.get("verified_at", "")),
                )
                for r in doc["shares"]
            )
            state = cls(
                threshold=_int(doc["threshold"], 1, 255),
                key_length=_int(doc["key_length"], 1, 64),
                share_limit=_int(doc["share_limit"], 1, 255),
                verifier_salt=bytes.fromhex(doc["verifier"]["salt"]),
                verifier_mac=bytes.fromhex(doc["verifier"]["hmac"]),
                custody_key=bytes.fromhex(doc["custody_key"]),
                shares=shares,
                token_hash=_token_hash(doc.get("token_hash", "")),
                snapshot=_proof(doc.get("snapshot")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"missing or mistyped field {exc}") from None
        if len(state.issued_x) != len(shares):
            raise ValueError("the registry lists the same x twice")
        return state


@dataclass(frozen=True)
class Head:
    """The last line of the audit trail that the state file vouches for."""

    seq: int = 0
    digest: str = GENESIS
    #: HMAC of (seq, digest) under the audit key (app.anchor), if the records have one; not
    #: part of a head's identity: two records of one head are equal, anchored or not.
    anchor: str | None = field(default=None, compare=False)


def encode_state_file(state: State | None, head: Head) -> bytes:
    """Serialize the whole state file."""
    doc = {
        "format": FORMAT,
        "audit": {"seq": head.seq, "head": head.digest, **({"anchor": head.anchor} if head.anchor else {})},
        "state": state.to_dict() if state is not None else None,
    }
    # No indent: json only uses its C encoder without one, and this runs on every change.
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def parse_state_file(raw: bytes) -> tuple[State | None, Head, int]:
    """Parse the whole state file into (state, head, format); ValueError names what is wrong."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValueError("it is not valid JSON") from None
    form = doc.get("format") if isinstance(doc, dict) else None
    if type(form) is not int or form not in {FORMAT, *LEGACY_FORMATS}:
        raise ValueError(f"unknown format (expected format {FORMAT})")
    try:
        anchor = doc["audit"].get("anchor")
        if anchor is not None and (not isinstance(anchor, str) or len(anchor) != 64):
            raise ValueError("the audit anchor must be 64 hex digits")
        head = Head(seq=_int(doc["audit"]["seq"], 0, 2**62), digest=str(doc["audit"]["head"]), anchor=anchor)
        raw_state = doc["state"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"missing or mistyped field {exc}") from None
    return (State.from_dict(raw_state) if raw_state is not None else None), head, doc["format"]


def _proof_dict(proof: Proof | None) -> dict | None:
    """Return the snapshot binding's JSON-ready form (its three small files, base64)."""
    if proof is None:
        return None
    return {
        name: base64.b64encode(getattr(proof, name)).decode("ascii") for name in ("meta", "sums", "sealed")
    }


def _proof(value: object) -> Proof | None:
    """Parse a stored snapshot binding (None when there is none), checking it as at adoption."""
    if value is None:
        return None
    try:
        meta, sums, sealed = (base64.b64decode(value[k], validate=True) for k in ("meta", "sums", "sealed"))
        return parse_proof(meta, sums, sealed)
    except (SnapshotError, ValueError) as exc:
        raise ValueError(f"the snapshot binding is not valid: {exc}") from None


def _token_hash(value: object) -> str:
    """Return a stored token hash (64 lowercase hex digits, or "" for none), else raise ValueError."""
    if not isinstance(value, str) or (value and (len(value) != 64 or value.strip("0123456789abcdef"))):
        raise ValueError("token_hash must be 64 lowercase hex digits, or empty")
    return value


def _int(value: object, low: int, high: int) -> int:
    """Return value if it is an int in [low, high], else raise ValueError."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}")
    return value
