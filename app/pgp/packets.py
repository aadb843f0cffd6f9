"""OpenPGP packet framing, read in pure Python before gpg sees any data (no gpg here).

A holder's key is checked to be framed as one transferable public key, within
limits, before gpg is asked to read it; a share sent back encrypted is checked
to be one OpenPGP message encrypted to public keys.

Hand-written rather than a library: the point is to read as little as needed,
in bounded time, before any parser that could be made to work hard (gpg, or a
full OpenPGP library) sees the data. Only the framing and the sizes of the
public key numbers are read; nothing here verifies a signature, which gpg does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator

from .errors import PGPError

__all__ = [
    "MAX_KEY_BITS",
    "MAX_KEY_PACKETS",
    "MAX_RSA_EXPONENT_BITS",
    "MAX_SIGNATURES",
    "MAX_SUBKEYS",
    "MAX_USER_IDS",
    "MIN_RSA_BITS",
    "require_encrypted_message",
]


# Before gpg sees a key, its OpenPGP packet framing is read here (RFC 4880 and
# RFC 9580, section 4.2): a transferable public key holds only these packets.
# A compressed-data packet (8) above all is refused: gpg would inflate it and
# list every key inside, minutes of work for a 2 KB "decompression bomb".
_KEY_PACKETS = {
    2: "signature",
    6: "public key",
    10: "marker",
    12: "trust",
    13: "user ID",
    14: "public subkey",
    17: "user attribute",
}
_PACKET_NAMES = {
    1: "public-key encrypted session key",
    3: "symmetric-key encrypted session key",
    4: "one-pass signature",
    5: "secret key",
    7: "secret subkey",
    8: "compressed data",
    9: "symmetrically encrypted data",
    11: "literal data",
    18: "encrypted and integrity protected data",
    19: "modification detection code",
    20: "AEAD encrypted data",
    21: "padding",
    **_KEY_PACKETS,
}
_SECRET_PACKETS = {5, 7}
# Only data packets may be split into partial-length chunks (RFC 4880 4.2.2.4).
_PARTIAL_ALLOWED = {8, 9, 11, 18, 20}
# Generous for any real key (gpg --export of a well-used key holds a few dozen
# packets), small enough that no key makes gpg work for long.
MAX_KEY_PACKETS = 512
MAX_SUBKEYS = 32
MAX_USER_IDS = 64  # user IDs and user attributes together
# Signatures on one user ID (or on the primary key, or binding one subkey).
# gpg checks each self-signature at import; a key with 510 copies of one
# signature by a 16,384-bit RSA key with a 16,384-bit exponent took over 60 s.
# Others' certifications are what makes a real key pass this: export-minimal
# drops them.
MAX_SIGNATURES = 64
# The numbers in a public key: each at most 8,192 bits (RSA moduli, DSA and
# Elgamal primes, curve points), an RSA public exponent at most 32 bits (65537
# is 17), a DSA subgroup order q at most 256 bits (FIPS 186-5). With these, a
# signature check costs gpg microseconds, not seconds.
MAX_KEY_BITS = 8192
MAX_RSA_EXPONENT_BITS = 32
MAX_DSA_Q_BITS = 256
# RSA and Elgamal keys below 2048 bits are within reach of factoring or
# discrete-log computations (NIST SP 800-131A has disallowed them since 2013).
MIN_RSA_BITS = 2048
_RSA = {1: "RSA", 2: "RSA", 3: "RSA"}  # encrypt or sign, encrypt-only, sign-only
_ELGAMAL = {16: "Elgamal", 20: "Elgamal"}
_DSA = 17
_SEND = "send one public key as exported by gpg --export"
_MINIMAL = "export it without others' signatures (gpg --export --export-options export-minimal KEY)"
_STRONGER = (
    "make a new key of at least RSA 3072, or ed25519 with cv25519 for encryption "
    "(gpg --quick-generate-key NAME future-default), and send that"
)


def require_encrypted_message(data: bytes) -> None:
    """Raise PGPError unless data is one OpenPGP message encrypted to public keys."""
    what = "an OpenPGP message encrypted to a public key (binary or ASCII-armored)"
    packets = list(_packets(_dearmored(bytes(data), f"expected {what}"), f"expected {what}"))
    tags = [tag for tag, _ in packets]
    # One or more public-key encrypted session keys, then exactly one encrypted
    # data packet with integrity protection (SEIPD or AEAD), and nothing else.
    sessions = 0
    while sessions < len(tags) and tags[sessions] == 1:
        sessions += 1
    if sessions and tags[sessions:] in ([18], [20]):
        return
    if not tags:
        raise PGPError(f"The data holds no OpenPGP packet; expected {what}.")
    odd = next((tag for tag in tags if tag not in (1, 18, 20)), None)
    if odd is not None:
        raise PGPError(f"The data holds an OpenPGP {_packet_name(odd)} packet; expected {what}.")
    raise PGPError(f"The OpenPGP packets are not in the order of a message; expected {what}.")


def _check_key_framing(data: bytes) -> None:
    """Raise PGPError unless data is framed as one transferable public key, before gpg reads it."""
    binary = _dearmored(data, _SEND)
    packets = list(_framed(binary, _SEND))
    tags = [tag for tag, _, _ in packets]
    if any(tag in _SECRET_PACKETS for tag in tags):
        raise PGPError(
            "The PGP key contains secret key material; send only the public key "
            "(gpg --export), never the secret key."
        )
    if not tags:
        raise PGPError(f"The PGP key is not an OpenPGP key; {_SEND}.")
    odd = next((tag for tag in tags if tag not in _KEY_PACKETS), None)
    if odd == 8:
        raise PGPError(f"The PGP key is compressed (an OpenPGP compressed-data packet); {_SEND}.")
    if odd is not None:
        raise PGPError(
            f"The PGP key holds an OpenPGP {_packet_name(odd)} packet, which a public key "
            f"never holds; {_SEND}."
        )
    primaries = tags.count(6)
    if primaries > 1:
        raise PGPError(f"The PGP key data holds {primaries} keys; {_SEND}.")
    if tags[0] != 6 and not (primaries and set(tags[: tags.index(6)]) <= {10}):
        raise PGPError(f"The PGP key does not begin with a public key packet; {_SEND}.")
    if len(tags) > MAX_KEY_PACKETS:
        raise PGPError(f"The PGP key holds {len(tags)} packets, more than {MAX_KEY_PACKETS}; {_SEND}.")
    if tags.count(14) > MAX_SUBKEYS:
        raise PGPError(f"The PGP key has {tags.count(14)} subkeys, more than {MAX_SUBKEYS}; {_SEND}.")
    uids = tags.count(13) + tags.count(17)
    if uids > MAX_USER_IDS:
        raise PGPError(f"The PGP key has {uids} user IDs, more than {MAX_USER_IDS}; {_SEND}.")
    _check_signature_counts(tags)
    for tag, length, start in packets:
        if tag in (6, 14):
            body = binary[start : start + length]
            _check_key_numbers(body, "primary key" if tag == 6 else f"subkey {_fingerprint(body)}")


def _check_signature_counts(tags: list[int]) -> None:
    """Raise PGPError if the primary key, a user ID or a subkey carries more than MAX_SIGNATURES."""
    counts: list[int] = []
    names: list[str] = []
    uids = subkeys = 0
    for tag in tags:
        if tag in (6, 13, 14, 17):
            uids += tag in (13, 17)
            subkeys += tag == 14
            names.append({6: "the primary key", 14: f"subkey {subkeys}"}.get(tag, f"user ID {uids}"))
            counts.append(0)
        elif tag == 2 and counts:
            counts[-1] += 1
    for name, count in zip(names, counts, strict=True):
        if count > MAX_SIGNATURES:
            raise PGPError(
                f"The PGP key has {count} signatures on {name}, more than {MAX_SIGNATURES}; {_MINIMAL}."
            )


def _check_key_numbers(body: bytes, name: str) -> None:
    """Raise PGPError unless the numbers of one public (sub)key packet are within bounds and strong enough."""
    malformed = f"The PGP key's {name} is malformed (its public key packet is cut short); {_SEND}."
    version = body[0] if body else 0
    if version == 4:
        algorithm, position = (body[5], 6) if len(body) > 5 else (0, len(body))
    elif version in (5, 6):  # a four-octet count of the key material follows the algorithm
        algorithm, position = (body[5], 10) if len(body) > 9 else (0, len(body))
    else:
        raise PGPError(
            f"The PGP key's {name} is an OpenPGP version {version} key, which gpg no longer reads "
            f"or never read; {_SEND}."
        )
    if position >= len(body):
        raise PGPError(malformed)
    if algorithm in _RSA:
        modulus, exponent = _mpis(body, position, 2, malformed)
        _bound(name, "RSA modulus", modulus, MAX_KEY_BITS)
        _bound(name, "RSA public exponent", exponent, MAX_RSA_EXPONENT_BITS)
        _floor(name, "RSA", modulus)
    elif algorithm in _ELGAMAL:
        prime, *_rest = _mpis(body, position, 3, malformed)
        for number, what in zip((prime, *_rest), ("prime", "generator", "public value"), strict=True):
            _bound(name, f"Elgamal {what}", number, MAX_KEY_BITS)
        _floor(name, "Elgamal", prime)
    elif algorithm == _DSA:
        numbers = _mpis(body, position, 4, malformed)
        for number, what in zip(
            numbers, ("prime", "subgroup order", "generator", "public value"), strict=True
        ):
            _bound(name, f"DSA {what}", number, MAX_DSA_Q_BITS if what == "subgroup order" else MAX_KEY_BITS)
    elif algorithm in (18, 19, 22):  # ECDH, ECDSA, EdDSA: a curve OID, then the point
        if body[position] in (0, 0xFF) or position + 1 + body[position] >= len(body):
            raise PGPError(malformed)
        (point,) = _mpis(body, position + 1 + body[position], 1, malformed)
        _bound(name, "elliptic-curve point", point, MAX_KEY_BITS)
    # Other algorithms (X25519 and Ed25519 of RFC 9580 hold fixed-size keys)
    # carry nothing that makes gpg work hard; gpg judges whether it can use them.


def _mpis(body: bytes, position: int, count: int, malformed: str) -> list[bytes]:
    """Read count multiprecision integers (RFC 4880 3.2) from body at position; return their octets."""
    numbers = []
    for _ in range(count):
        if position + 2 > len(body):
            raise PGPError(malformed)
        bits = int.from_bytes(body[position : position + 2], "big")
        size = (bits + 7) // 8
        position += 2
        if position + size > len(body):
            raise PGPError(malformed)
        numbers.append(body[position : position + size])
        position += size
    return numbers


def _bound(name: str, what: str, number: bytes, limit: int) -> None:
    """Raise PGPError if number has more than limit bits."""
    bits = int.from_bytes(number, "big").bit_length()
    if bits > limit:
        raise PGPError(
            f"The PGP key's {name} has a {bits:,}-bit {what}, more than {limit:,} bits (a bigger one "
            f"only makes gpg work longer); {_SEND}."
        )


def _floor(name: str, family: str, modulus: bytes) -> None:
    """Raise PGPError if an RSA modulus or an Elgamal prime has fewer than MIN_RSA_BITS bits."""
    bits = int.from_bytes(modulus, "big").bit_length()
    if bits < MIN_RSA_BITS:
        raise PGPError(
            f"The PGP key's {name} is {family}-{bits}, weaker than RSA-{MIN_RSA_BITS}: keys that small can "
            f"be broken with today's computing power, and then the share encrypted to it (or a subkey "
            f"it vouches for) is exposed; {_STRONGER}."
        )


def _fingerprint(body: bytes) -> str:
    """Return the fingerprint of a public (sub)key packet body as lowercase hex (RFC 9580 5.5.4)."""
    if body[:1] == b"\x04":
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False).hexdigest()
    prefix = b"\x9b" if body[:1] == b"\x06" else b"\x9a"
    return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest()


def _packet_name(tag: int) -> str:
    """Return the RFC name of packet type tag, for an error sentence."""
    name = _PACKET_NAMES.get(tag)
    return f"{name} (type {tag})" if name else f"type {tag}"


def _dearmored(data: bytes, tail: str) -> bytes:
    """Return the binary packets of data, removing ASCII armor if data is armored."""
    start = data.lstrip()
    if start[:1] and start[0] & 0x80:
        return data  # binary: an OpenPGP packet header has its top bit set
    if b"-----BEGIN PGP " not in data:
        return data  # not armor either: the packet reader says it is no OpenPGP data
    # Each armored block: a BEGIN line, optional headers, a blank line, base64
    # lines, an optional "=" CRC line, an END line. Text around blocks is ignored,
    # as gpg does; several blocks are read one after the other.
    body: list[bytes] = []
    state = "outside"
    for raw in data.splitlines():
        line = raw.strip()
        if state == "outside":
            if line.startswith(b"-----BEGIN PGP ") and line.endswith(b"-----"):
                state, block = "headers", []
        elif state == "headers":
            if not line:
                state = "body"
            elif b": " not in line:
                state = "body"  # no header and no blank line: tolerated, as gpg does
        if state == "body":
            if line.startswith(b"-----END PGP "):
                body.append(_b64(b"".join(block), tail))
                state = "outside"
            elif line.startswith(b"=") and len(line) == 5:
                pass  # the CRC-24 line; gpg checks it
            elif line:
                block.append(line)
    if state != "outside" or not body:
        raise PGPError(f"The ASCII armor is incomplete or damaged; {tail}.")
    return b"".join(body)


def _b64(text: bytes, tail: str) -> bytes:
    """Decode the base64 body of one armored block, or raise PGPError."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PGPError(f"The ASCII armor holds characters that are not base64; {tail}.") from None


