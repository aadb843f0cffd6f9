"""Shamir secret sharing over GF(2^8), byte-compatible with HashiCorp Vault.

A share is the y bytes (one per secret byte) followed by one x byte, exactly
as Vault's ``shamir`` package lays it out, so shares move freely between the
two. Each secret byte gets its own random polynomial of degree
``threshold - 1`` whose constant term is that byte; the polynomials share the
x coordinates.

Speed comes from working on whole byte strings instead of single bytes:
multiplying every byte of a string by one field constant is one
``bytes.translate`` with a precomputed table, and adding two strings is one
XOR of Python ints. Lagrange weights are computed once per share, not per
byte.

Python cannot wipe ``bytes`` or ``int`` objects, so secret material is kept in
a ``bytearray`` and cleared where that is cheap; clearing is best effort.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable, Sequence

__all__ = [
    "RANDOM_BYTES",
    "ShamirError",
    "combine",
    "interpolate",
    "share_x",
    "split",
]

# Injectable so that tests can make split() deterministic; looked up at call
# time, so replacing the module attribute is enough.
RANDOM_BYTES: Callable[[int], bytes] = secrets.token_bytes

_MIN_PARTS = 2  # a 1-of-1 "split" is the secret itself
_MAX_PARTS = 255  # x is one byte and x = 0 would be the secret


class ShamirError(Exception):
    """Shares that cannot be combined; the message never holds share bytes."""


# --- Field tables, built once at import -----------------------------------
#
# GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b)
# and the generator 0xe5, the same field and tables as Vault's shamir package.
_POLYNOMIAL = 0x11B
_GENERATOR = 0xE5


def _slow_mul(a: int, b: int) -> int:
    """Multiply two field elements bit by bit (only used to build the tables)."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= _POLYNOMIAL
        b >>= 1
    return product


def _build_tables() -> tuple[list[int], list[int]]:
    """Return the exp table (doubled, so sums of two logs need no modulo) and the log table."""
    exp = [0] * 510
    log = [0] * 256  # log[0] is undefined; 0 keeps the table total
    value = 1
    for power in range(255):
        exp[power] = exp[power + 255] = value
        log[value] = power
        value = _slow_mul(value, _GENERATOR)
    return exp, log


EXP, LOG = _build_tables()

# MUL[c] maps every byte b to c * b, so data.translate(MUL[c]) multiplies a
# whole byte string by c in one C-level pass. Each table is itself built by
# translating: b -> log b (with 255, never a log, standing in for b = 0) ->
# exp(log c + log b), or 0 for the stand-in.
_LOG_OR_255 = bytes([255] + LOG[1:])
MUL: list[bytes] = [bytes(256)] + [
    _LOG_OR_255.translate(bytes(EXP[LOG[c] : LOG[c] + 255]) + b"\0") for c in range(1, 256)
]

# _LOG_XOR[a] maps b to log(a + b) (field addition is XOR), and to 0 where
# a + b = 0. Translating the string of all x coordinates with it and summing
# the bytes gives the log of a Lagrange product in one C-level pass; the 0
# makes the j = i term of a denominator drop out on its own. (The XOR of a
# with every byte at once is one XOR of 256-byte ints.)
_ALL_BYTES = int.from_bytes(bytes(range(256)))
_LOG_XOR: list[bytes] = [
    (_ALL_BYTES ^ int.from_bytes(bytes([a]) * 256)).to_bytes(256).translate(bytes(LOG)) for a in range(256)
]


# --- Validation -----------------------------------------------------------


def _check_count(what: str, value: int) -> int:
    """Return value as an int, or raise ValueError when it is outside 2..255."""
    value = operator.index(value)
    if not _MIN_PARTS <= value <= _MAX_PARTS:
        raise ValueError(f"{what} must be between {_MIN_PARTS} and {_MAX_PARTS}, got {value}.")
    return value


def _check_x(x: int) -> int:
    """Return x as an int, or raise ValueError when it is not a valid share x (1..255)."""
    x = operator.index(x)
    if not 1 <= x <= _MAX_PARTS:
        raise ValueError(f"An x coordinate must be between 1 and 255, got {x}.")
    return x


def _checked_x_bytes(shares: Sequence[bytes]) -> bytes:
    """Return the x byte of every share, raising ShamirError when the shares do not fit together."""
    count = len(shares)
    if count < 2:
        raise ShamirError(f"At least 2 shares are needed, got {count}.")
    for share in shares:
        # bytes and bytearray are what translate() and the slicing below
        # need; anything else is a programming error, not bad data.
        if not isinstance(share, (bytes, bytearray)):
            raise TypeError(f"Each share must be bytes, got {type(share).__name__}.")
    lengths = {len(share) for share in shares}
    if len(lengths) > 1:
        listed = ", ".join(str(length) for length in sorted(lengths))
        raise ShamirError(f"All shares must have the same length, got lengths {listed} bytes.")
    (length,) = lengths
    if length < 2:
        raise ShamirError(
            f"A share must be at least 2 bytes (y bytes then the x byte), got {length} byte(s)."
        )
    xs = bytes([share[-1] for share in shares])
    if 0 in xs:
        raise ShamirError("A share has x = 0, which is never a valid share; expected x in 1..255.")
    if len(set(xs)) != count:
        repeated = sorted({x for x in xs if xs.count(x) > 1})
        listed = ", ".join(str(x) for x in repeated)
        raise ShamirError(f"Every share must have a distinct x; x = {listed} appears more than once.")
    return xs


# --- Core -----------------------------------------------------------------


