"""The service: one lock-protected object holding the ceremonies in progress.

Only this object decides when a request may change something: it owns the one
lock and the in-memory attempt and adoption (submitted shares never touch
disk, so a restart cancels them: the safe failure), and delegates each
ceremony to its module in ``app.ceremonies``. It imports nothing from Flask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import ModuleType

from . import pgp as pgp_module
from .ceremonies import adoption, custody, generate, init, oversight
from .ceremonies.adoption import AdoptionStatus
from .ceremonies.common import (
    KEY_LENGTH,
    Context,
    close,
    load_pgp_key,
    require_state,
    require_uninitialized,
    utc_now,
)
from .ceremonies.custody import Custody
from .ceremonies.generate import Status
from .ceremonies.init import InitResult
from .ceremonies.oversight import Registry
from .errors import Conflict, Unavailable
from .notify import CONFIRM_SECONDS, Notifier
from .records import Store
from .refusals import Refusals
from .state import State
from .token import AUTH_MODES

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
        self._store = store
        token_mode = ceremony_auth == "token"
        self._ctx = Context(
            store=store, pgp=pgp, clock=clock, require_nonce=require_nonce, token_mode=token_mode
        )
        self._lock = threading.Lock()
        self._attempt: generate.Attempt | None = None
        self._adoption: adoption.Adoption | None = None
        # Refusals coalesced in the trail; below min_free bytes free, only counted (app.refusals).
        self._refusals = Refusals(store, self._lock, min_free=min_free)
        self._notifier = notifier or Notifier()
        #: A ceremony whose start event the receivers have not yet accepted (NOTIFY_REQUIRED).
        self._unconfirmed: generate.Attempt | adoption.Adoption | None = None

    # -- initialization -------------------------------------------------

    def is_initialized(self) -> bool:
        """Tell whether the service holds a key (made here or adopted)."""
        return self._store.state is not None

    def initialize(
        self,
        secret_shares: int,
        secret_threshold: int,
        pgp_keys: Sequence[bytes] | None = None,
        share_limit: int | None = None,
    ) -> InitResult:
        """Create the master key, split it, record the registry; return the shares."""
        share_limit = init.check_request(secret_shares, secret_threshold, pgp_keys, share_limit)
        with self._lock:
            self._require_uninitialized()  # before any gpg runs: a refusal costs nothing
        keys: list[pgp_module.PublicKey] = []
        try:
            for i, data in enumerate(pgp_keys or []):
                keys.append(load_pgp_key(self._ctx.pgp, data, f"pgp_keys[{i}]"))
            with self._lock:
                self._require_uninitialized()  # again: another init may have won meanwhile
                return init.initialize(self._ctx, keys, secret_shares, secret_threshold, share_limit)
        finally:
            close(*keys)  # each loaded key keeps a private GnuPG home until closed

    # -- the share generation attempt --------------------------------------

    def status(self) -> Status:
        """Report the attempt in progress, or that none is."""
        with self._lock:
            return generate.status(self._state(), self._attempt, token_mode=self._ctx.token_mode)

    def authorize_lead(self, token: str | None) -> None:
        """Refuse, in token mode, a caller without the operator token (before reading its body)."""
        with self._lock:
            generate.authorize_lead(self._ctx, self._state(), token)

    def start(self, pgp_key: bytes | None = None, token: str | None = None) -> Status:
        """Begin an attempt, optionally encrypting the new share to ``pgp_key``."""
        with self._lock:
            state = self._state()
            generate.authorize_lead(self._ctx, state, token)
            generate.check_start(state, self._attempt)  # before any gpg runs
        key = load_pgp_key(self._ctx.pgp, pgp_key, "pgp_key") if pgp_key is not None else None
        try:
            with self._lock:
                state = self._state()
                generate.check_start(state, self._attempt)  # again: the state may have changed
                attempt = self._attempt = generate.start(self._ctx, state, key)
                reply = generate.started(state, attempt, token_mode=self._ctx.token_mode)
                if not self._notifier.required:
                    return reply
                self._unconfirmed, seq = attempt, self._store.head.seq
        except BaseException:
            close(key)  # a refused start keeps no GnuPG home
            raise
        self._confirm(seq, attempt, "the attempt", lambda: generate.cancel(self._ctx, attempt))
        return reply

    def cancel(self, token: str | None = None) -> None:
        """Drop the attempt in progress and every share submitted to it."""
        with self._lock:
            if self._ctx.token_mode:
                generate.authorize_lead(self._ctx, self._state(), token)
            if self._attempt is not None:
                generate.cancel(self._ctx, self._attempt)
                self._attempt = None

    def update(self, key: str, nonce: str | None = None) -> Status:
        """Take one existing share; at the threshold, issue the new share."""
        with self._lock:
            state = self._state()
            attempt = generate.require_attempt(self._attempt)
            self._refuse_unconfirmed(attempt)
            if not attempt.quorum.add(key, nonce):
                return generate.status(state, attempt, token_mode=self._ctx.token_mode)
            with attempt.quorum.spent() as shares:
                done = generate.complete(self._ctx, state, attempt, shares)
            self._attempt = None
            return done

    # -- adoption of an existing share set --------------------------------

    def adoption_status(self) -> AdoptionStatus:
        """Report the adoption in progress, or that none is."""
        with self._lock:
            return adoption.status(self._adoption)

    def start_adoption(
        self,
        secret_threshold: int,
        required: int | None = None,
        known_indices: Sequence[int] = (),
        share_limit: int | None = None,
    ) -> AdoptionStatus:
        """Begin adopting a share set that another system (Vault) split."""
        request = adoption.check_request(secret_threshold, required, known_indices, share_limit)
        with self._lock:
            adoption.refuse_second(self._adoption)
            self._require_uninitialized()
            self._adoption, root_token = adoption.start(self._ctx, request)
            reply = replace(adoption.status(self._adoption), root_token=root_token)
            if not self._notifier.required:
                return reply
            current = self._unconfirmed = self._adoption
            seq = self._store.head.seq
        self._confirm(seq, current, "the adoption", lambda: adoption.cancel(self._ctx, current))
        return reply

    def cancel_adoption(self, token: str | None = None) -> None:
        """Drop the adoption in progress and every share submitted to it."""
        with self._lock:
            adoption.authorize_cancel(self._ctx, self._adoption, self._store.state, token)
            if self._adoption is not None:
                adoption.cancel(self._ctx, self._adoption)
                self._adoption = None

    def adopt_update(self, key: str, nonce: str | None = None) -> AdoptionStatus:
        """Take one existing share; with ``required`` of them, adopt the set."""
        with self._lock:
            current = adoption.require_adoption(self._adoption)
            self._refuse_unconfirmed(current)
            if not current.quorum.add(key, nonce):
                return adoption.status(current)
            with current.quorum.spent() as shares:
                done = adoption.complete(self._ctx, current, shares)
            self._adoption = None
            return done

    # -- custody and oversight ----------------------------------------------

    def verify_custody(self, key: str) -> Custody:
        """Tell whether ``key`` is the share the service recorded at its x."""
        with self._lock:
            return custody.verify(self._ctx, self._state(), key)

    def registry(self, since: str | None = None) -> Registry:
        """List every share ever issued, and how many were verified (since ``since``)."""
        with self._lock:
            return oversight.registry(self._state(), self._store.head, since)

    def health(self) -> dict:
        """Report what a probe or a holder may know at a glance."""
        can_write = oversight.writable(self._store.path)  # outside the lock: system calls
        low_disk = self.low_disk()
        with self._lock:
            return oversight.health(
                self._store.state,
                generating=self._attempt is not None,
                adopting=self._adoption is not None,
                ceremony_auth=self.ceremony_auth,
                can_write=can_write,
            ) | {"low_disk": low_disk}

    def low_disk(self) -> bool:
        """Tell whether the data folder is below GENERATE_SHARE_MIN_FREE_MB (refusals then only counted)."""
        return self._refusals.low_disk()  # a cached statvfs: a racing check costs one more call, no harm

    def overview(self) -> oversight.Overview:
        """Gather the numbers a metrics scrape shows, all of them public."""
        can_write = oversight.writable(self._store.path)
        low_disk = self.low_disk()
        with self._lock:
            attempt = self._attempt
            numbers = oversight.overview(
                self._store.state,
                self._store.head,
                progress=attempt.quorum.progress if attempt is not None else None,
                adopting=self._adoption is not None,
                can_write=can_write,
            )
        return replace(numbers, low_disk=low_disk)

    def record_refusal(self, action: str, reason: str) -> None:
        """Write a refused request to the audit trail, coalesced with others of its kind."""
        with self._lock:
            self._refusals.add(action, reason)

    # -- helpers ----------------------------------------------------------

    def _confirm(self, seq: int, ceremony, name: str, cancel: Callable[[], None]) -> None:
        """Wait, outside the lock, until every receiver accepted line ``seq``; else cancel and refuse."""
        # Outside the lock: a receiver that hangs delays only this start, not
        # health probes or other requests; holders meanwhile get a Conflict.
        accepted = self._notifier.confirm(seq, CONFIRM_SECONDS)
        with self._lock:
            self._unconfirmed = None
            current = self._attempt if isinstance(ceremony, generate.Attempt) else self._adoption
            if current is not ceremony:
                raise Conflict(f"{name} was cancelled while its start event was being delivered")
            if accepted:
                return
            cancel()
            if current is self._attempt:
                self._attempt = None
            else:
                self._adoption = None
        raise Unavailable(
            f"{name} did not start: GENERATE_SHARE_NOTIFY_REQUIRED is on and a notification "
            f"receiver did not accept its start event within {CONFIRM_SECONDS:g} s (refused, "
            "unreachable or slow); nothing started: retry once every receiver is reachable"
        )

    def _refuse_unconfirmed(self, ceremony) -> None:
        """Refuse a share for a ceremony whose start the receivers have not yet accepted."""
        if ceremony is self._unconfirmed:
            raise Conflict(
                "this ceremony's start is still waiting for the notification receivers to accept "
                "it; submit the share once the lead has the start reply"
            )

    def _state(self) -> State:
        return require_state(self._store.state)

    def _require_uninitialized(self) -> None:
        require_uninitialized(self._store.state, adopting=self._adoption is not None)
