"""Adoption: a quorum brings an existing (Vault) share set in, checked for consistency."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from .. import shamir
from ..errors import BadRequest, Conflict
from ..snapshot import Proof, SealConfig, SnapshotError, opens, parse_proof
from ..state import ShareRecord, State
from ..token import authorize, new_token, token_hash
from .common import ADOPT_URL, MAX_X, Context, custody_digest, verifier
from .quorum import Quorum, wipe

__all__ = [
    "ADOPT_SHARE_LENGTHS",
    "Adoption",
    "AdoptionStatus",
    "Terms",
    "Snapshot",
    "authorize_cancel",
    "cancel",
    "check_request",
    "complete",
    "refuse_second",
    "require_adoption",
    "start",
    "status",
    "update",
]

#: Adopted keys may be 1 to 64 bytes (Vault's own are 16 to 32): shares are one more.
ADOPT_SHARE_LENGTHS = range(2, 66)


@dataclass(frozen=True)
class AdoptionStatus:
    """The progress of an adoption, as GET reports it."""

    started: bool
    nonce: str
    progress: int
    required: int
    secret_threshold: int
    complete: bool = False
    indices: tuple[int, ...] = ()
    #: The operator token, in the start reply only (token mode).
    root_token: str = ""
    #: How the set is checked: "snapshot" (the shares must open the cluster's
    #: snapshot) or "consistency" (more than t shares must agree); "" when none is started.
    check: str = ""
    #: What the lead should know about the check, such as a snapshot that cannot prove recovery keys.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What a lead sends of a raft snapshot: its seal configs and its three small files."""

    seal: SealConfig
    recovery: SealConfig | None
    meta: bytes
    sums: bytes
    sealed: bytes


@dataclass(frozen=True)
class Terms:
    """What an adoption was started with, once checked."""

    threshold: int
    required: int
    known: tuple[int, ...]
    share_limit: int
    #: The snapshot the combined key must open; None without one, or for recovery keys.
    proof: Proof | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class Adoption:
    """An adoption in progress: what it was started with and the quorum's shares."""

    request: Terms
    quorum: Quorum
    #: SHA-256 of the operator token the start returned ("" in open mode):
    #: it cancels this adoption, and the state keeps it once the set is adopted.
    token_hash: str = ""


def check_request(
    secret_threshold: int | None,
    required: int | None,
    known_indices: Sequence[int],
    share_limit: int | None,
    snapshot: Snapshot | None = None,
) -> Terms:
    """Refuse numbers that do not fit together; fill in the defaults (from the snapshot, when sent).

    Each number's own range is checked once, by the request's schema
    (app/api/adopt_schemas.py, which the OpenAPI document shows); this checks
    only how they fit together, and with the snapshot, which only this knows.
    """
    proof, warnings = None, ()
    if snapshot is not None:
        secret_threshold, proof, warnings = _from_snapshot(snapshot, secret_threshold)
    if secret_threshold is None:
        raise BadRequest("secret_threshold is required: how many shares rebuild the existing key")
    least = secret_threshold if proof is not None else secret_threshold + 1
    required = least if required is None else required
    share_limit = MAX_X if share_limit is None else share_limit
    if proof is not None and required < secret_threshold:
        raise BadRequest(
            f"required must be from the snapshot's threshold ({secret_threshold}) to 255: "
            "fewer shares rebuild no key to open the snapshot with"
        )
    if proof is None and required <= secret_threshold:
        raise BadRequest(
            f"required ({required}) must exceed secret_threshold ({secret_threshold}): one share more "
            "than the threshold is what lets the service catch a wrong one"
        )
    known = tuple(sorted(set(known_indices)))
    if len(known) != len(known_indices):
        raise BadRequest("known_indices must not list the same x twice")
    if share_limit < max(required, len(known)):
        raise BadRequest(
            f"share_limit ({share_limit}) must be at least the number of shares that "
            "already exist (required, and every known index)"
        )
    return Terms(
        threshold=secret_threshold,
        required=required,
        known=known,
        share_limit=share_limit,
        proof=proof,
        warnings=warnings,
    )


