"""What every holder may see: the registry of every share issued, and health."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..snapshot import Proof
from ..state import Head, ShareRecord, State

__all__ = ["Overview", "Registry", "health", "overview", "registry", "writable"]


#: How the file system is asked (tests put a full or read-only one here).
STATVFS = os.statvfs


@dataclass(frozen=True)
class Registry:
    """Every share ever issued, for every holder to see."""

    threshold: int
    share_limit: int
    shares: tuple[ShareRecord, ...]
    audit_head: Head
    since: str | None = None
    #: The cluster snapshot the set is bound to (adopted with one), else None.
    snapshot: Proof | None = None

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
        snapshot=state.snapshot,
    )


def health(
    state: State | None,
    *,
    generating: bool,
    adopting: bool,
    ceremony_auth: str = "open",
    can_write: bool = True,
) -> dict:
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
        # Vault's names, so that monitors which know Vault read them: a service
        # that cannot write its records serves no ceremony, as a sealed Vault
        # serves no secret; there is never a standby (one process per folder).
        "sealed": not can_write,
        "standby": False,
    }


@dataclass(frozen=True)
class Overview:
    """The numbers a monitor may scrape: nothing a holder could not see in health or the registry."""

    initialized: bool
    threshold: int
    share_limit: int
    shares_issued: int
    attempt_in_progress: bool
    attempt_progress: int
    adoption_in_progress: bool
    audit_lines: int
    can_write: bool
    low_disk: bool = False  # set by the service (app.refusals' guard)


def overview(
    state: State | None, head: Head, *, progress: int | None, adopting: bool, can_write: bool
) -> Overview:
    """Gather the scrape's numbers; ``progress`` is None without an attempt."""
    return Overview(
        initialized=state is not None,
        threshold=state.threshold if state else 0,
        share_limit=state.share_limit if state else 0,
        shares_issued=len(state.shares) if state else 0,
        attempt_in_progress=progress is not None,
        attempt_progress=progress or 0,
        adoption_in_progress=adopting,
        audit_lines=head.seq,
        can_write=can_write,
    )


def writable(path: str | os.PathLike) -> bool:
    """Tell, with two system calls and no write, whether the data folder can take a record now.

    A read-only mount, a file system with no free block or no free inode (a
    new state file needs both), or a folder this user may not write all mean
    the next change would fail with 503. A disk that fails only when written
    (EIO) is not seen here: the write itself says so.
    """
    try:
        info = STATVFS(path)
        if info.f_flag & os.ST_RDONLY:
            return False
        root = os.geteuid() == 0  # root may use the blocks kept back for it
        if (info.f_bfree if root else info.f_bavail) == 0:
            return False
        # Some file systems (btrfs) report no inode counts at all: 0 of 0 is not full.
        if info.f_files and (info.f_ffree if root else info.f_favail) == 0:
            return False
        return os.access(path, os.W_OK)
    except OSError:
        return False
