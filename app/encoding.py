"""Read a share that a caller typed or pasted: hex or standard base64.

People copy shares in the forms other tools print them: hex with ``0x`` in
front (as ``--known`` takes an x), hex grouped by spaces, base64 with or
without its ``=`` padding, base64 wrapped over several lines. All of these are
read; whitespace anywhere is dropped first. No message repeats the text.
"""

import base64
import binascii
import hashlib
import hmac
import string

from .errors import BadRequest

__all__ = ["decode_share", "describe_length", "otp_check"]

#: What the check of a masked share is keyed for; a new label would be a new check.
_OTP_CHECK_LABEL = b"generate-share otp check v1\0"

_HEX_DIGITS = frozenset(string.hexdigits)


def describe_length(lengths: range) -> str:
    """Say in words which share lengths are accepted, with their encodings."""
    if len(lengths) == 1:
        n = lengths[0]
        b64 = 4 * ((n + 2) // 3)
        return f"{n} bytes ({2 * n} hex digits or {b64} base64 characters)"
    return f"{lengths[0]} to {lengths[-1]} bytes, as hex or standard base64"


def _base64(text: str) -> bytes | None:
    """Return standard base64 decoded, its padding optional, or None."""
    try:
        return base64.b64decode((text + "=" * (-len(text) % 4)).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def decode_share(text: str, lengths: range, *, field: str = "key") -> bytearray:
    """Decode ``text`` as hex when it is hex of an accepted length, else as base64.

    The share comes back in a bytearray the caller owns and overwrites once
    done (``app.ceremonies.quorum.wipe``); best effort, since the text it was
    decoded from is an immutable copy Python frees when it will.
    """
    text = "".join(text.split())  # hex grouped by spaces, base64 wrapped over lines
    expected = f"expected a share of {describe_length(lengths)}"
    if text[:2] in ("0x", "0X"):
        digits = text[2:]
        if _HEX_DIGITS.issuperset(digits) and len(digits) % 2 == 0 and len(digits) // 2 in lengths:
            return bytearray.fromhex(digits)
        if _HEX_DIGITS.issuperset(digits):
            raise BadRequest(f"{field} has {len(digits)} hex digits after 0x; {expected}")
        raise BadRequest(f"{field} starts with 0x but is not hex after it; {expected}")
    # Hex wins only at an accepted length: a base64 string can consist of hex
    # digits alone, and must not be misread as a hex share of another length.
    if len(text) % 2 == 0 and len(text) // 2 in lengths and _HEX_DIGITS.issuperset(text):
        return bytearray.fromhex(text)
    raw = _base64(text)
    if raw is not None and len(raw) in lengths:
        share = bytearray(raw)
        del raw
        return share
    if text and _HEX_DIGITS.issuperset(text):
        # Most likely a hex share with digits missing or added: say so in hex terms.
        raise BadRequest(f"{field} has {len(text)} hex digits; {expected}")
    if raw is None:
        raise BadRequest(f"{field} is neither hex nor standard base64; {expected}")
    raise BadRequest(f"{field} decodes to {len(raw)} bytes; {expected}")


def otp_check(pad: bytes | bytearray, masked: bytes) -> str:
    """Return the check of a masked share: HMAC-SHA256 keyed by its pad, 16 bytes in hex.

    The completing update sends it beside the masked share, so that ``decode
    --otp`` can tell the right pad from a wrong one, which would otherwise
    unmask to a share that looks as good as the real one. Only the pad's
    holder can compute it; to anyone else it is a MAC under a 33-byte random key.
    """
    return hmac.new(bytes(pad), _OTP_CHECK_LABEL + masked, hashlib.sha256).hexdigest()[:32]
