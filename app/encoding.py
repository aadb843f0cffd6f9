"""Read a share that a caller typed or pasted: hex or standard base64."""

import base64
import binascii
import string

from .errors import BadRequest

__all__ = ["decode_share", "describe_length"]

_HEX_DIGITS = frozenset(string.hexdigits)


def describe_length(lengths: range) -> str:
    """Say in words which share lengths are accepted, with their encodings."""
    if len(lengths) == 1:
        n = lengths[0]
        b64 = 4 * ((n + 2) // 3)
        return f"{n} bytes ({2 * n} hex digits or {b64} base64 characters)"
    return f"{lengths[0]} to {lengths[-1]} bytes, as hex or standard padded base64"


def decode_share(text: str, lengths: range, *, field: str = "key") -> bytes:
    """Decode ``text`` as hex when it is hex of an accepted length, else as base64."""
    text = text.strip()
    # Hex wins only at an accepted length: a base64 string can consist of hex
    # digits alone, and must not be misread as a hex share of another length.
    if len(text) % 2 == 0 and len(text) // 2 in lengths and _HEX_DIGITS.issuperset(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = None
    if raw is not None and len(raw) in lengths:
        return raw
    expected = f"expected a share of {describe_length(lengths)}"
    if text and _HEX_DIGITS.issuperset(text):
        # Most likely a hex share with digits missing or added: say so in hex terms.
        raise BadRequest(f"{field} has {len(text)} hex digits; {expected}")
    if raw is None:
        raise BadRequest(f"{field} is neither hex nor standard padded base64; {expected}")
    raise BadRequest(f"{field} decodes to {len(raw)} bytes; {expected}")
