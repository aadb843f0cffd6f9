"""The ceremonies: one lock-protected object holding the attempt in progress.

Only this module decides what a request may change. It keeps attempts in
memory (submitted shares never touch disk, so a restart cancels an attempt:
the safe failure), and delegates the arithmetic to ``shamir``, encryption to
``pgp`` and durability to ``store``. It imports nothing from Flask.

Three ceremonies share one set of rules for taking a share from a holder:
generate-share (a quorum mints one new share of the key), adoption (a quorum
brings an existing Vault share set in), and the custody check (one holder
proves, alone, that their share is still good).
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

__all__ = [
    "AdoptionStatus",
    "Custody",
    "GenerateShareService",
    "InitResult",
    "KEY_LENGTH",
    "Registry",
    "Status",
]

KEY_LENGTH = 32
MAX_X = 255
#: Adopted keys may be 1 to 64 bytes (Vault's own are 16 to 32): shares are one more.
ADOPT_SHARE_LENGTHS = range(2, 66)
_VERIFIER_LABEL = b"generate-share verifier v1"
_ATTEMPT_URL = "/v1/sys/generate-share/attempt"
_ADOPT_URL = "/v1/sys/adopt/attempt"


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verifier(master_key: bytes, salt: bytes) -> bytes:
    """Return the HMAC that proves knowledge of the master key without storing it."""
    return hmac.new(master_key, _VERIFIER_LABEL + salt, hashlib.sha256).digest()


def _custody_digest(custody_key: bytes, share: bytes) -> str:
    """Return the digest that confirms a share without helping anyone find it."""
    return hmac.new(custody_key, share, hashlib.sha256).hexdigest()


def _wipe(buffers: Sequence[bytearray]) -> None:
    """Overwrite secret buffers: best effort, since Python may hold other copies."""
    for buf in buffers:
        buf[:] = bytes(len(buf))


def _fingerprint(key: pgp_module.PublicKey | None) -> str:
    return key.fingerprint if key is not None else ""


def _close(*keys: pgp_module.PublicKey | None) -> None:
    """Release the private GnuPG home each loaded PGP key keeps (None is skipped)."""
    for key in keys:
        if key is not None:
            key.close()


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
class AdoptionStatus:
    """The progress of an adoption, as GET reports it."""

    started: bool
    nonce: str
    progress: int
    required: int
    secret_threshold: int
    complete: bool = False
    indices: tuple[int, ...] = ()


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


@dataclass(frozen=True)
class Custody:
    """The answer to a custody check."""

    valid: bool
    record: ShareRecord | None = None


@dataclass
class _Ceremony:
    nonce: str
    # bytearrays so they can be overwritten when the attempt ends (best effort).
    shares: list[bytearray] = field(default_factory=list)

    def clear(self) -> None:
        """Forget every submitted share."""
        _wipe(self.shares)
        self.shares.clear()


@dataclass
class _Attempt(_Ceremony):
    pgp_key: pgp_module.PublicKey | None = None


@dataclass
class _Adoption(_Ceremony):
    threshold: int = 0
    required: int = 0
    known: tuple[int, ...] = ()
    share_limit: int = MAX_X


class GenerateShareService:
    """Initialization, adoption, the share generation attempt, the registry and custody."""

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
        self._adoption: _Adoption | None = None

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
        try:
            with self._lock:
                self._require_uninitialized()
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
                custody_key = secrets.token_bytes(32)
                fingerprints = [k.fingerprint for k in keys]
                records = tuple(
                    ShareRecord(
                        index=x,
                        origin="init",
                        issued_at=now,
                        pgp_fingerprint=fp,
                        digest=_custody_digest(custody_key, share),
                    )
                    for x, fp, share in zip(xs, fingerprints or [""] * secret_shares, shares, strict=True)
                )
                self._store.initialize(
                    State(
                        threshold=secret_threshold,
                        key_length=KEY_LENGTH,
                        verifier_salt=salt,
                        verifier_mac=mac,
                        custody_key=custody_key,
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
        finally:
            _close(*keys)  # each loaded key keeps a private GnuPG home until closed

    # -- the share generation attempt --------------------------------------

    def status(self) -> Status:
        """Report the attempt in progress, or that none is."""
        with self._lock:
            return self._status(self._state())

    def start(self, pgp_key: bytes | None = None) -> Status:
        """Begin an attempt, optionally encrypting the new share to ``pgp_key``."""
        key = self._load_pgp_key(pgp_key, "pgp_key") if pgp_key is not None else None
        try:
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
        except BaseException:
            _close(key)  # a refused start keeps no GnuPG home
            raise

    def cancel(self) -> None:
        """Drop the attempt in progress and every share submitted to it."""
        with self._lock:
            attempt = self._attempt
            if attempt is not None:
                self._store.record("attempt_cancelled", nonce=attempt.nonce, progress=len(attempt.shares))
                attempt.clear()
                self._attempt = None
                _close(attempt.pgp_key)

    def update(self, key: str, nonce: str | None = None) -> Status:
        """Take one existing share; at the threshold, issue the new share."""
        with self._lock:
            state = self._state()
            attempt = self._attempt
            if attempt is None:
                raise Conflict(
                    f"no share generation attempt is in progress; start one with PUT {_ATTEMPT_URL}"
                )
            share = self._take_share(attempt, key, nonce, _one_length(state))
            if not self._last_share(attempt, share, state.threshold):
                return self._status(state)
            try:
                return self._complete(state, attempt)
            finally:
                # Issued or not, the quorum's shares go: a failure leaves the
                # attempt at progress 0 so the holders can submit again.
                attempt.clear()

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
                index=x,
                origin="generate-share",
                issued_at=self._clock(),
                pgp_fingerprint=fingerprint,
                digest=_custody_digest(state.custody_key, new_share),
            ),
            "share_issued",
            nonce=attempt.nonce,
            index=x,
            pgp_fingerprint=fingerprint,
            indices=[s[-1] for s in shares],
        )
        self._attempt = None
        _close(attempt.pgp_key)
        return Status(
            started=True,
            nonce=attempt.nonce,
            progress=len(shares),
            required=state.threshold,
            pgp_fingerprint=fingerprint,
            complete=True,
            key=key,
        )

    # -- adoption of an existing share set --------------------------------

    def adoption_status(self) -> AdoptionStatus:
        """Report the adoption in progress, or that none is."""
        with self._lock:
            return self._adoption_status()

    def start_adoption(
        self,
        secret_threshold: int,
        required: int | None = None,
        known_indices: Sequence[int] = (),
        share_limit: int | None = None,
    ) -> AdoptionStatus:
        """Begin adopting a share set that another system (Vault) split."""
        required = secret_threshold + 1 if required is None else required
        share_limit = MAX_X if share_limit is None else share_limit
        if not 2 <= secret_threshold < MAX_X:
            raise BadRequest(
                f"secret_threshold must be from 2 to {MAX_X - 1}: adoption needs more shares "
                "than the threshold (required > secret_threshold) to check that they agree, "
                "and no share set has more than 255"
            )
        if not secret_threshold < required <= MAX_X:
            raise BadRequest(
                f"required must be from secret_threshold + 1 ({secret_threshold + 1}) to 255: "
                "one share more than the threshold is what lets the service catch a wrong one"
            )
        known = tuple(sorted(set(known_indices)))
        if len(known) != len(known_indices) or any(not 1 <= x <= MAX_X for x in known):
            raise BadRequest("known_indices must list distinct x coordinates from 1 to 255")
        if share_limit < max(required, len(known)):
            raise BadRequest(
                f"share_limit ({share_limit}) must be at least the number of shares that "
                "already exist (required, and every known index)"
            )
        with self._lock:
            if self._adoption is not None:
                raise Conflict(
                    f"an adoption is already in progress; cancel it with DELETE {_ADOPT_URL} "
                    "before starting another"
                )
            self._require_uninitialized()
            adoption = _Adoption(
                nonce=str(uuid.uuid4()),
                threshold=secret_threshold,
                required=required,
                known=known,
                share_limit=share_limit,
            )
            self._store.record(
                "adoption_started",
                nonce=adoption.nonce,
                threshold=secret_threshold,
                required=required,
                known_indices=list(known),
                share_limit=share_limit,
            )
            self._adoption = adoption
            return self._adoption_status()

    def cancel_adoption(self) -> None:
        """Drop the adoption in progress and every share submitted to it."""
        with self._lock:
            adoption = self._adoption
            if adoption is not None:
                self._store.record("adoption_cancelled", nonce=adoption.nonce, progress=len(adoption.shares))
                adoption.clear()
                self._adoption = None

    def adopt_update(self, key: str, nonce: str | None = None) -> AdoptionStatus:
        """Take one existing share; with ``required`` of them, adopt the set."""
        with self._lock:
            adoption = self._adoption
            if adoption is None:
                raise Conflict(f"no adoption is in progress; start one with PUT {_ADOPT_URL}")
            lengths = range(len(adoption.shares[0]), len(adoption.shares[0]) + 1) if adoption.shares else None
            share = self._take_share(adoption, key, nonce, lengths or ADOPT_SHARE_LENGTHS)
            if not self._last_share(adoption, share, adoption.required):
                return self._adoption_status()
            try:
                return self._adopt(adoption)
            finally:
                adoption.clear()

    def _adopt(self, adoption: _Adoption) -> AdoptionStatus:
        """Check that the shares lie on one polynomial, then take the key in."""
        shares = [bytes(s) for s in adoption.shares]
        xs = [s[-1] for s in shares]
        basis = shares[: adoption.threshold]
        # Every share beyond the threshold must be the one the first t predict.
        consistent = all(
            hmac.compare_digest(shamir.interpolate(basis, s[-1]), s) for s in shares[adoption.threshold :]
        )
        if not consistent:
            self._store.record("adoption_failed", nonce=adoption.nonce, indices=xs)
            raise BadRequest(
                f"the {len(shares)} shares are not consistent: they do not lie on one polynomial "
                f"of threshold {adoption.threshold}, so at least one is wrong or mistyped (or the "
                "threshold is not theirs); progress was reset to 0: each holder should check "
                "their share and submit it again",
                audited=True,
            )
        master = bytearray(shamir.combine(basis))
        try:
            salt = secrets.token_bytes(32)
            mac = _verifier(bytes(master), salt)
        finally:
            _wipe([master])
        now = self._clock()
        custody_key = secrets.token_bytes(32)
        submitted = {s[-1]: _custody_digest(custody_key, s) for s in shares}
        indices = sorted(set(submitted) | set(adoption.known))
        records = tuple(
            ShareRecord(index=x, origin="adopted", issued_at=now, digest=submitted.get(x, ""))
            for x in indices
        )
        self._store.initialize(
            State(
                threshold=adoption.threshold,
                key_length=len(shares[0]) - 1,
                verifier_salt=salt,
                verifier_mac=mac,
                custody_key=custody_key,
                share_limit=max(adoption.share_limit, len(indices)),
                shares=records,
            ),
            "adopted",
            nonce=adoption.nonce,
            threshold=adoption.threshold,
            key_length=len(shares[0]) - 1,
            indices=indices,
            submitted=xs,
            known_indices=list(adoption.known),
            share_limit=max(adoption.share_limit, len(indices)),
        )
        self._adoption = None
        return AdoptionStatus(
            started=True,
            nonce=adoption.nonce,
            progress=len(shares),
            required=adoption.required,
            secret_threshold=adoption.threshold,
            complete=True,
            indices=tuple(indices),
        )

    # -- custody ---------------------------------------------------------

    def verify_custody(self, key: str) -> Custody:
        """Tell whether ``key`` is the share the service recorded at its x."""
        with self._lock:
            state = self._state()
            share = decode_share(key, _one_length(state))
            x = share[-1]
            record = next((r for r in state.shares if r.index == x), None)
            digest = _custody_digest(state.custody_key, share)
            if record is None or not record.verifiable or not hmac.compare_digest(digest, record.digest):
                self._store.record("share_verify_failed", index=x)
                return Custody(valid=False)
            return Custody(
                valid=True, record=self._store.mark_verified(x, self._clock(), "share_verified", index=x)
            )

    # -- oversight ------------------------------------------------------

    def registry(self, since: str | None = None) -> Registry:
        """List every share ever issued, and how many were verified (since ``since``)."""
        with self._lock:
            state = self._state()
            return Registry(
                threshold=state.threshold,
                share_limit=state.share_limit,
                shares=state.shares,
                audit_head=self._store.head,
                since=since,
            )

    def health(self) -> dict:
        """Report what a probe or a holder may know at a glance."""
        with self._lock:
            state = self._store.state
            return {
                "initialized": state is not None,
                "generate_share_in_progress": self._attempt is not None,
                "adoption_in_progress": self._adoption is not None,
                "share_limit": state.share_limit if state else None,
                "shares_issued": len(state.shares) if state else 0,
            }

    def record_refusal(self, action: str, reason: str) -> None:
        """Write a refused request to the audit trail."""
        with self._lock:
            self._store.record("refused", action=action, reason=reason)

    # -- helpers ----------------------------------------------------------

    def _state(self) -> State:
        state = self._store.state
        if state is None:
            raise NotInitialized()
        return state

    def _require_uninitialized(self) -> None:
        if self._store.state is not None:
            raise Conflict("the service is already initialized; nothing was changed")
        if self._adoption is not None:
            raise Conflict(
                f"an adoption is in progress; finish it, or cancel it with DELETE {_ADOPT_URL}, first"
            )

    def _take_share(self, ceremony: _Ceremony, key: str, nonce: str | None, lengths: range) -> bytes:
        """Decode a holder's share and apply the rules every ceremony shares."""
        self._check_nonce(ceremony, nonce)
        share = decode_share(key, lengths)
        x = share[-1]
        if x == 0:
            raise BadRequest(
                "key ends in the byte 0, but a share's last byte is its x, from 1 to 255; "
                "check that the whole share was copied"
            )
        for seen in ceremony.shares:
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
        return share

    def _last_share(self, ceremony: _Ceremony, share: bytes, required: int) -> bool:
        """Add the share; tell whether it completes the quorum.

        Shares before the last get a trail line each. The last one gets none:
        the outcome's line names every x, and a failure to record it leaves
        the trail as it was.
        """
        if len(ceremony.shares) + 1 < required:
            self._store.record(
                "share_accepted", nonce=ceremony.nonce, index=share[-1], progress=len(ceremony.shares) + 1
            )
            ceremony.shares.append(bytearray(share))
            return False
        ceremony.shares.append(bytearray(share))
        return True

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

    def _adoption_status(self) -> AdoptionStatus:
        adoption = self._adoption
        if adoption is None:
            return AdoptionStatus(started=False, nonce="", progress=0, required=0, secret_threshold=0)
        return AdoptionStatus(
            started=True,
            nonce=adoption.nonce,
            progress=len(adoption.shares),
            required=adoption.required,
            secret_threshold=adoption.threshold,
        )

    def _check_nonce(self, ceremony: _Ceremony, nonce: str | None) -> None:
        if nonce is None:
            if self._require_nonce:
                raise BadRequest(
                    "nonce is required on this server: send the nonce of the attempt "
                    f"in progress ({ceremony.nonce}) with each share"
                )
            return
        if not hmac.compare_digest(nonce.encode(), ceremony.nonce.encode()):
            raise BadRequest(
                f"nonce does not match the attempt in progress; the current nonce is {ceremony.nonce}"
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


def _one_length(state: State) -> range:
    """Return the one share length of the service's key."""
    return range(state.key_length + 1, state.key_length + 2)
