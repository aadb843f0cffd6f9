"""OpenPGP for the ceremony: parse a holder's public key and encrypt a share to it.

Callers import from ``app.pgp`` only; it is the face of four modules:

- ``packets`` reads OpenPGP packet framing in pure Python, before gpg sees a
  key (packet, user ID, subkey and signature counts, the size of every public
  key number, no RSA under 2048 bits), and checks that a returned share is an encrypted message; no gpg.
- ``runner`` runs gpg through python-gnupg behind a guard (a time limit per
  run, a cap on concurrent runs) in private GnuPG homes, and removes homes a
  killed process left (``set_home_root``).
- ``keys`` vets a key and keeps it in a home of its own (``load_public_key``),
  and encrypts to it (``encrypt``).
- ``errors`` holds ``PGPError`` (the caller's key is unusable) and
  ``PGPUnavailable`` (gpg itself failed: the server's fault).

The tunables are re-exported here for reading. Each module reads its own, so
a test that changes one sets it on the module that owns it (``runner`` or
``keys``); setting it here would change nothing.
"""

from __future__ import annotations

from .errors import PGPError, PGPUnavailable
from .keys import PublicKey, encrypt, load_public_key
from .packets import require_encrypted_message
from .runner import set_home_root

# The tunables, re-exported for reading only ("X as X" marks a deliberate
# re-export): see above for where to change them.
from .keys import SUBKEY_MIN_LIFETIME_SECONDS as SUBKEY_MIN_LIFETIME_SECONDS  # isort: skip
from .packets import MAX_KEY_BITS as MAX_KEY_BITS  # isort: skip
from .packets import MAX_KEY_PACKETS as MAX_KEY_PACKETS  # isort: skip
from .packets import MAX_RSA_EXPONENT_BITS as MAX_RSA_EXPONENT_BITS  # isort: skip
from .packets import MAX_SIGNATURES as MAX_SIGNATURES  # isort: skip
from .packets import MAX_SUBKEYS as MAX_SUBKEYS  # isort: skip
from .packets import MAX_USER_IDS as MAX_USER_IDS  # isort: skip
from .packets import MIN_RSA_BITS as MIN_RSA_BITS  # isort: skip
from .runner import GPG_CONCURRENCY as GPG_CONCURRENCY  # isort: skip
from .runner import GPG_OPTIONS as GPG_OPTIONS  # isort: skip
from .runner import GPG_TIMEOUT_SECONDS as GPG_TIMEOUT_SECONDS  # isort: skip
from .runner import GPG_WAIT_SECONDS as GPG_WAIT_SECONDS  # isort: skip
from .runner import INSTALL_HINT as INSTALL_HINT  # isort: skip

__all__ = [
    "PGPError",
    "PGPUnavailable",
    "PublicKey",
    "encrypt",
    "load_public_key",
    "require_encrypted_message",
    "set_home_root",
]
