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
        # The forms other tools print: 0x in front, grouped by spaces, wrapped, unpadded.
        "0x" + SHARE.hex(),
        "0X" + SHARE.hex().upper(),
        " ".join(SHARE.hex()[i : i + 4] for i in range(0, 66, 4)),
        base64.b64encode(SHARE).decode()[:30] + "\n" + base64.b64encode(SHARE).decode()[30:],
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
        ("zz" * 33, "decodes to 49 bytes"),  # base64 letters, its padding left out
        ("zz" * 32 + "!", "neither hex nor standard base64"),
        (SHARE.hex()[:-2], "has 64 hex digits"),
        (SHARE.hex() + "0", "has 67 hex digits"),
        (base64.b64encode(SHARE[:20]).decode(), "decodes to 20 bytes"),
        (base64.b64encode(SHARE + b"x").decode(), "decodes to 34 bytes"),
        (base64.b64encode(SHARE[:32]).decode().rstrip("="), "decodes to 32 bytes"),
        ("0x" + SHARE.hex()[:-2], "has 64 hex digits after 0x"),
        ("0x" + "zz" * 33, "starts with 0x but is not hex after it"),
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


@pytest.mark.parametrize("share", [SHARE[:32], SHARE[:31], SHARE])
def test_base64_padding_is_optional_as_the_message_says(share):
    """Read standard base64 with or without its = padding; the refusal never says "padded"."""
    lengths = range(len(share), len(share) + 1)
    padded = base64.b64encode(share).decode()
    assert decode_share(padded, lengths) == decode_share(padded.rstrip("="), lengths) == share
    with pytest.raises(BadRequest) as err:
        decode_share("!" + padded, lengths)
    assert "padded" not in err.value.messages[0]


def test_no_refusal_repeats_the_text():
    """A refusal names lengths and encodings, never what was typed (a share is a secret)."""
    secret = "0x" + "ab12" * 10 + "q"
    for text in (secret, secret[2:], "ab cd" * 9 + "!", base64.b64encode(SHARE[:20]).decode()):
        with pytest.raises(BadRequest) as err:
            decode_share(text, ONE)
        compact = "".join(text.split())
        assert compact[2:12] not in err.value.messages[0] and compact[:10] not in err.value.messages[0]