def _from_snapshot(
    snapshot: Snapshot, secret_threshold: int | None
) -> tuple[int, Proof | None, tuple[str, ...]]:
    """Return the threshold the snapshot gives, its proof (None for recovery keys) and any warning."""
    try:
        proof = parse_proof(snapshot.meta, snapshot.sums, snapshot.sealed)
    except SnapshotError as exc:
        raise BadRequest(f"snapshot: {exc}") from None
    seal, warnings = snapshot.seal, ()
    config, name = seal, "seal config"
    if seal.type != "shamir":
        if snapshot.recovery is None:
            raise BadRequest(
                f"snapshot: the seal is {seal.type!r} (auto-unseal), so its holders keep recovery keys: "
                "send recovery_seal_config (core/recovery-seal-config) too"
            )
        config, name, proof = snapshot.recovery, "recovery seal config", None
        warnings = (
            f"the snapshot cannot prove recovery keys: its SHA256SUMS.sealed is encrypted by the "
            f"{seal.type} seal, not by a key the recovery keys rebuild; the threshold "
            f"({config.secret_threshold}) comes from core/recovery-seal-config, and the "
            "t + 1 consistency check applies",
        )
    threshold = config.secret_threshold
    if secret_threshold is not None and secret_threshold != threshold:
        raise BadRequest(
            f"secret_threshold is {secret_threshold}, but the snapshot's {name} says {threshold}: "
            "the threshold comes from the snapshot; leave secret_threshold out, or check that the "
            "snapshot is of this cluster"
        )
    if threshold < 2:
        raise BadRequest(
            f"the snapshot's {name} has threshold {threshold}: that key is not split into shares, "
            "so there is nothing to adopt"
        )
    if threshold >= MAX_X:
        raise BadRequest(
            f"the snapshot's {name} has threshold {threshold}: every one of the {MAX_X} x coordinates "
            "then holds a share that is needed, so there is no x left for a new share to adopt the set for"
        )
    return threshold, proof, warnings


def status(adoption: Adoption | None) -> AdoptionStatus:
    """Report the adoption in progress, or that none is."""
    if adoption is None:
        return AdoptionStatus(started=False, nonce="", progress=0, required=0, secret_threshold=0)
    return AdoptionStatus(
        started=True,
        nonce=adoption.quorum.nonce,
        progress=adoption.quorum.progress,
        required=adoption.request.required,
        secret_threshold=adoption.request.threshold,
        check=_check(adoption.request),
        warnings=adoption.request.warnings,
    )


def _check(request: Terms) -> str:
    """Name how the set is checked: against the snapshot, or by the consistency of t + 1 shares."""
    return "snapshot" if request.proof is not None else "consistency"


def refuse_second(adoption: Adoption | None) -> None:
    """Refuse to start an adoption while one is in progress."""
    if adoption is not None:
        raise Conflict(
            f"an adoption is already in progress; cancel it with DELETE {ADOPT_URL} before starting another"
        )


def start(ctx: Context, request: Terms) -> tuple[Adoption, str]:
    """Begin adopting a share set that another system (Vault) split; return it and its token."""
    quorum = ctx.quorum(required=request.required, lengths=ADOPT_SHARE_LENGTHS)
    root_token = new_token() if ctx.token_mode else ""
    ctx.trail.record(
        "adoption_started",
        **quorum.label,
        threshold=request.threshold,
        required=request.required,
        known_indices=list(request.known),
        share_limit=request.share_limit,
        check=_check(request),
        **_snapshot_fields(request.proof),
    )
    hashed = token_hash(root_token) if root_token else ""
    return Adoption(request=request, quorum=quorum, token_hash=hashed), root_token


def require_adoption(adoption: Adoption | None) -> Adoption:
    """Return the adoption in progress, or refuse because there is none."""
    if adoption is None:
        raise Conflict(f"no adoption is in progress; start one with PUT {ADOPT_URL}")
    return adoption


def authorize_cancel(ctx: Context, adoption: Adoption | None, state: State | None, token: str | None) -> None:
    """In token mode, refuse a cancel without the adoption's (or, once adopted, the service's) token."""
    if not ctx.token_mode:
        return
    if adoption is not None:
        authorize(token, adoption.token_hash)
    elif state is not None:
        authorize(token, state.token_hash)


def cancel(ctx: Context, adoption: Adoption) -> None:
    """Record the cancel and forget the submitted shares."""
    ctx.trail.record("adoption_cancelled", **adoption.quorum.label, progress=adoption.quorum.progress)
    adoption.quorum.clear()


def update(ctx: Context, adoption: Adoption, key: str, nonce: str | None) -> AdoptionStatus:
    """Check one holder's share and take it; with ``required`` of them, check the set and adopt it.

    Shares before the last get a ``share_accepted`` line each; the last one's
    outcome is ``adopted`` or ``adoption_failed``.
    """
    quorum = adoption.quorum
    share = quorum.check(key, nonce)
    if not quorum.last:
        ctx.trail.record("share_accepted", **quorum.label, index=share[-1], progress=quorum.progress + 1)
        quorum.take(share)
        return status(adoption)
    quorum.take(share)
    with quorum.spent() as shares:
        return complete(ctx, adoption, shares)


def _snapshot_fields(proof: Proof | None) -> dict:
    """Return the trail's fields naming the snapshot (its raft index and term), if any."""
    return {} if proof is None else {"snapshot_index": proof.index, "snapshot_term": proof.term}


