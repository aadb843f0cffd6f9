"""The custody check: one holder proves, alone, that their share is the one issued."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..encoding import decode_share
from ..state import ShareRecord, State
from .common import Context, custody_digest, one_length
from .quorum import wipe

__all__ = ["Custody", "verify"]


@dataclass(frozen=True)
class Custody:
    """The answer to a custody check."""

    valid: bool
    record: ShareRecord | None = None
    #: Why a share was not confirmed, in a sentence (empty when valid).
    reason: str = ""


def verify(ctx: Context, state: State, key: str) -> Custody:
    """Tell whether ``key`` is the share the service recorded at its x; record the check."""
    share = decode_share(key, one_length(state))
    x = share[-1]
    record = next((r for r in state.shares if r.index == x), None)
    digest = custody_digest(state.custody_key, share)
    wipe([share])
    if record is None:
        reason = f"no share at x = {x} was ever recorded by this service"
    elif not record.verifiable:
        # Known at adoption but never brought: there is nothing to compare with.
        reason = f"this x ({x}) is recorded, but its share never reached the service, so it cannot be checked"
    elif not hmac.compare_digest(digest, record.digest):
        reason = f"this is not the share the service recorded at x = {x}"
    else:
        reason = ""
    if reason:
        ctx.trail.failed_custody(x)  # coalesced: anyone at the port can send these
        return Custody(valid=False, reason=reason)
    return Custody(valid=True, record=ctx.trail.mark_verified(x, ctx.clock(), "share_verified", index=x))
