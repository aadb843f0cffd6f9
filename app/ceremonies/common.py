"""What every ceremony works with: its collaborators, the key proofs, the PGP face.

The proofs are HMACs: the verifier tells a right reconstruction of the master
key from a wrong one without storing the key, and the custody digest confirms
a share a holder presents without helping anyone find one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType

from .. import pgp as pgp_module
from ..errors import BadRequest, Conflict, NotInitialized
from ..state import State
from ..trail import Writer
from .quorum import Quorum

__all__ = [
    "ADOPT_URL",
    "ATTEMPT_URL",
    "KEY_LENGTH",
    "MAX_X",
    "Context",
    "close",
    "custody_digest",
    "encrypt",
    "fingerprint",
    "load_pgp_key",
    "one_length",
    "require_state",
    "require_uninitialized",
    "subkey_fingerprint",
    "utc_now",
    "verifier",
]

KEY_LENGTH = 32
MAX_X = 255
ATTEMPT_URL = "/v1/sys/generate-share/attempt"
ADOPT_URL = "/v1/sys/adopt/attempt"
_VERIFIER_LABEL = b"generate-share verifier v1"


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Context:
    """The collaborators every ceremony uses: the trail as this request writes it, PGP, the clock.

    The service makes one per call (``trail`` names the request that called);
    ``token_mode`` is GENERATE_SHARE_CEREMONY_AUTH=token: an operator token,
    a required nonce, and a one-time pad over a new share without a PGP key.
    """

    trail: Writer
    pgp: ModuleType = pgp_module
    clock: Callable[[], str] = utc_now
    require_nonce: bool = False
    token_mode: bool = False

    def quorum(self, *, required: int, lengths: range) -> Quorum:
        """Return an empty quorum with this service's nonce rules."""
        return Quorum(
            required=required,
            lengths=lengths,
            require_nonce=self.require_nonce or self.token_mode,
            reveal_nonce=not self.token_mode,
        )


def verifier(master_key: bytes, salt: bytes) -> bytes:
    """Return the HMAC that proves knowledge of the master key without storing it."""
    return hmac.new(master_key, _VERIFIER_LABEL + salt, hashlib.sha256).digest()


def custody_digest(custody_key: bytes, share: bytes) -> str:
    """Return the digest that confirms a share without helping anyone find it."""
    return hmac.new(custody_key, share, hashlib.sha256).hexdigest()


def one_length(state: State) -> range:
    """Return the one share length of the service's key."""
    return range(state.key_length + 1, state.key_length + 2)


def require_state(state: State | None) -> State:
    """Return the state, or refuse because the service is not initialized."""
    if state is None:
        raise NotInitialized()
    return state


def require_uninitialized(state: State | None, adopting: bool) -> None:
    """Refuse a ceremony that would initialize a service that has, or is adopting, a key."""
    if state is not None:
        raise Conflict("the service is already initialized; nothing was changed")
    if adopting:
        raise Conflict(f"an adoption is in progress; finish it, or cancel it with DELETE {ADOPT_URL}, first")


def load_pgp_key(pgp: ModuleType, data: bytes, name: str) -> pgp_module.PublicKey:
    """Load one PGP public key, refusing bad key data in the caller's terms."""
    try:
        return pgp.load_public_key(data)
    except pgp.PGPError as exc:
        raise BadRequest(f"{name}: {exc}") from None


@contextmanager
def loaded_keys(pgp: ModuleType, keys: Sequence[bytes], name: str) -> Iterator[list[pgp_module.PublicKey]]:
    """Load each of ``keys`` (a bad one refused as ``name[i]``); release every loaded one at the end."""
    loaded: list[pgp_module.PublicKey] = []
    try:
        for i, data in enumerate(keys):
            loaded.append(load_pgp_key(pgp, data, f"{name}[{i}]"))
        yield loaded
    finally:
        close(*loaded)  # each loaded key keeps a private GnuPG home until closed


def encrypt(pgp: ModuleType, data: bytes, key: pgp_module.PublicKey) -> bytes:
    """Encrypt a share to ``key``, refusing a key that cannot take it."""
    try:
        return pgp.encrypt(data, key)
    except pgp.PGPError as exc:
        raise BadRequest(f"the PGP key {key.fingerprint} cannot be used: {exc}") from None


def fingerprint(key: pgp_module.PublicKey | None) -> str:
    """Return the key's primary fingerprint, or "" without a key."""
    return key.fingerprint if key is not None else ""


def subkey_fingerprint(key: pgp_module.PublicKey | None) -> str:
    """Return the fingerprint of the subkey gpg encrypts to, or "" without a key."""
    return key.subkey_fingerprint if key is not None else ""


def close(*keys: pgp_module.PublicKey | None) -> None:
    """Release the private GnuPG home each loaded PGP key keeps (None is skipped)."""
    for key in keys:
        if key is not None:
            key.close()
