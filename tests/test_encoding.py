"""The share decoder: hex at an accepted length, else standard base64."""

import base64

import pytest

from app.encoding import decode_share
from app.errors import BadRequest

SHARE = bytes(range(1, 34))  # 33 bytes, like a share of a 32-byte key
ONE = range(33, 34)


@pytest.mark.parametrize(
    "text",
    [
        SHARE.hex(),
        SHARE.hex().upper(),
        f"  {SHARE.hex()}\n",
        base64.b64encode(SHARE).decode(),
        base64.b64encode(SHARE).decode() + "\n",
    ],
)
def test_accepts_hex_and_base64(text):
    assert decode_share(text, ONE) == SHARE


def test_hex_digits_that_are_base64_of_the_right_length_decode_as_base64():
    # 44 hex digits are 22 bytes as hex (not accepted) but 33 bytes as base64.
    raw = base64.b64decode("0123456789abcdef0123456789abcdef0123456789ab")
    assert len(raw) == 33
    assert decode_share("0123456789abcdef0123456789abcdef0123456789ab", ONE) == raw


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "decodes to 0 bytes"),
        ("zz" * 33, "neither hex nor standard padded base64"),
        (SHARE.hex()[:-2], "has 64 hex digits"),
        (SHARE.hex() + "0", "has 67 hex digits"),
        (base64.b64encode(SHARE[:20]).decode(), "decodes to 20 bytes"),
        (base64.b64encode(SHARE + b"x").decode(), "decodes to 34 bytes"),
        (base64.b64encode(SHARE[:32]).decode().rstrip("="), "neither hex nor"),
        (base64.urlsafe_b64encode(b"\xff" * 33).decode(), "neither hex nor"),
        ("ünïcode", "neither hex nor"),
    ],
)
def test_refusals_say_what_is_expected(text, expected):
    with pytest.raises(BadRequest) as err:
        decode_share(text, ONE)
    message = err.value.messages[0]
    assert expected in message
    assert "33 bytes (66 hex digits or 44 base64 characters)" in message


def test_a_range_of_lengths_is_described():
    with pytest.raises(BadRequest, match="2 to 65 bytes"):
        decode_share("00", range(2, 66))
