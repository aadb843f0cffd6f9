"""Initialization: make a master key, split it, record every x, hand the shares out."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from .. import pgp as pgp_module
from .. import shamir
from ..errors import BadRequest
from ..state import ShareRecord, State
from ..token import new_token, token_hash
from .common import KEY_LENGTH, MAX_X, Context, custody_digest, encrypt, verifier
from .quorum import wipe

__all__ = ["InitResult", "check_request", "initialize"]


@dataclass(frozen=True)
class InitResult:
    """The shares of a new master key (encrypted where PGP keys were given).

    ``root_token`` is the operator token in token mode, "" in open mode.
    """

    keys: list[bytes]
    pgp_fingerprints: list[str]
    root_token: str = ""


def check_request(
    secret_shares: int, secret_threshold: int, pgp_keys: Sequence[bytes] | None, share_limit: int | None
) -> int:
    """Refuse numbers that do not fit together; return the share limit to use.

    Each number's own range is checked once, by the request's schema
    (app/api/schemas.py, which the OpenAPI document shows); this checks only
    how they fit together.
    """
    if secret_threshold > secret_shares:
        raise BadRequest(
            f"secret_threshold ({secret_threshold}) must not exceed secret_shares ({secret_shares})"
        )
    if share_limit is not None and share_limit < secret_shares:
        raise BadRequest(
            f"share_limit ({share_limit}) must be at least secret_shares ({secret_shares}): "
            "the limit counts the shares made at init too"
        )
    if pgp_keys is not None and len(pgp_keys) != secret_shares:
        raise BadRequest(
            f"pgp_keys has {len(pgp_keys)} entries; it must have exactly "
            f"secret_shares ({secret_shares}), one PGP key per share"
        )
    return MAX_X if share_limit is None else share_limit


def initialize(
    ctx: Context,
    keys: Sequence[pgp_module.PublicKey],
    secret_shares: int,
    secret_threshold: int,
    share_limit: int,
) -> InitResult:
    """Create the master key, split it, record the registry; return the shares."""
    xs = secrets.SystemRandom().sample(range(1, MAX_X + 1), secret_shares)
    master = bytearray(secrets.token_bytes(KEY_LENGTH))
    try:
        shares = shamir.split(master, secret_shares, secret_threshold, xs=xs)
        salt = secrets.token_bytes(32)
        mac = verifier(bytes(master), salt)
    finally:
        wipe([master])
    out = [encrypt(ctx.pgp, s, k) for s, k in zip(shares, keys, strict=True)] if keys else shares
    now = ctx.clock()
    custody_key = secrets.token_bytes(32)
    fingerprints = [k.fingerprint for k in keys]
    root_token = new_token() if ctx.token_mode else ""
    records = tuple(
        ShareRecord(
            index=x,
            origin="init",
            issued_at=now,
            pgp_fingerprint=fp,
            digest=custody_digest(custody_key, share),
        )
        for x, fp, share in zip(xs, fingerprints or [""] * secret_shares, shares, strict=True)
    )
    ctx.trail.initialize(
        State(
            threshold=secret_threshold,
            key_length=KEY_LENGTH,
            verifier_salt=salt,
            verifier_mac=mac,
            custody_key=custody_key,
            share_limit=share_limit,
            shares=records,
            token_hash=token_hash(root_token) if root_token else "",
        ),
        "init",
        threshold=secret_threshold,
        shares=secret_shares,
        share_limit=share_limit,
        indices=xs,
        pgp_fingerprints=fingerprints,
    )
    return InitResult(keys=out, pgp_fingerprints=fingerprints, root_token=root_token)