def _packets(data: bytes, tail: str) -> Iterator[tuple[int, int]]:
    """Yield (tag, body length) of each OpenPGP packet in data, or raise PGPError on bad framing."""
    for tag, total, _start in _framed(data, tail):
        yield tag, total


def _framed(data: bytes, tail: str) -> Iterator[tuple[int, int, int]]:
    """Yield (tag, body length, body offset) of each packet; a partial-length body is not contiguous."""
    position, end = 0, len(data)
    if not data:
        raise PGPError(f"The data is empty; {tail}.")
    while position < end:
        first = data[position]
        if not first & 0x80:
            if position == 0:
                raise PGPError(f"The data is not OpenPGP data; {tail}.")
            raise PGPError(f"The data holds bytes after its last OpenPGP packet; {tail}.")
        position += 1
        if first & 0x40:  # new format (RFC 4880 4.2.2)
            tag = first & 0x3F
            length, position, partial = _new_length(data, position, tail)
            start = position
            total = length
            while partial:
                if tag not in _PARTIAL_ALLOWED:
                    raise PGPError(
                        f"The OpenPGP {_packet_name(tag)} packet uses partial lengths, which only "
                        f"data packets may; {tail}."
                    )
                position += length
                if position > end:
                    break
                length, position, partial = _new_length(data, position, tail)
                total += length
        else:  # old format (RFC 4880 4.2.1)
            tag = (first >> 2) & 0x0F
            kind = first & 0x03
            if kind == 3:  # indeterminate: the packet runs to the end of the data
                if tag not in _PARTIAL_ALLOWED:
                    raise PGPError(
                        f"The OpenPGP {_packet_name(tag)} packet has no length, which only data "
                        f"packets may omit; {tail}."
                    )
                length = total = end - position
                start = position
            else:
                size = 1 << kind
                if position + size > end:
                    raise PGPError(f"The OpenPGP data is truncated; {tail}.")
                length = total = int.from_bytes(data[position : position + size], "big")
                position += size
                start = position
        if tag == 0:
            raise PGPError(f"The data holds an OpenPGP packet of reserved type 0; {tail}.")
        position += length
        if position > end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        yield tag, total, start


def _new_length(data: bytes, position: int, tail: str) -> tuple[int, int, bool]:
    """Read a new-format body length at position: (length, next position, partial)."""
    end = len(data)
    if position >= end:
        raise PGPError(f"The OpenPGP data is truncated; {tail}.")
    octet = data[position]
    if octet < 192:
        return octet, position + 1, False
    if octet < 224:
        if position + 1 >= end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        return ((octet - 192) << 8) + data[position + 1] + 192, position + 2, False
    if octet == 255:
        if position + 5 > end:
            raise PGPError(f"The OpenPGP data is truncated; {tail}.")
        return int.from_bytes(data[position + 1 : position + 5], "big"), position + 5, False
    return 1 << (octet & 0x1F), position + 1, True
