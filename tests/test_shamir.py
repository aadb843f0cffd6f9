"""Tests for app.shamir: Vault's published splits, round trips, and the error tables."""

import itertools
import json
import math
import os
import random
from pathlib import Path

import pytest

from app import shamir
from app.shamir import ShamirError, combine, interpolate, share_x, split

# A byte-for-byte copy of shared/vectors/vault-shamir.json (splits made with
# Vault's own scheme) lives in the repo so that a bare clone tests against it;
# GENERATE_SHARE_VECTORS points at another file when needed.
DEFAULT_VECTORS = Path(__file__).resolve().parent / "vectors" / "vault-shamir.json"
VECTORS = Path(os.environ.get("GENERATE_SHARE_VECTORS") or DEFAULT_VECTORS)

# Above this many subsets a case is sampled instead of walked in full, so that
# the file runs in a few seconds.
MAX_SUBSETS = 1000
SAMPLES = 200


def _load_cases() -> list:
    """Return the vector cases, or one placeholder that makes each vector test fail."""
    try:
        cases = json.loads(VECTORS.read_text())["cases"]
    except (OSError, ValueError, KeyError) as exc:
        reason = (
            f"The Vault Shamir vectors could not be read from {VECTORS} ({exc}). Expected "
            "tests/vectors/vault-shamir.json, or GENERATE_SHARE_VECTORS naming the file."
        )
        return [pytest.param(reason, id="vectors-unreadable")]
    return [
        pytest.param(case, id=f"{case['threshold']}-of-{case['parts']}-{len(case['secret_hex']) // 2}B")
        for case in cases
    ]


CASES = _load_cases()


def _shares(case: dict | str) -> tuple[bytes, int, list[bytes]]:
    """Return the secret, threshold and shares of a case; fail when the vectors are missing."""
    if isinstance(case, str):
        pytest.fail(case, pytrace=False)
    shares = [bytes.fromhex(h) for h in case["shares_hex"]]
    assert len(shares) == case["parts"]
    return bytes.fromhex(case["secret_hex"]), case["threshold"], shares


