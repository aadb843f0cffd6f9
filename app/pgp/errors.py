"""The two ways OpenPGP work fails: the caller's key, or gpg itself."""

from __future__ import annotations

from ..errors import Unavailable

__all__ = ["PGPError", "PGPUnavailable"]


class PGPError(Exception):
    """The caller's key is unusable; the message is a sentence safe to show the client."""


class PGPUnavailable(Unavailable):
    """gpg is missing, busy or failed for reasons that have nothing to do with the key (503)."""
