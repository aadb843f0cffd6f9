"""The one quorum collector both ceremonies (generate-share, adoption) take shares with."""

import secrets

import pytest

from app import shamir
from app.ceremonies.quorum import Quorum
from app.errors import BadRequest

THIRTY_THREE = range(33, 34)


def hex_shares(n: int = 5, t: int = 3, length: int = 32) -> list[str]:
    return [s.hex() for s in shamir.split(secrets.token_bytes(length), n, t)]


def quorum(required: int = 3, lengths: range = THIRTY_THREE, **kw) -> tuple[Quorum, None]:
    return Quorum(required=required, lengths=lengths, **kw), None


def add(q: Quorum, key: str, nonce: str | None) -> bool:
    """Check a share and take it, as a ceremony does (the ceremony writes the line between)."""
    return q.take(q.check(key, nonce))


def test_counts_progress_and_tells_which_share_is_the_last():
    q, _ = quorum()
    shares = hex_shares()
    lasts = []
    for s in shares[:3]:
        lasts.append(q.last)
        assert add(q, s, q.nonce) is lasts[-1]
    assert lasts == [False, False, True]
    assert q.progress == 3


def test_each_quorum_has_its_own_uuid4_nonce():
    a, _ = quorum()
    b, _ = quorum()
    assert a.nonce != b.nonce and len(a.nonce) == 36 and a.nonce[14] == "4"


def same_x_other_share(share: str) -> str:
    raw = bytearray.fromhex(share)
    raw[0] ^= 1  # another y at the same x
    return raw.hex()


@pytest.mark.parametrize(
    ("second", "fragment"),
    [
        (lambda first: first, "already submitted"),
        (same_x_other_share, "a different share with x ="),
        (lambda first: first[:-2] + "00", "ends in the byte 0"),
        (lambda first: first[:-2], "expected a share of 33 bytes"),
    ],
    ids=["duplicate", "same x", "x is 0", "wrong length"],
)
def test_a_bad_second_share_is_refused_and_changes_nothing(second, fragment):
    q, _ = quorum()
    first = hex_shares()[0]
    add(q, first, q.nonce)
    with pytest.raises(BadRequest) as caught:
        add(q, second(first), q.nonce)
    assert fragment in " ".join(caught.value.messages)
    assert q.progress == 1


def test_a_share_at_x_0_is_refused_first_too():
    q, _ = quorum()
    with pytest.raises(BadRequest, match="ends in the byte 0"):
        add(q, "11" * 32 + "00", None)
    assert q.progress == 0


def test_a_wrong_nonce_is_refused_and_named():
    q, _ = quorum()
    with pytest.raises(BadRequest) as caught:
        add(q, hex_shares()[0], "0" * 36)
    assert q.nonce in caught.value.messages[0] and "does not match" in caught.value.messages[0]
    assert q.progress == 0


def test_no_nonce_is_taken_unless_the_server_requires_one():
    lenient, _ = quorum()
    assert add(lenient, hex_shares()[0], None) is False
    strict, _ = quorum(require_nonce=True)
    with pytest.raises(BadRequest, match="nonce is required"):
        add(strict, hex_shares()[0], None)
    assert strict.progress == 0


def test_the_first_share_fixes_the_length_until_a_reset():
    q, _ = quorum(lengths=range(2, 66))
    add(q, hex_shares(length=16)[0], q.nonce)
    with pytest.raises(BadRequest, match="expected a share of 17 bytes"):
        add(q, hex_shares(length=32)[0], q.nonce)
    q.clear()
    assert add(q, hex_shares(length=32)[0], q.nonce) is False


def test_spent_yields_the_shares_then_wipes_and_resets_even_on_failure():
    q, _ = quorum(required=2)
    shares = hex_shares(t=2)
    add(q, shares[0], q.nonce)
    add(q, shares[1], q.nonce)
    held = list(q._shares)  # the buffers themselves: the wipe is only visible there
    with pytest.raises(RuntimeError), q.spent() as taken:
        assert taken == [bytes.fromhex(s) for s in shares[:2]]
        raise RuntimeError("the ceremony failed")
    assert q.progress == 0
    assert all(buf == bytes(33) for buf in held)
    # The same holders can submit again after the reset.
    assert add(q, shares[0], q.nonce) is False