def complete(ctx: Context, adoption: Adoption, shares: list[bytes]) -> AdoptionStatus:
    """Check the shares (against the snapshot, or by their agreement), then take the key in."""
    request = adoption.request
    xs = [s[-1] for s in shares]
    basis = shares[: request.threshold]
    # Every share beyond the threshold must be the one the first t predict.
    consistent = all(
        hmac.compare_digest(shamir.interpolate(basis, s[-1]), s) for s in shares[request.threshold :]
    )
    if not consistent:
        ctx.trail.failed("adoption_failed", **adoption.quorum.label, indices=xs)
        raise BadRequest(
            f"the {len(shares)} shares are not consistent: they do not lie on one polynomial "
            f"of threshold {request.threshold}, so at least one is wrong or mistyped (or the "
            "threshold is not theirs); progress was reset to 0: each holder should check "
            "their share and submit it again"
        )
    lower = _lower_threshold(shares, request.threshold) if len(shares) > request.threshold else None
    if lower is not None:
        ctx.trail.failed("adoption_failed", **adoption.quorum.label, indices=xs)
        raise BadRequest(
            f"the {len(shares)} shares agree, but any {lower} of them already rebuild the key: "
            f"this share set's threshold is {lower}, not {request.threshold}, and adopted at "
            f"{request.threshold} every share minted here would be one that {lower} others "
            f"make redundant; progress was reset to 0: cancel the adoption and start it again "
            f"with secret_threshold {lower}"
        )
    if request.proof is not None and not _opens(basis, request.proof):
        ctx.trail.failed("adoption_failed", nonce=adoption.quorum.nonce, indices=xs, check="snapshot")
        raise BadRequest(
            f"these {len(shares)} shares do not open this cluster's snapshot: the key they rebuild does "
            "not decrypt its SHA256SUMS.sealed, so at least one is wrong or mistyped, or they belong "
            "to another cluster, or the snapshot is older than a rekey",
            "nothing was adopted and progress was reset to 0: each holder can check their share "
            "offline with 'generate-share snapshot check', and the lead can take a fresh snapshot",
        )
    master = bytearray(shamir.combine(basis))
    try:
        salt = secrets.token_bytes(32)
        mac = verifier(bytes(master), salt)
    finally:
        wipe([master])
    now = ctx.clock()
    custody_key = secrets.token_bytes(32)
    submitted = {s[-1]: custody_digest(custody_key, s) for s in shares}
    indices = sorted(set(submitted) | set(request.known))
    records = tuple(
        ShareRecord(index=x, origin="adopted", issued_at=now, digest=submitted.get(x, "")) for x in indices
    )
    share_limit = max(request.share_limit, len(indices))
    key_length = len(shares[0]) - 1
    ctx.trail.initialize(
        State(
            threshold=request.threshold,
            key_length=key_length,
            verifier_salt=salt,
            verifier_mac=mac,
            custody_key=custody_key,
            share_limit=share_limit,
            shares=records,
            token_hash=adoption.token_hash,
            snapshot=request.proof,
        ),
        "adopted",
        **adoption.quorum.label,
        threshold=request.threshold,
        key_length=key_length,
        indices=indices,
        submitted=xs,
        known_indices=list(request.known),
        share_limit=share_limit,
        check=_check(request),
        **_snapshot_fields(request.proof),
    )
    return AdoptionStatus(
        started=True,
        nonce=adoption.quorum.nonce,
        progress=len(shares),
        required=request.required,
        secret_threshold=request.threshold,
        complete=True,
        indices=tuple(indices),
        check=_check(request),
        warnings=request.warnings,
    )


def _opens(shares: list[bytes], proof: Proof) -> bool:
    """Tell whether the key these shares rebuild opens the snapshot; the key is wiped after."""
    key = bytearray(shamir.combine(shares))
    try:
        return opens(bytes(key), proof)
    finally:
        wipe([key])


def _predicts(basis: list[bytes], others: list[bytes]) -> bool:
    """Tell whether the polynomial through ``basis`` passes through every one of ``others``."""
    if len(basis) == 1:  # a constant: every share has the same y bytes
        return all(hmac.compare_digest(s[:-1], basis[0][:-1]) for s in others)
    return all(hmac.compare_digest(shamir.interpolate(basis, s[-1]), s) for s in others)


def _lower_threshold(shares: list[bytes], threshold: int) -> int | None:
    """Return the set's real threshold when it is below ``threshold``, else None.

    The shares already agree on one polynomial of degree threshold - 1. Its
    top coefficient is zero in every byte exactly when the first threshold - 1
    shares predict the next one: then the set was split with a lower threshold
    (by chance, with probability at most 2^-8 per key byte). The smallest t'
    whose first t' shares predict every other share is that threshold.
    """
    if not _predicts(shares[: threshold - 1], [shares[threshold - 1]]):
        return None
    return next(t for t in range(1, threshold) if _predicts(shares[:t], shares[t:]))
