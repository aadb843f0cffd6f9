"""The operator token: made, hashed, checked, and replaced offline.

In ``token`` mode (GENERATE_SHARE_CEREMONY_AUTH) starting or cancelling a
generate-share attempt, and cancelling an adoption, need the operator token
that init or the start of an adoption returned. A token is ``gs.`` followed by
43 base64url characters: 256 bits from ``secrets``. Only its SHA-256 is kept
(in the state file, or in memory while an adoption runs): the token is random,
so a slow hash would add nothing. Tokens are compared as hashes, in constant
time, and never written to a log line, an audit line or an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .errors import Forbidden, StartupError
from .folder import LOCK_FILE
from .records import Store

__all__ = [
    "AUTH_MODES",
    "MAX_TOKEN",
    "HEADERS_HELP",
    "authorize",
    "new_token",
    "reset_token",
    "token_hash",
]

AUTH_MODES = ("token", "open")
PREFIX = "gs."
#: Longer than any token this service makes; a longer header is refused unread.
MAX_TOKEN = 128
HEADERS_HELP = "X-Vault-Token: <token> or Authorization: Bearer <token>"


def new_token() -> str:
    """Return a fresh operator token with 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Return the hex SHA-256 that stands for ``token`` wherever it is kept."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def authorize(token: str | None, expected_hash: str) -> None:
    """Refuse unless ``token`` hashes to ``expected_hash``; no message repeats the token."""
    if not expected_hash:
        raise Forbidden(
            "permission denied: this service has no operator token; a data folder made "
            "in open mode gets one offline with generate-share token reset DATA_DIR"
        )
    if token is None:
        raise Forbidden(
            f"permission denied: this call needs the operator token (the root_token that init or "
            f"the start of the adoption returned) in {HEADERS_HELP}"
        )
    if not hmac.compare_digest(token_hash(token), expected_hash):
        raise Forbidden(
            "permission denied: the operator token is not the one of this service; send the "
            "root_token that init or the start of the adoption returned, or the one "
            "generate-share token reset DATA_DIR printed last"
        )


def _refuse_if_served(folder: Path) -> None:
    """Refuse, in the operator's terms, while a service holds the folder's lock."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # no lock file, or a link: Store.open says what is wrong
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise StartupError(
            f"a service is running on the data folder {folder.absolute()} (it holds the folder's "
            "lock); stop it first: the operator token is only reset while the service is stopped"
        ) from None
    finally:
        os.close(fd)  # closing drops the probe's lock; Store.open takes it for good


def reset_token(data_dir: str | os.PathLike, audit_key=None) -> str:
    """Replace the operator token of a stopped service's data folder; return the new one.

    The data folder's lock shows whether a service runs on it: opening the
    store takes that lock, so this refuses while one does. The change and its
    ``root_token_reset`` trail line are committed together.
    """
    if not Path(data_dir).is_dir():
        raise StartupError(f"there is no data folder {data_dir}; name the service's GENERATE_SHARE_DATA_DIR")
    _refuse_if_served(Path(data_dir))
    store = Store.open(data_dir, audit_key=audit_key)  # anchored records need their audit key
    try:
        if store.state is None:
            raise StartupError(
                f"the data folder {store.path} holds no initialized service, so it has no operator "
                "token to reset; initialize the service (PUT /v1/sys/init) instead"
            )
        token = new_token()
        store.replace_token_hash(token_hash(token), "root_token_reset")
        return token
    finally:
        store.close()
