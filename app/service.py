"""The service: one lock-protected object holding the ceremonies in progress.

Only this object decides when a request may change something: it owns the one
lock and one slot per ceremony (the attempt, the adoption: submitted shares
never touch disk, so a restart cancels them, the safe failure), and hands
each call to its ceremony's module in ``app.ceremonies``, which checks, takes
the share and completes, top to bottom. Every write names who sent it
(``who``, passed by the HTTP layer); a refused write gets its trail line
here, through ``app.trail.Trail``, and nowhere else; ``app.ceremonies.slot``
holds what a slot adds to the ceremony in it. It imports nothing
from Flask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import ModuleType

from . import pgp as pgp_module
from .audit import NOBODY, RequestInfo
from .ceremonies import adoption, custody, generate, init, oversight
from .ceremonies.adoption import AdoptionStatus
from .ceremonies.common import (
    KEY_LENGTH,
    Context,
    close,
    load_pgp_key,
    loaded_keys,
    require_state,
    require_uninitialized,
    utc_now,
)
from .ceremonies.custody import Custody
from .ceremonies.generate import Status
from .ceremonies.init import InitResult
from .ceremonies.oversight import Registry
from .ceremonies.slot import Slot, shown
from .errors import ServiceError, reason
from .folder import LowDiskGuard
from .notify import Notifier
from .records import Store
from .state import State
from .token import AUTH_MODES
from .trail import Trail

__all__ = [
    "AdoptionStatus",
    "Custody",
    "GenerateShareService",
    "InitResult",
    "KEY_LENGTH",
    "Registry",
    "Status",
]


class GenerateShareService:
    """The one object the API calls: every ceremony, serialized by one lock."""

    def __init__(
        self,
        *,
        store: Store,
        pgp: ModuleType = pgp_module,
        require_nonce: bool = False,
        ceremony_auth: str = "open",
        clock: Callable[[], str] = utc_now,
        notifier: Notifier | None = None,
        min_free: int = 0,
    ):
        # "open" here so that a service built by hand behaves as the seed did;
        # create_app passes GENERATE_SHARE_CEREMONY_AUTH, whose default is "token".
        if ceremony_auth not in AUTH_MODES:
            raise ValueError(f"ceremony_auth must be one of {', '.join(AUTH_MODES)}")
        self.ceremony_auth = ceremony_auth
        self._lock = threading.Lock()
        # Refusals coalesced in the trail; below min_free bytes free, only counted.
        self.trail = Trail(store, self._lock, LowDiskGuard(store.path, min_free))
        self._ctx = Context(
            trail=self.trail.by(NOBODY),
            pgp=pgp,
            clock=clock,
            require_nonce=require_nonce,
            token_mode=ceremony_auth == "token",
        )
        self._attempt = Slot("the attempt")
        self._adoption = Slot("the adoption")
        self._notifier = notifier or Notifier()

    # -- initialization -------------------------------------------------

    def is_initialized(self) -> bool:
        """Tell whether the service holds a key (made here or adopted)."""
        return self.trail.state is not None

    def initialize(
        self,
        secret_shares: int,
        secret_threshold: int,
        pgp_keys: Sequence[bytes] | None = None,
        share_limit: int | None = None,
        *,
        who: RequestInfo = NOBODY,
    ) -> InitResult:
        """Create the master key, split it, record the registry; return the shares."""
        with self._call(who) as ctx:
            share_limit = init.check_request(secret_shares, secret_threshold, pgp_keys, share_limit)
            with self._lock:
                self._require_uninitialized()  # before any gpg runs: a refusal costs nothing
            with loaded_keys(ctx.pgp, pgp_keys or (), "pgp_keys") as keys, self._lock:
                self._require_uninitialized()  # again: another init may have won meanwhile
                return init.initialize(ctx, keys, secret_shares, secret_threshold, share_limit)

    # -- the share generation attempt --------------------------------------

    def status(self, token: str | None = None) -> Status:
        """Report the attempt in progress, or that none is; in token mode its nonce only to the lead."""
        with self._lock:
            state = self._state()
            reply = generate.status(state, self._attempt.current, token_mode=self._ctx.token_mode)
            return shown(reply, token, state.token_hash) if self._ctx.token_mode else reply

    def authorize_lead(self, token: str | None, *, who: RequestInfo = NOBODY) -> None:
        """Refuse, in token mode, a caller without the operator token (before reading its body)."""
        with self._call(who) as ctx, self._lock:
            generate.authorize_lead(ctx, self._state(), token)

    def start(
        self, pgp_key: bytes | None = None, token: str | None = None, *, who: RequestInfo = NOBODY
    ) -> Status:
        """Begin an attempt, optionally encrypting the new share to ``pgp_key``."""
        slot = self._attempt
        with self._call(who) as ctx:
            with self._lock:
                state = self._state()
                generate.authorize_lead(ctx, state, token)
                generate.check_start(state, slot.current)  # before any gpg runs
            key = load_pgp_key(ctx.pgp, pgp_key, "pgp_key") if pgp_key is not None else None
            try:
                with self._lock:
                    state = self._state()
                    generate.check_start(state, slot.current)  # again: the state may have changed
                    attempt = slot.current = generate.start(ctx, state, key)
                    reply = generate.started(state, attempt, token_mode=ctx.token_mode)
                    if not self._notifier.required:
                        return reply
                    slot.unconfirmed, seq = True, self.trail.head.seq
            except BaseException:
                close(key)  # a refused start keeps no GnuPG home
                raise
            slot.confirm(self._notifier, self._lock, seq, attempt, lambda: generate.cancel(ctx, attempt))
            return reply

    def cancel(self, token: str | None = None, *, who: RequestInfo = NOBODY) -> None:
        """Drop the attempt in progress and every share submitted to it."""
        with self._call(who) as ctx, self._lock:
            if ctx.token_mode:
                generate.authorize_lead(ctx, self._state(), token)
            if self._attempt.current is not None:
                generate.cancel(ctx, self._attempt.current)
                self._attempt.clear()

    def update(self, key: str, nonce: str | None = None, *, who: RequestInfo = NOBODY) -> Status:
        """Take one existing share; at the threshold, issue the new share (app.ceremonies.generate)."""
        with self._call(who) as ctx, self._lock:
            state = self._state()
            attempt = generate.require_attempt(self._attempt.current)
            self._attempt.refuse_unconfirmed()
            reply = generate.update(ctx, state, attempt, key, nonce)
            if reply.complete:
                self._attempt.clear()
            return reply

    # -- adoption of an existing share set --------------------------------

    def adoption_status(self, token: str | None = None) -> AdoptionStatus:
        """Report the adoption in progress, or that none is; in token mode its nonce only to its lead."""
        with self._lock:
            current = self._adoption.current
            reply = adoption.status(current)
            if not self._ctx.token_mode:
                return reply
            return shown(reply, token, current.token_hash if current is not None else "")

    def start_adoption(
        self,
        secret_threshold: int | None,
        required: int | None = None,
        known_indices: Sequence[int] = (),
        share_limit: int | None = None,
        snapshot: adoption.Snapshot | None = None,
        *,
        who: RequestInfo = NOBODY,
    ) -> AdoptionStatus:
        """Begin adopting a share set that another system (Vault) split, bound to its snapshot if sent."""
        slot = self._adoption
        with self._call(who) as ctx:
            request = adoption.check_request(secret_threshold, required, known_indices, share_limit, snapshot)
            with self._lock:
                adoption.refuse_second(slot.current)
                self._require_uninitialized()
                current, root_token = adoption.start(ctx, request)
                slot.current = current
                reply = replace(adoption.status(current), root_token=root_token)
                if not self._notifier.required:
                    return reply
                slot.unconfirmed, seq = True, self.trail.head.seq
            slot.confirm(self._notifier, self._lock, seq, current, lambda: adoption.cancel(ctx, current))
            return reply

    def cancel_adoption(self, token: str | None = None, *, who: RequestInfo = NOBODY) -> None:
        """Drop the adoption in progress and every share submitted to it."""
        with self._call(who) as ctx, self._lock:
            adoption.authorize_cancel(ctx, self._adoption.current, self.trail.state, token)
            if self._adoption.current is not None:
                adoption.cancel(ctx, self._adoption.current)
                self._adoption.clear()

    def adopt_update(
        self, key: str, nonce: str | None = None, *, who: RequestInfo = NOBODY
    ) -> AdoptionStatus:
        """Take one existing share; with ``required`` of them, adopt the set (app.ceremonies.adoption)."""
        with self._call(who) as ctx, self._lock:
            current = adoption.require_adoption(self._adoption.current)
            self._adoption.refuse_unconfirmed()
            reply = adoption.update(ctx, current, key, nonce)
            if reply.complete:
                self._adoption.clear()
            return reply

    # -- custody and oversight ----------------------------------------------

    def verify_custody(self, key: str, *, who: RequestInfo = NOBODY) -> Custody:
        """Tell whether ``key`` is the share the service recorded at its x."""
        with self._call(who) as ctx, self._lock:
            return custody.verify(ctx, self._state(), key)

    def registry(self, since: str | None = None) -> Registry:
        """List every share ever issued, and how many were verified (since ``since``)."""
        with self._lock:
            return oversight.registry(self._state(), self.trail.head, since)

    def health(self) -> dict:
        """Report what a probe or a holder may know at a glance."""
        can_write, low_disk = self._disk()
        with self._lock:
            return oversight.health(
                self.trail.state,
                generating=self._attempt.current is not None,
                adopting=self._adoption.current is not None,
                ceremony_auth=self.ceremony_auth,
                can_write=can_write,
            ) | {"low_disk": low_disk}

    def overview(self) -> oversight.Overview:
        """Gather the numbers a metrics scrape shows, all of them public."""
        can_write, low_disk = self._disk()
        with self._lock:
            attempt = self._attempt.current
            numbers = oversight.overview(
                self.trail.state,
                self.trail.head,
                progress=attempt.quorum.progress if attempt is not None else None,
                adopting=self._adoption.current is not None,
                can_write=can_write,
            )
        return replace(numbers, low_disk=low_disk)

    def record_refusal(self, who: RequestInfo, messages: Sequence[str]) -> None:
        """Write a write the HTTP layer refused itself (its body, headers or rate) to the trail, coalesced."""
        with self._lock:
            self.trail.refuse(who, who.action or "unknown", reason(messages))

    # -- helpers ----------------------------------------------------------

    @contextmanager
    def _call(self, who: RequestInfo) -> Iterator[Context]:
        """Give one write its context; write its refusal, if it is refused, to the trail (coalesced).

        Outermost in every write, so that the lock is free again when a refusal is written.
        """
        ctx = replace(self._ctx, trail=self.trail.by(who))
        try:
            yield ctx
        except ServiceError as exc:
            if exc.status < 500:  # a 503 is the server's fault: the disk that would take the line
                with self._lock:
                    ctx.trail.refuse(reason(exc.messages))
            raise

    def _disk(self) -> tuple[bool, bool]:
        """Tell whether the data folder can be written, and whether it is below GENERATE_SHARE_MIN_FREE_MB.

        Called outside the lock: both are system calls.
        """
        return oversight.writable(self.trail.path), self.trail.guard.low()

    def _state(self) -> State:
        return require_state(self.trail.state)

    def _require_uninitialized(self) -> None:
        require_uninitialized(self.trail.state, adopting=self._adoption.current is not None)