def _evaluate(shares: Sequence[bytes], xs: bytes, x: int) -> int:
    """Return the Lagrange sum at x of the whole shares as an int: y bytes, then one junk byte."""
    # Lagrange at x: w_i = prod_{j != i} (x + x_j) / (x_i + x_j), done with
    # logs. x is never one of xs here, so every factor of the numerator is
    # nonzero and its log sum is the same for all i but one factor.
    numerator = sum(xs.translate(_LOG_XOR[x]))
    accumulated = 0
    for share, xi in zip(shares, xs, strict=True):
        log_weight = (numerator - _LOG_XOR[x][xi] - sum(xs.translate(_LOG_XOR[xi]))) % 255
        # The x byte is scaled too; the caller shifts it away, which is cheaper
        # than slicing every share.
        accumulated ^= int.from_bytes(share.translate(MUL[EXP[log_weight]]))
    return accumulated


def combine(shares: Sequence[bytes], threshold: int | None = None) -> bytes:
    """Return the secret that the shares interpolate to at x = 0."""
    if threshold is not None:
        threshold = _check_count("The threshold", threshold)
        if len(shares) < threshold:
            raise ShamirError(f"At least {threshold} shares are needed to combine, got {len(shares)}.")
    xs = _checked_x_bytes(shares)
    secret_length = len(shares[0]) - 1
    return (_evaluate(shares, xs, 0) >> 8).to_bytes(secret_length)


def interpolate(shares: Sequence[bytes], x: int) -> bytes:
    """Return the share at x of the polynomials through the given shares."""
    x = _check_x(x)
    xs = _checked_x_bytes(shares)
    if x in xs:
        # The polynomials pass through that share by construction.
        return bytes(shares[xs.index(x)])
    secret_length = len(shares[0]) - 1
    y = _evaluate(shares, xs, x) >> 8
    return ((y << 8) | x).to_bytes(secret_length + 1)


def share_x(share: bytes) -> int:
    """Return the x coordinate of a share."""
    if len(share) < 2:
        raise ShamirError(
            f"A share must be at least 2 bytes (y bytes then the x byte), got {len(share)} byte(s)."
        )
    x = share[-1]
    if x == 0:
        raise ShamirError("A share has x = 0, which is never a valid share; expected x in 1..255.")
    return x


def _random_xs(parts: int) -> list[int]:
    """Return parts distinct random x coordinates, like Vault's random permutation of 1..255."""
    return secrets.SystemRandom().sample(range(1, _MAX_PARTS + 1), parts)


def split(
    secret: bytes,
    parts: int,
    threshold: int,
    *,
    xs: Sequence[int] | None = None,
    random_bytes: Callable[[int], bytes] | None = None,
) -> list[bytes]:
    """Split secret into parts shares, any threshold of which combine to it."""
    if not isinstance(secret, (bytes, bytearray, memoryview)):
        raise TypeError(f"The secret must be bytes, got {type(secret).__name__}.")
    secret_length = len(secret)
    if secret_length == 0:
        raise ValueError("The secret must not be empty.")
    parts = _check_count("The number of parts", parts)
    threshold = _check_count("The threshold", threshold)
    if threshold > parts:
        raise ValueError(
            f"The threshold must not exceed the number of parts, got threshold {threshold} and {parts} parts."
        )
    if xs is None:
        x_list = _random_xs(parts)
    else:
        x_list = [_check_x(x) for x in xs]
        if len(x_list) != parts:
            raise ValueError(
                f"The xs argument must hold exactly {parts} x coordinates (one per part), got {len(x_list)}."
            )
        if len(set(x_list)) != parts:
            raise ValueError("The x coordinates in xs must be distinct.")

    draw = RANDOM_BYTES if random_bytes is None else random_bytes
    # One draw, so that a deterministic test can state the layout: with
    # n = len(secret), bytes [(k-1)*n, k*n) are the coefficients of x^k.
    random_length = secret_length * (threshold - 1)
    coefficients = bytearray(secret)  # c_0 = the secret, then c_1 .. c_{t-1}
    try:
        coefficients += draw(random_length)
        drawn = len(coefficients) - secret_length
        if drawn != random_length:
            raise ValueError(
                f"The random_bytes function must return exactly {random_length} bytes, got {drawn}."
            )
        return [_evaluate_coefficients(coefficients, threshold, secret_length, x) for x in x_list]
    finally:
        # Best effort: the bytearray can be cleared, the copies and ints made
        # on the way cannot.
        coefficients[:] = bytes(len(coefficients))


def _evaluate_coefficients(coefficients: bytearray, count: int, length: int, x: int) -> bytes:
    """Return the share at x of the polynomials whose count coefficient vectors are laid end to end."""
    # Halving instead of Horner: with h = ceil(count / 2),
    #   p(x) = sum_{k<h} c_k x^k + x^h * sum_{k<count-h} c_{h+k} x^k
    #        = sum_{k<h} (c_k + x^h c_{h+k}) x^k,
    # so each round is one translate and one XOR over half of the vectors at
    # once, and a polynomial of degree d takes about log2(d) rounds. Little
    # endian ints line the upper half up with c_0 without any shifting.
    log_x = LOG[x]
    data = coefficients
    while count > 1:
        half = (count + 1) // 2
        cut = half * length
        upper = data[cut:].translate(MUL[EXP[(log_x * half) % 255]])
        folded = int.from_bytes(data[:cut], "little") ^ int.from_bytes(upper, "little")
        data = folded.to_bytes(cut, "little")
        count = half
    return data + bytes((x,))