def _subsets(shares: list[bytes], smallest: int, seed: int) -> list[tuple[bytes, ...]]:
    """Return every subset of at least `smallest` shares, or a deterministic sample of them."""
    total = sum(math.comb(len(shares), k) for k in range(smallest, len(shares) + 1))
    if total <= MAX_SUBSETS:
        return [
            subset for k in range(smallest, len(shares) + 1) for subset in itertools.combinations(shares, k)
        ]
    rng = random.Random(seed)
    subsets = [tuple(rng.sample(shares, smallest)) for _ in range(SAMPLES)]
    subsets += [tuple(rng.sample(shares, rng.randint(smallest, len(shares)))) for _ in range(SAMPLES // 4)]
    return [*subsets, tuple(shares)]


def _gf_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) mod 0x11b bit by bit: an independent reference for the tables."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return product


def _evaluate(coefficients: list[int], x: int) -> int:
    """Evaluate a byte polynomial (constant term first) at x with Horner's rule."""
    y = 0
    for c in reversed(coefficients):
        y = _gf_mul(y, x) ^ c
    return y


def _counter_bytes(n: int) -> bytes:
    """Return n predictable "random" bytes for deterministic splits."""
    return bytes((7 * i + 3) % 256 for i in range(n))


# --- Vault's vectors --------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_vectors_combine(case):
    secret, threshold, shares = _shares(case)
    assert [share_x(s) for s in shares] == [s[-1] for s in shares]
    for subset in _subsets(shares, threshold, seed=threshold):
        assert combine(subset) == secret, [s[-1] for s in subset]
        assert combine(subset, threshold) == secret


@pytest.mark.parametrize("case", CASES)
def test_vectors_interpolate(case):
    _, threshold, shares = _shares(case)
    by_x = {s[-1]: s for s in shares}
    if math.comb(len(shares), threshold) <= SAMPLES // 2:
        subsets = list(itertools.combinations(shares, threshold))
    else:
        rng = random.Random(threshold)
        subsets = [tuple(rng.sample(shares, threshold)) for _ in range(SAMPLES // 2)]
    for subset in subsets:
        own = {s[-1] for s in subset}
        # With parts = threshold = 255 no other x exists, so only the shares'
        # own x can be asked for.
        for x, expected in by_x.items():
            assert interpolate(subset, x) == expected, (sorted(own), x)


# --- Round trips --------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 16, 32, 64])
@pytest.mark.parametrize(("parts", "threshold"), [(2, 2), (3, 2), (5, 3), (7, 5), (255, 255)])
def test_split_combine_round_trip(length, parts, threshold):
    secret = bytes(random.Random(length).randrange(256) for _ in range(length))
    shares = split(secret, parts, threshold)
    assert len(shares) == parts
    assert all(len(s) == length + 1 for s in shares)
    assert len({share_x(s) for s in shares}) == parts
    for subset in _subsets(shares, threshold, seed=length):
        assert combine(subset) == secret
    assert combine(shares[::-1], threshold) == secret


@pytest.mark.parametrize(("parts", "threshold"), [(3, 3), (5, 3), (10, 5), (255, 255)])
def test_fewer_than_threshold_do_not_give_the_secret(parts, threshold):
    secret = b"\x5a" * 32
    shares = split(secret, parts, threshold, random_bytes=_counter_bytes)
    for subset in itertools.islice(itertools.combinations(shares, threshold - 1), 50):
        assert combine(subset) != secret
        with pytest.raises(ShamirError):
            combine(subset, threshold)


def test_split_layout_by_hand():
    # y = secret + c1 * x per byte; 3 * 0x80 = 0x9b and 4 * 0x80 = 0x36 after
    # reduction by 0x11b.
    shares = split(b"\x01\x02", 3, 2, xs=[1, 2, 0x80], random_bytes=lambda n: b"\x03\x04")
    assert [s.hex() for s in shares] == ["020601", "070a02", "9a3480"]


def test_split_uses_the_aes_field():
    # FIPS-197 section 4.2: {57} * {83} = {c1}.
    assert split(b"\x00", 2, 2, xs=[0x83, 1], random_bytes=lambda n: b"\x57") == [b"\xc1\x83", b"\x57\x01"]


@pytest.mark.parametrize(("length", "threshold"), [(1, 2), (16, 3), (32, 5), (3, 255)])
def test_split_matches_a_reference_evaluation(length, threshold):
    calls = []

    def random_bytes(n: int) -> bytes:
        calls.append(n)
        return _counter_bytes(n)

    secret = bytes(range(200, 200 + length))
    xs = list(range(255, 255 - threshold, -1))
    shares = split(secret, threshold, threshold, xs=xs, random_bytes=random_bytes)
    assert calls == [length * (threshold - 1)]
    drawn = _counter_bytes(length * (threshold - 1))
    for share, x in zip(shares, xs, strict=True):
        assert share[-1] == x
        for b in range(length):
            coefficients = [secret[b]] + [drawn[(k - 1) * length + b] for k in range(1, threshold)]
            assert share[b] == _evaluate(coefficients, x)


def test_split_takes_randomness_from_the_module_hook(monkeypatch):
    monkeypatch.setattr(shamir, "RANDOM_BYTES", _counter_bytes)
    first = split(b"secret", 4, 3, xs=[9, 8, 7, 6])
    assert first == split(b"secret", 4, 3, xs=[9, 8, 7, 6])
    assert first == split(b"secret", 4, 3, xs=[9, 8, 7, 6], random_bytes=_counter_bytes)


def test_split_accepts_a_bytearray_secret():
    secret = bytearray(b"\x00\xff" * 16)
    assert combine(split(secret, 3, 2)[1:]) == secret


def test_default_xs_are_distinct_and_valid():
    shares = split(b"k" * 32, 255, 2)
    assert sorted(share_x(s) for s in shares) == list(range(1, 256))
    xs = [share_x(s) for s in split(b"k", 10, 2)]
    assert len(set(xs)) == 10
    assert all(1 <= x <= 255 for x in xs)


@pytest.mark.parametrize(("parts", "threshold"), [(2, 2), (5, 3), (12, 5)])
def test_interpolate_at_a_fresh_x_makes_a_working_share(parts, threshold):
    secret = bytes(range(32))
    shares = split(secret, parts, threshold, xs=range(1, parts + 1))
    fresh = interpolate(shares[:threshold], 200)
    assert share_x(fresh) == 200
    assert len(fresh) == 33
    assert interpolate(shares, 200) == fresh
    for subset in itertools.combinations(shares, threshold - 1):
        assert combine([fresh, *subset]) == secret


def test_interpolate_at_an_existing_x_returns_that_share():
    shares = split(b"abc", 5, 3)
    assert interpolate(shares[:3], share_x(shares[4])) == shares[4]
    assert interpolate(shares[:3], share_x(shares[1])) == shares[1]


# --- Errors ---------------------------------------------------------------

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
A, B = split(
    SECRET, 2, 2, xs=[1, 2], random_bytes=lambda n: bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")
)


def _assert_no_secret_material(message: str, *data: bytes) -> None:
    """Assert that message is a sentence holding no byte of any share or the secret."""
    assert message[:1].isupper() and message.endswith("."), message
    assert "\\x" not in message and "b'" not in message
    for item in (SECRET, *data):
        for chunk in (item, item[:-1]):
            if len(chunk) >= 2:
                assert chunk.hex() not in message.lower()


BAD_SHARES = [
    pytest.param([A, A[:-1] + b"\x01"], id="duplicate-x"),
    pytest.param([A, A], id="identical-shares"),
    pytest.param([A, B[:-2] + B[-1:]], id="mixed-lengths"),
    pytest.param([A], id="one-share"),
    pytest.param([], id="no-shares"),
    pytest.param([A, B[:-1] + b"\x00"], id="x-zero"),
    pytest.param([b"\x01", b"\x02"], id="share-of-one-byte"),
    pytest.param([b"", b""], id="empty-shares"),
]


@pytest.mark.parametrize("shares", BAD_SHARES)
def test_combine_refuses_bad_shares(shares):
    with pytest.raises(ShamirError) as info:
        combine(shares)
    _assert_no_secret_material(str(info.value), *shares)


@pytest.mark.parametrize("shares", BAD_SHARES)
def test_interpolate_refuses_bad_shares(shares):
    with pytest.raises(ShamirError) as info:
        interpolate(shares, 77)
    _assert_no_secret_material(str(info.value), *shares)


def test_combine_refuses_fewer_shares_than_the_threshold():
    with pytest.raises(ShamirError, match="At least 3 shares") as info:
        combine([A, B], threshold=3)
    _assert_no_secret_material(str(info.value), A, B)


@pytest.mark.parametrize("share", [b"\x07", b"", b"\x07\x00"], ids=["one-byte", "empty", "x-zero"])
def test_share_x_refuses_bad_shares(share):
    with pytest.raises(ShamirError) as info:
        share_x(share)
    _assert_no_secret_material(str(info.value), share)


@pytest.mark.parametrize(
    ("secret", "parts", "threshold", "kwargs"),
    [
        pytest.param(b"", 3, 2, {}, id="empty-secret"),
        pytest.param(SECRET, 1, 1, {}, id="one-part"),
        pytest.param(SECRET, 256, 2, {}, id="too-many-parts"),
        pytest.param(SECRET, 3, 1, {}, id="threshold-one"),
        pytest.param(SECRET, 3, 4, {}, id="threshold-above-parts"),
        pytest.param(SECRET, 256, 256, {}, id="threshold-above-255"),
        pytest.param(SECRET, 3, 2, {"xs": [1, 2]}, id="too-few-xs"),
        pytest.param(SECRET, 3, 2, {"xs": [1, 2, 3, 4]}, id="too-many-xs"),
        pytest.param(SECRET, 3, 2, {"xs": [1, 2, 2]}, id="duplicate-xs"),
        pytest.param(SECRET, 3, 2, {"xs": [0, 1, 2]}, id="x-zero"),
        pytest.param(SECRET, 3, 2, {"xs": [1, 2, 256]}, id="x-above-255"),
        pytest.param(SECRET, 3, 2, {"xs": [1, 2, -1]}, id="negative-x"),
        pytest.param(SECRET, 3, 2, {"random_bytes": lambda n: bytes(n - 1)}, id="short-random"),
    ],
)
def test_split_refuses_misuse(secret, parts, threshold, kwargs):
    with pytest.raises(ValueError) as info:
        split(secret, parts, threshold, **kwargs)
    _assert_no_secret_material(str(info.value))


@pytest.mark.parametrize(
    ("call", "args"),
    [
        pytest.param(interpolate, ([A, B], 0), id="interpolate-at-zero"),
        pytest.param(interpolate, ([A, B], 256), id="interpolate-above-255"),
        pytest.param(combine, ([A, B], 1), id="combine-threshold-one"),
        pytest.param(combine, ([A, B], 256), id="combine-threshold-above-255"),
    ],
)
def test_other_misuse_is_a_value_error(call, args):
    with pytest.raises(ValueError) as info:
        call(*args)
    _assert_no_secret_material(str(info.value), A, B)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        pytest.param(split, ("secret", 3, 2), id="str-secret"),
        pytest.param(split, (SECRET, "3", 2), id="str-parts"),
        pytest.param(combine, ([A.hex(), B.hex()],), id="hex-shares"),
    ],
)
def test_wrong_types_are_type_errors(call, args):
    with pytest.raises(TypeError):
        call(*args)
