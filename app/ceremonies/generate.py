"""The generate-share attempt: a quorum mints one new share of the key at a fresh x."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from .. import pgp as pgp_module
from .. import shamir
from ..encoding import otp_check
from ..errors import BadRequest, Conflict, Unavailable
from ..snapshot import opens
from ..state import ShareRecord, State
from ..token import authorize
from .common import (
    ATTEMPT_URL,
    MAX_X,
    Context,
    close,
    custody_digest,
    encrypt,
    fingerprint,
    one_length,
    subkey_fingerprint,
    verifier,
)
from .quorum import Quorum, wipe

__all__ = [
    "Attempt",
    "Status",
    "authorize_lead",
    "cancel",
    "check_custody",
    "check_start",
    "complete",
    "require_attempt",
    "start",
    "started",
    "status",
    "update",
]


@dataclass(frozen=True)
class Status:
    """The progress of the share generation attempt, as GET reports it."""

    started: bool
    nonce: str
    progress: int
    required: int
    pgp_fingerprint: str = ""
    complete: bool = False
    key: bytes = b""
    pgp_subkey_fingerprint: str = ""
    #: The one-time pad, in the start reply only; the completing ``key`` is the share XOR it.
    otp: bytes = b""
    #: The pad's length; 0 without one, None in open mode (where the reply leaves it out).
    otp_length: int | None = None
    #: The completing reply of a masked share: its check, keyed by the pad (app.encoding.otp_check).
    otp_check: str = ""
    #: Sentences about what was taken but could not be checked (an update's reply only).
    warnings: tuple[str, ...] = ()


@dataclass
class Attempt:
    """An attempt in progress: the quorum's shares, the new holder's PGP key, the pad.

    The pad is a bytearray in memory only, overwritten when the attempt ends
    (best effort: the start reply's copy is Python's to free).
    """

    quorum: Quorum
    pgp_key: pgp_module.PublicKey | None = None
    otp: bytearray | None = None

    def forget(self) -> None:
        """Overwrite the pad and release the PGP key."""
        if self.otp is not None:
            wipe([self.otp])
        close(self.pgp_key)


def status(state: State, attempt: Attempt | None, *, token_mode: bool = False) -> Status:
    """Report the attempt in progress, or that none is."""
    if attempt is None:
        pad = 0 if token_mode else None
        return Status(started=False, nonce="", progress=0, required=state.threshold, otp_length=pad)
    return Status(
        started=True,
        nonce=attempt.quorum.nonce,
        progress=attempt.quorum.progress,
        required=state.threshold,
        pgp_fingerprint=fingerprint(attempt.pgp_key),
        pgp_subkey_fingerprint=subkey_fingerprint(attempt.pgp_key),
        otp_length=_otp_length(attempt, token_mode),
    )


def _otp_length(attempt: Attempt, token_mode: bool) -> int | None:
    if not token_mode:
        return None
    return len(attempt.otp) if attempt.otp is not None else 0


def started(state: State, attempt: Attempt, *, token_mode: bool = False) -> Status:
    """Report a fresh attempt as its start reply does: with the pad, the one time it is shown."""
    report = status(state, attempt, token_mode=token_mode)
    if attempt.otp is None:
        return report
    return replace(report, otp=bytes(attempt.otp))


def authorize_lead(ctx: Context, state: State, token: str | None) -> None:
    """In token mode, refuse a start or cancel without the operator token."""
    if ctx.token_mode:
        authorize(token, state.token_hash)


def check_start(state: State, attempt: Attempt | None) -> None:
    """Refuse a start that cannot lead to a new share, before any PGP work."""
    if attempt is not None:
        raise Conflict(
            "share generation already in progress; cancel it with "
            f"DELETE {ATTEMPT_URL} before starting another"
        )
    free_x(state)  # refuse now rather than after the quorum gathered


def start(ctx: Context, state: State, key: pgp_module.PublicKey | None) -> Attempt:
    """Begin an attempt whose new share is encrypted to ``key`` (when given).

    In token mode without a PGP key the new share will be handed out XORed
    with a one-time pad as long as a share, which only the start reply shows.
    """
    quorum = ctx.quorum(required=state.threshold, lengths=one_length(state))
    otp = bytearray(secrets.token_bytes(state.key_length + 1)) if ctx.token_mode and key is None else None
    ctx.trail.record(
        "attempt_started",
        **quorum.label,
        pgp_fingerprint=fingerprint(key),
        pgp_subkey_fingerprint=subkey_fingerprint(key),
        otp_length=len(otp) if otp is not None else 0,
    )
    return Attempt(quorum=quorum, pgp_key=key, otp=otp)


def require_attempt(attempt: Attempt | None) -> Attempt:
    """Return the attempt in progress, or refuse because there is none."""
    if attempt is None:
        raise Conflict(f"no share generation attempt is in progress; start one with PUT {ATTEMPT_URL}")
    return attempt


def cancel(ctx: Context, attempt: Attempt) -> None:
    """Record the cancel, forget the submitted shares and release the PGP key."""
    ctx.trail.record("attempt_cancelled", **attempt.quorum.label, progress=attempt.quorum.progress)
    attempt.quorum.clear()
    attempt.forget()


def update(ctx: Context, state: State, attempt: Attempt, key: str, nonce: str | None) -> Status:
    """Check one holder's share and take it; at the threshold, rebuild the key and issue the new share.

    The share is checked before it counts: at an x whose custody digest the
    service holds, a share that does not match is refused at once and
    spends nobody's share; at an x without one it is taken unchecked, which
    the reply and the trail say. Shares before the last get a
    ``share_accepted`` line each. The last gets none: the outcome's line
    names every x, and a failure to record the outcome leaves the trail as
    it was.
    """
    quorum = attempt.quorum
    share = quorum.check(key, nonce)
    try:
        checked = check_custody(state, share)
    except BadRequest:
        wipe([share])
        raise
    if not quorum.last:
        x, progress = share[-1], quorum.progress + 1
        ctx.trail.record("share_accepted", **quorum.label, index=x, progress=progress, checked=checked)
        quorum.take(share, checked=checked)
        return replace(
            status(state, attempt, token_mode=ctx.token_mode), warnings=_warnings(quorum.unchecked)
        )
    quorum.take(share, checked=checked)
    unchecked = quorum.unchecked
    with quorum.spent() as shares:
        done = complete(ctx, state, attempt, shares, unchecked)
    return replace(done, warnings=_warnings(unchecked))


def check_custody(state: State, share: bytearray) -> bool:
    """Refuse a share that is not the one recorded at its x; tell whether there was one to compare with."""
    x = share[-1]
    record = next((r for r in state.shares if r.index == x), None)
    if record is None or not record.verifiable:
        return False
    if not hmac.compare_digest(custody_digest(state.custody_key, share), record.digest):
        raise BadRequest(
            f"this share is not the one the service recorded at x = {x}; it was not counted and "
            "no holder's share was spent: check that you copied your whole share (PUT "
            "/v1/sys/shares/verify checks it alone) and send it again"
        )
    return True


def _warnings(unchecked: list[int]) -> tuple[str, ...]:
    """Say which shares were taken without a check, if any."""
    if not unchecked:
        return ()
    xs = ", ".join(str(x) for x in unchecked)
    return (
        f"taken unchecked at x = {xs}: the service holds no custody digest there (no share was "
        "recorded at that x, or an adopted share never reached it), so a wrong share there is "
        "found only when the quorum completes",
    )


def complete(
    ctx: Context, state: State, attempt: Attempt, shares: list[bytearray], unchecked: list[int] = ()
) -> Status:
    """Rebuild the key in memory, check it, and issue a share at a fresh x."""
    master = bytearray(shamir.combine(shares))
    try:
        ok = hmac.compare_digest(verifier(bytes(master), state.verifier_salt), state.verifier_mac)
    finally:
        wipe([master])
    label = attempt.quorum.label
    indices = [s[-1] for s in shares]
    if not ok:
        ctx.trail.failed("reconstruction_failed", **label, indices=indices, unchecked=list(unchecked))
        raise BadRequest(
            "the submitted shares did not reconstruct the master key; progress "
            "was reset to 0: each holder should check their share and submit it again"
        )
    x = secrets.choice(free_x(state))
    new_share = bytearray(shamir.interpolate(shares, x))
    if state.snapshot is not None:
        _open_snapshot(ctx, state, bytes(new_share), shares, label)
    check = ""
    try:
        if attempt.pgp_key:
            key = encrypt(ctx.pgp, bytes(new_share), attempt.pgp_key)
        elif attempt.otp is not None:
            key = bytes(a ^ b for a, b in zip(new_share, attempt.otp, strict=True))
            check = otp_check(attempt.otp, key)
        else:
            key = bytes(new_share)  # the reply's copy: Python's to free
        digest = custody_digest(state.custody_key, new_share)
    finally:
        wipe([new_share])
    primary, subkey = fingerprint(attempt.pgp_key), subkey_fingerprint(attempt.pgp_key)
    # Recorded durably before anyone sees it: a share the registry does not
    # list must never exist. If this raises, nothing was handed out.
    ctx.trail.add_share(
        ShareRecord(
            index=x,
            origin="generate-share",
            issued_at=ctx.clock(),
            pgp_fingerprint=primary,
            digest=digest,
        ),
        "share_issued",
        **label,
        index=x,
        pgp_fingerprint=primary,
        pgp_subkey_fingerprint=subkey,
        indices=indices,
        unchecked=list(unchecked),
    )
    otp_length = _otp_length(attempt, ctx.token_mode)
    attempt.forget()
    return Status(
        started=True,
        nonce=attempt.quorum.nonce,
        progress=len(shares),
        required=state.threshold,
        pgp_fingerprint=primary,
        pgp_subkey_fingerprint=subkey,
        complete=True,
        key=key,
        otp_length=otp_length,
        otp_check=check,
    )


def _open_snapshot(ctx: Context, state: State, new_share: bytes, shares: list[bytes], label: dict) -> None:
    """Refuse to issue a share that, with t - 1 of the quorum's, does not open the adopted snapshot."""
    key = bytearray(shamir.combine([new_share, *shares[: state.threshold - 1]]))
    try:
        good = opens(bytes(key), state.snapshot)
    finally:
        wipe([key])
    if not good:
        ctx.trail.failed("snapshot_check_failed", **label, index=new_share[-1])
        raise Unavailable(
            "the new share, with the quorum's others, did not open the cluster snapshot the share "
            "set was adopted with, so it was not issued and nothing was recorded; this is a fault "
            "of the service: report it, and retry the ceremony",
        )


def free_x(state: State) -> list[int]:
    """Return the x coordinates still free, or refuse when no share may be issued."""
    if len(state.shares) >= state.share_limit:
        raise Conflict(
            f"the share limit of {state.share_limit} was reached ({len(state.shares)} shares "
            "issued), so no further share can be generated; the limit was fixed at init "
            "and cannot be raised"
        )
    free = sorted(set(range(1, MAX_X + 1)) - state.issued_x)
    if not free:
        raise Conflict(
            "all 255 x coordinates have been issued, so no further share can be "
            "generated; a rekey is needed instead"
        )
    return free
