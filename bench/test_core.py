"""Shamir core timings for `make bench` (pytest-benchmark); `make test` never collects bench/.

Each benchmark labels itself in ``extra_info`` (implementation, operation, t,
n, secret length) so that bench/run.py can build its tables from the JSON
report. app.shamir works on the service's 32-byte keys; pycryptodome's Shamir
only splits 16-byte secrets, so it is timed per 16 bytes, next to app.shamir
on 16 bytes.
"""

import secrets

import pytest
from Crypto.Protocol.SecretSharing import Shamir

from app import shamir

SECRET_32 = secrets.token_bytes(32)
SECRET_16 = secrets.token_bytes(16)
# Growth: t from 2 to 255. Core: t = 3, 10 and 255, among them.
GROWTH_T = (2, 3, 5, 10, 32, 64, 128, 255)
CORE_T = (3, 10, 255)
CORE_SPLITS = ((5, 3), (255, 255))
# pycryptodome needs about 1.6 s to combine 255 shares: a few rounds are enough.
SLOW_ROUNDS = 3


def label(benchmark, impl: str, op: str, t: int, n: int, length: int) -> None:
    """Attach what run.py needs to find this benchmark in the JSON report."""
    benchmark.group = f"{op} t={t}"
    benchmark.extra_info.update(impl=impl, op=op, t=t, n=n, secret_bytes=length)


def quorum(secret: bytes, t: int, n: int | None = None) -> list[bytes]:
    """Return t shares of secret out of a split into n (default t)."""
    return shamir.split(secret, n or t, t)[:t]


def fresh_x(shares: list[bytes]) -> int:
    """Return the smallest x that no share in shares uses."""
    used = {s[-1] for s in shares}
    return next(x for x in range(1, 256) if x not in used)


def run(benchmark, function, *args, slow: bool = False):
    """Time function(*args), with a few fixed rounds when it is slow."""
    if slow:
        return benchmark.pedantic(function, args=args, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=0)
    return benchmark(function, *args)


@pytest.mark.parametrize("t", GROWTH_T)
def test_combine(benchmark, t: int) -> None:
    """Time combining t shares of a 32-byte key."""
    shares = quorum(SECRET_32, t)
    label(benchmark, "app.shamir", "combine", t, t, 32)
    assert run(benchmark, shamir.combine, shares) == SECRET_32


@pytest.mark.parametrize("t", CORE_T)
def test_combine_16(benchmark, t: int) -> None:
    """Time combining t shares of a 16-byte secret."""
    shares = quorum(SECRET_16, t)
    label(benchmark, "app.shamir", "combine", t, t, 16)
    assert run(benchmark, shamir.combine, shares) == SECRET_16


# With t = 255 every x is in the quorum and no fresh x exists: 254 stands in.
@pytest.mark.parametrize("t", [min(t, 254) for t in GROWTH_T])
def test_new_share(benchmark, t: int) -> None:
    """Time issuing a share at a fresh x from t shares of a 32-byte key."""
    shares = quorum(SECRET_32, t, t + 1)
    x = fresh_x(shares)
    label(benchmark, "app.shamir", "new share", t, t, 32)
    new = run(benchmark, shamir.interpolate, shares, x)
    assert new[-1] == x and shamir.combine([new, *shares[1:]]) == SECRET_32


@pytest.mark.parametrize("t", GROWTH_T)
def test_split(benchmark, t: int) -> None:
    """Time splitting a 32-byte key into t shares, t needed."""
    label(benchmark, "app.shamir", "split", t, t, 32)
    assert shamir.combine(run(benchmark, shamir.split, SECRET_32, t, t)) == SECRET_32


@pytest.mark.parametrize(("n", "t"), [(n, t) for n, t in CORE_SPLITS if n != t])  # t/t: test_split
def test_split_core(benchmark, n: int, t: int) -> None:
    """Time splitting a 32-byte key into n shares, t needed."""
    label(benchmark, "app.shamir", "split", t, n, 32)
    assert shamir.combine(run(benchmark, shamir.split, SECRET_32, n, t)[:t]) == SECRET_32


@pytest.mark.parametrize(("n", "t"), CORE_SPLITS)
def test_split_16(benchmark, n: int, t: int) -> None:
    """Time splitting a 16-byte secret into n shares, t needed."""
    label(benchmark, "app.shamir", "split", t, n, 16)
    assert shamir.combine(run(benchmark, shamir.split, SECRET_16, n, t)[:t]) == SECRET_16


@pytest.mark.parametrize("t", CORE_T)
def test_pycryptodome_combine(benchmark, t: int) -> None:
    """Time pycryptodome combining t shares of a 16-byte secret."""
    shares = Shamir.split(t, t, SECRET_16)
    label(benchmark, "pycryptodome", "combine", t, t, 16)
    assert run(benchmark, Shamir.combine, shares, slow=t > 100) == SECRET_16


@pytest.mark.parametrize(("n", "t"), CORE_SPLITS)
def test_pycryptodome_split(benchmark, n: int, t: int) -> None:
    """Time pycryptodome splitting a 16-byte secret into n shares, t needed."""
    label(benchmark, "pycryptodome", "split", t, n, 16)
    shares = run(benchmark, Shamir.split, t, n, SECRET_16, slow=t > 100)
    assert len(shares) == n
