"""The ceremony: one lock-protected object holding the share generation attempt.

Only this module decides what a request may change. It keeps the attempt in
memory (submitted shares never touch disk, so a restart cancels an attempt:
the safe failure), and delegates the arithmetic to ``shamir``, encryption to
``pgp`` and durability to ``store``. It imports nothing from Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType

from . import pgp as pgp_module
from . import shamir
from .encoding import decode_share
from .errors import BadRequest, Conflict, NotInitialized
from .store import Head, ShareRecord, State, Store

__all__ = ["GenerateShareService", "Status", "InitResult", "Registry", "KEY_LENGTH"]

KEY_LENGTH = 32
MAX_X = 255
_VERIFIER_LABEL = b"generate-share verifier v1"
_ATTEMPT_URL = "/v1/sys/generate-share/attempt"


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verifier(master_key: bytes, salt: bytes) -> bytes:
    """Return the HMAC that proves knowledge of the master key without storing it."""
    return hmac.new(master_key, _VERIFIER_LABEL + salt, hashlib.sha256).digest()


def _wipe(buffers: Sequence[bytearray]) -> None:
    """Overwrite secret buffers: best effort, since Python may hold other copies."""
    for buf in buffers:
        buf[:] = bytes(len(buf))


def _fingerprint(key: pgp_module.PublicKey | None) -> str:
    return key.fingerprint if key is not None else ""


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


@dataclass(frozen=True)
class InitResult:
    """The shares of a new master key (encrypted where PGP keys were given)."""

    keys: list[bytes]
    pgp_fingerprints: list[str]


@dataclass(frozen=True)
class Registry:
    """Every share ever issued, for every holder to see."""

    threshold: int
    share_limit: int
    shares: tuple[ShareRecord, ...]
    audit_head: Head

    @property
    def issued(self) -> int:
        """Return how many shares exist."""
        return len(self.shares)


@dataclass
class _Attempt:
    nonce: str
    pgp_key: pgp_module.PublicKey | None
    # bytearrays so they can be overwritten when the attempt ends (best effort).
    shares: list[bytearray] = field(default_factory=list)


class GenerateShareService:
    """Initialization, the share generation attempt, and the registry."""

    def __init__(
        self,
        *,
        store: Store,
        pgp: ModuleType = pgp_module,
        require_nonce: bool = False,
        clock: Callable[[], str] = utc_now,
    ):
        self._store = store
        self._pgp = pgp
        self._require_nonce = require_nonce
        self._clock = clock
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None

    # -- initialization -------------------------------------------------

    def is_initialized(self) -> bool:
        """Tell whether a master key has been created."""
        return self._store.state is not None

    def initialize(
        self,
        secret_shares: int,
        secret_threshold: int,
        pgp_keys: Sequence[bytes] | None = None,
        share_limit: int | None = None,
    ) -> InitResult:
        """Create the master key, split it, record the registry; return the shares."""
        share_limit = MAX_X if share_limit is None else share_limit
        if not 2 <= secret_threshold <= secret_shares <= share_limit <= MAX_X:
            raise BadRequest(
                "secret_threshold, secret_shares and share_limit must satisfy "
                "2 <= secret_threshold <= secret_shares <= share_limit <= 255"
            )
        if pgp_keys is not None and len(pgp_keys) != secret_shares:
            raise BadRequest(
                f"pgp_keys has {len(pgp_keys)} entries; it must have exactly "
                f"secret_shares ({secret_shares}), one PGP key per share"
            )
        keys = [self._load_pgp_key(d, f"pgp_keys[{i}]") for i, d in enumerate(pgp_keys or [])]
        with self._lock:
            if self._store.state is not None:
                raise Conflict("the service is already initialized; nothing was changed")
            xs = secrets.SystemRandom().sample(range(1, MAX_X + 1), secret_shares)
            master = bytearray(secrets.token_bytes(KEY_LENGTH))
            try:
                shares = shamir.split(master, secret_shares, secret_threshold, xs=xs)
                salt = secrets.token_bytes(32)
                mac = _verifier(bytes(master), salt)
            finally:
                _wipe([master])
            out = [self._encrypt(s, k) for s, k in zip(shares, keys, strict=True)] if keys else shares
            now = self._clock()
            fingerprints = [k.fingerprint for k in keys]
            records = tuple(
                ShareRecord(index=x, origin="init", issued_at=now, pgp_fingerprint=fp)
                for x, fp in zip(xs, fingerprints or [""] * secret_shares, strict=True)
            )
            self._store.initialize(
                State(
                    threshold=secret_threshold,
                    key_length=KEY_LENGTH,
                    verifier_salt=salt,
                    verifier_mac=mac,
                    share_limit=share_limit,
                    shares=records,
                ),
                "init",
                threshold=secret_threshold,
                shares=secret_shares,
                share_limit=share_limit,
                indices=xs,
                pgp_fingerprints=fingerprints,
            )
            return InitResult(keys=out, pgp_fingerprints=fingerprints)

    # -- the attempt ----------------------------------------------------

    def status(self) -> Status:
        """Report the attempt in progress, or that none is."""
        with self._lock:
            return self._status(self._state())

    def start(self, pgp_key: bytes | None = None) -> Status:
        """Begin an attempt, optionally encrypting the new share to ``pgp_key``."""
        key = self._load_pgp_key(pgp_key, "pgp_key") if pgp_key is not None else None
        with self._lock:
            state = self._state()
            if self._attempt is not None:
                raise Conflict(
                    "share generation already in progress; cancel it with "
                    f"DELETE {_ATTEMPT_URL} before starting another"
                )
            self._free_x(state)  # refuse now rather than after the quorum gathered
            attempt = _Attempt(nonce=str(uuid.uuid4()), pgp_key=key)
            self._store.record("attempt_started", nonce=attempt.nonce, pgp_fingerprint=_fingerprint(key))
            self._attempt = attempt
            return self._status(state)

    def cancel(self) -> None:
        """Drop the attempt in progress and every share submitted to it."""
        with self._lock:
            attempt = self._attempt
            if attempt is not None:
                self._store.record("attempt_cancelled", nonce=attempt.nonce, progress=len(attempt.shares))
                _wipe(attempt.shares)
                self._attempt = None

    def update(self, key: str, nonce: str | None = None) -> Status:
        """Take one existing share; at the threshold, issue the new share."""
        with self._lock:
            state = self._state()
            attempt = self._attempt
            if attempt is None:
                raise Conflict(
                    f"no share generation attempt is in progress; start one with PUT {_ATTEMPT_URL}"
                )
            self._check_nonce(attempt, nonce)
            share = decode_share(key, range(state.key_length + 1, state.key_length + 2))
            x = share[-1]
            if x == 0:
                raise BadRequest(
                    "key ends in the byte 0, but a share's last byte is its x, from 1 to 255; "
                    "check that the whole share was copied"
                )
            for seen in attempt.shares:
                if hmac.compare_digest(bytes(seen), share):
                    raise BadRequest(
                        "this share was already submitted in this attempt; "
                        "each of the required shares must come from a different holder"
                    )
                if seen[-1] == x:
                    raise BadRequest(
                        f"a different share with x = {x} was already submitted in this attempt; "
                        "every share has its own x, so one of the two is wrong"
                    )
            if len(attempt.shares) + 1 < state.threshold:
                self._store.record(
                    "share_accepted", nonce=attempt.nonce, index=x, progress=len(attempt.shares) + 1
                )
                attempt.shares.append(bytearray(share))
                return self._status(state)
            # The last share of the quorum gets no line of its own: the outcome
            # (share_issued or reconstruction_failed) names every x, and a
            # failure to record it leaves the trail as it was.
            attempt.shares.append(bytearray(share))
            try:
                return self._complete(state, attempt)
            finally:
                # Issued or not, the quorum's shares go: a failure leaves the
                # attempt at progress 0 so the holders can submit again.
                _wipe(attempt.shares)
                attempt.shares.clear()

    def _complete(self, state: State, attempt: _Attempt) -> Status:
        """Rebuild the key in memory, check it, and issue a share at a fresh x."""
        shares = [bytes(s) for s in attempt.shares]
        master = bytearray(shamir.combine(shares))
        try:
            ok = hmac.compare_digest(_verifier(bytes(master), state.verifier_salt), state.verifier_mac)
        finally:
            _wipe([master])
        if not ok:
            self._store.record("reconstruction_failed", nonce=attempt.nonce, indices=[s[-1] for s in shares])
            raise BadRequest(
                "the submitted shares did not reconstruct the master key; progress "
                "was reset to 0: each holder should check their share and submit it again",
                audited=True,
            )
        x = secrets.choice(self._free_x(state))
        new_share = shamir.interpolate(shares, x)
        key = self._encrypt(new_share, attempt.pgp_key) if attempt.pgp_key else new_share
        fingerprint = _fingerprint(attempt.pgp_key)
        # Recorded durably before anyone sees it: a share the registry does not
        # list must never exist. If this raises, nothing was handed out.
        self._store.add_share(
            ShareRecord(
                index=x, origin="generate-share", issued_at=self._clock(), pgp_fingerprint=fingerprint
            ),
            "share_issued",
            nonce=attempt.nonce,
            index=x,
            pgp_fingerprint=fingerprint,
            indices=[s[-1] for s in shares],
        )
        self._attempt = None
        return Status(
            started=True,
            nonce=attempt.nonce,
            progress=len(shares),
            required=state.threshold,
            pgp_fingerprint=fingerprint,
            complete=True,
            key=key,
        )

    # -- oversight ------------------------------------------------------

    def registry(self) -> Registry:
        """List every share ever issued."""
        with self._lock:
            state = self._state()
            return Registry(
                threshold=state.threshold,
                share_limit=state.share_limit,
                shares=state.shares,
                audit_head=self._store.head,
            )

    def health(self) -> dict:
        """Report what a probe or a holder may know at a glance."""
        with self._lock:
            state = self._store.state
            return {
                "initialized": state is not None,
                "generate_share_in_progress": self._attempt is not None,
                "share_limit": state.share_limit if state else None,
                "shares_issued": len(state.shares) if state else 0,
            }

    # -- helpers ----------------------------------------------------------

    def record_refusal(self, action: str, reason: str) -> None:
        """Write a refused request to the audit trail."""
        with self._lock:
            self._store.record("refused", action=action, reason=reason)

    def _state(self) -> State:
        state = self._store.state
        if state is None:
            raise NotInitialized()
        return state

    def _status(self, state: State) -> Status:
        attempt = self._attempt
        if attempt is None:
            return Status(started=False, nonce="", progress=0, required=state.threshold)
        return Status(
            started=True,
            nonce=attempt.nonce,
            progress=len(attempt.shares),
            required=state.threshold,
            pgp_fingerprint=_fingerprint(attempt.pgp_key),
        )

    def _check_nonce(self, attempt: _Attempt, nonce: str | None) -> None:
        if nonce is None:
            if self._require_nonce:
                raise BadRequest(
                    "nonce is required on this server: send the nonce of the attempt "
                    f"in progress ({attempt.nonce}) with each share"
                )
            return
        if not hmac.compare_digest(nonce.encode(), attempt.nonce.encode()):
            raise BadRequest(
                f"nonce does not match the attempt in progress; the current nonce is {attempt.nonce}"
            )

    def _free_x(self, state: State) -> list[int]:
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

    def _encrypt(self, data: bytes, key: pgp_module.PublicKey) -> bytes:
        try:
            return self._pgp.encrypt(data, key)
        except self._pgp.PGPError as exc:
            raise BadRequest(f"the PGP key {key.fingerprint} cannot be used: {exc}") from None

    def _load_pgp_key(self, data: bytes, name: str) -> pgp_module.PublicKey:
        try:
            return self._pgp.load_public_key(data)
        except self._pgp.PGPError as exc:
            raise BadRequest(f"{name}: {exc}") from None
