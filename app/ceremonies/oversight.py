"""What every holder may see: the registry of every share issued, and health."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Head, ShareRecord, State

__all__ = ["Registry", "health", "registry"]


@dataclass(frozen=True)
class Registry:
    """Every share ever issued, for every holder to see."""

    threshold: int
    share_limit: int
    shares: tuple[ShareRecord, ...]
    audit_head: Head
    since: str | None = None

    @property
    def issued(self) -> int:
        """Return how many shares exist."""
        return len(self.shares)

    @property
    def verifiable(self) -> int:
        """Return how many shares a holder can prove custody of."""
        return sum(r.verifiable for r in self.shares)

    @property
    def verified(self) -> int:
        """Return how many shares were verified (since ``since``, when given)."""
        return sum(
            bool(r.verified_at) and (self.since is None or r.verified_at >= self.since) for r in self.shares
        )


def registry(state: State, head: Head, since: str | None = None) -> Registry:
    """List every share ever issued, with the trail's head."""
    return Registry(
        threshold=state.threshold,
        share_limit=state.share_limit,
        shares=state.shares,
        audit_head=head,
        since=since,
    )


def health(state: State | None, *, generating: bool, adopting: bool, ceremony_auth: str = "open") -> dict:
    """Report what a probe or a holder may know at a glance."""
    return {
        # A client checks this before any write: pointed at a real Vault or
        # OpenBao by mistake, it must not initialize that server.
        "service": "generate-share",
        "ceremony_auth": ceremony_auth,
        "initialized": state is not None,
        "generate_share_in_progress": generating,
        "adoption_in_progress": adopting,
        "share_limit": state.share_limit if state else None,
        "shares_issued": len(state.shares) if state else 0,
    }
