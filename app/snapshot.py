"""Read a Vault or OpenBao raft snapshot, bounded and hostile-safe, and tell whether a key opens it.

`bao operator raft snapshot save` (and `vault operator raft snapshot save`)
writes a gzipped tar of four members: ``meta.json`` (the raft index and term),
``state.bin`` (the whole encrypted store), ``SHA256SUMS`` (the SHA-256 of the
first two, as sha256sum prints them) and ``SHA256SUMS.sealed``: SHA256SUMS
encrypted by the cluster's seal. For a Shamir seal that is AES-GCM under the
key the unseal shares combine to, with no associated data, so a quorum can
prove its shares belong to this cluster without unsealing anything.

``state.bin`` is a stream of protobuf ``StorageEntry {key = 1, value = 2}``,
each after its varint length; ``core/seal-config`` (and, for an auto-unsealed
cluster, ``core/recovery-seal-config``) are JSON in clear. ``SHA256SUMS.sealed``
is a go-kms-wrapping ``BlobInfo`` whose field 1 (ciphertext) holds the 12-byte
nonce, then the ciphertext and its tag (field 2, iv, stays empty for this
wrapper; field 4, wrapped, and field 5, key_info, are skipped). Vault with
several seals (seal HA) writes a ``SealWrappedValue`` instead: the 16 bytes
``multiwrapvalue:1``, a 4-byte big-endian length, then ``MultiWrapValue
{generation = 1, repeated BlobInfo slots = 2}``; every slot is tried.

Hand-written where a library would not bound the work:
- the protobuf reading: three fields of two messages, where the protobuf
  package would add a dependency and its generated code for them;
- the tar reading: ``tarfile`` reads a pax or GNU extended header whole into
  memory whatever size it declares, and accepts links, devices and any name;
  this reader takes only the four plain ustar members that Go's archive/tar
  writes for these names, each under its own cap, and refuses everything else.
Decompression stops at a cap on the total and on the ratio to what was read,
so a gzip bomb is refused after a few kilobytes of input.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MEMBERS",
    "Limits",
    "Proof",
    "SealConfig",
    "Snapshot",
    "SnapshotError",
    "opens",
    "parse_proof",
    "parse_seal_config",
    "read_snapshot",
]

MEMBERS = ("meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed")
SEAL_CONFIG, RECOVERY_CONFIG = "core/seal-config", "core/recovery-seal-config"
BLOCK = 512
NONCE, TAG = 12, 16
MULTI_HEADER = b"multiwrapvalue:1"
MAX_SLOTS = 16
_CHUNK = 1 << 16
_MIB, _GIB = 1 << 20, 1 << 30


class SnapshotError(Exception):
    """The file is not a snapshot this reader accepts; the message says what was expected."""


@dataclass(frozen=True)
class Limits:
    """The bounds of one read; the defaults fit any real cluster's snapshot."""

    archive: int = 4 * _GIB  # the file on disk
    inflated: int = 16 * _GIB  # everything the gzip stream inflates to
    ratio: int = 64  # inflated bytes per compressed byte read, past the slack below
    slack: int = 16 * _MIB
    small: int = 64 * 1024  # meta.json, SHA256SUMS, SHA256SUMS.sealed, a seal config
    entry: int = 64 * _MIB  # a state.bin entry read to learn its key (larger ones are skipped)


@dataclass(frozen=True)
class SealConfig:
    """The part of a seal config the adoption needs."""

    type: str
    secret_shares: int
    secret_threshold: int


@dataclass(frozen=True)
class Proof:
    """What proves a key without the store: not secret, small, kept with an adopted set."""

    index: int
    term: int
    meta: bytes
    sums: bytes
    sealed: bytes


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot says about its cluster's keys."""

    seal: SealConfig
    recovery: SealConfig | None
    proof: Proof


# -- the protobuf wire format, the little of it these messages use -----------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at pos; return it and the position after it."""
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            raise SnapshotError("a protobuf varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise SnapshotError("a protobuf varint is longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a message: ints for varints, bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if length > len(data) - pos:
                raise SnapshotError("a protobuf field runs past the end of its message")
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (1, 5):  # fixed 64 or 32 bits: skipped
            pos += 8 if wire == 1 else 4
            if pos > len(data):
                raise SnapshotError("a protobuf field runs past the end of its message")
        else:
            raise SnapshotError(f"a protobuf field has wire type {wire}, which these messages never use")


def _bytes_field(data: bytes, number: int) -> bytes:
    """Return the last length-delimited value of field ``number`` (protobuf's rule), or b""."""
    found = b""
    for n, value in _fields(data):
        if n == number and isinstance(value, bytes):
            found = value
    return found


def _sealed_blobs(sealed: bytes) -> list[bytes]:
    """Return the ciphertexts (nonce first) of SHA256SUMS.sealed: one BlobInfo, or each slot."""
    if sealed.startswith(MULTI_HEADER):
        rest = sealed[len(MULTI_HEADER) :]
        if len(rest) < 4 or struct.unpack(">I", rest[:4])[0] != len(rest) - 4:
            raise SnapshotError("SHA256SUMS.sealed is a multi-seal value whose length does not match")
        slots = [v for n, v in _fields(rest[4:]) if n == 2 and isinstance(v, bytes)]
        if not slots or len(slots) > MAX_SLOTS:
            raise SnapshotError(
                f"SHA256SUMS.sealed is a multi-seal value with {len(slots)} seals; expected 1 to {MAX_SLOTS}"
            )
        blobs = [_bytes_field(slot, 1) for slot in slots]
    else:
        blobs = [_bytes_field(sealed, 1)]
    if any(len(blob) < NONCE + TAG for blob in blobs):
        raise SnapshotError(
            "SHA256SUMS.sealed holds no AES-GCM ciphertext (a 12-byte nonce, the ciphertext and a 16-byte "
            "tag): it is not what a snapshot's seal writes"
        )
    return blobs


def opens(key: bytes, proof: Proof) -> bool:
    """Tell whether ``key`` decrypts SHA256SUMS.sealed (any of its seals) to the sums of SHA256SUMS.

    The sums are compared as a mapping, not byte for byte: OpenBao writes the
    two lines from a Go map each time, so the sealed copy may list them in the
    other order (seen on about half of OpenBao 2.7.2's snapshots).
    """
    if len(key) not in (16, 24, 32):
        return False
    aead = AESGCM(key)
    expected = _sums(proof.sums)
    for blob in _sealed_blobs(proof.sealed):
        try:
            plain = aead.decrypt(blob[:NONCE], blob[NONCE:], None)
        except InvalidTag:
            continue
        try:
            if _sums(plain) == expected:
                return True
        except SnapshotError:
            continue
    return False


# -- the small files ----------------------------------------------------------------------


def _sums(text: bytes) -> dict[str, str]:
    """Parse SHA256SUMS (sha256sum's format) into {member: hex digest}; exactly meta.json and state.bin."""
    expected = "SHA256SUMS must hold two lines '<64 hex digits>  <name>', for meta.json and state.bin"
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise SnapshotError(expected) from None
    sums = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise SnapshotError(expected)
        sums[name] = digest
    if sorted(sums) != ["meta.json", "state.bin"] or len(lines) != 2:
        raise SnapshotError(expected)
    return sums


def _meta(meta: bytes) -> tuple[int, int]:
    """Return meta.json's raft index and term."""
    try:
        doc = json.loads(meta)
    except (UnicodeDecodeError, ValueError):
        raise SnapshotError("meta.json is not JSON") from None
    values = [doc.get(k) if isinstance(doc, dict) else None for k in ("Index", "Term")]
    if not all(type(v) is int and 0 <= v < 1 << 64 for v in values):
        raise SnapshotError("meta.json must hold the raft Index and Term as integers")
    return values[0], values[1]


def parse_proof(meta: bytes, sums: bytes, sealed: bytes, *, small: int = Limits.small) -> Proof:
    """Check the three small files against each other (without any key) and return them as a Proof."""
    for name, data in (("meta.json", meta), ("SHA256SUMS", sums), ("SHA256SUMS.sealed", sealed)):
        if not data or len(data) > small:
            raise SnapshotError(f"{name} must be 1 to {small} bytes, not {len(data)}")
    listed = _sums(sums)["meta.json"]
    if not hmac.compare_digest(hashlib.sha256(meta).hexdigest(), listed):
        raise SnapshotError("meta.json does not match its SHA-256 in SHA256SUMS: the snapshot was altered")
    _sealed_blobs(sealed)
    index, term = _meta(meta)
    return Proof(index=index, term=term, meta=meta, sums=sums, sealed=sealed)


def parse_seal_config(raw: bytes | dict, name: str = SEAL_CONFIG) -> SealConfig:
    """Read a seal config (the JSON Vault stores, or it already parsed) into its three fields."""
    doc = raw
    if isinstance(raw, bytes):
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise SnapshotError(f"{name} is not JSON") from None
    if not isinstance(doc, dict):
        raise SnapshotError(f"{name} is not a JSON object")
    kind, shares, threshold = doc.get("type"), doc.get("secret_shares"), doc.get("secret_threshold")
    if not isinstance(kind, str) or not 1 <= len(kind) <= 64:
        raise SnapshotError(f"{name} has no seal type")
    if not (type(shares) is int and type(threshold) is int and 1 <= threshold <= shares <= 255):
        raise SnapshotError(
            f"{name} must give secret_shares and secret_threshold as integers, "
            "1 <= threshold <= shares <= 255"
        )
    return SealConfig(type=kind, secret_shares=shares, secret_threshold=threshold)


# -- the archive ---------------------------------------------------------------------------


class _Inflated:
    """The gzip stream of a file, inflated on demand under the caps of ``Limits``."""

    def __init__(self, file: BinaryIO, limits: Limits):
        self._file, self._limits = file, limits
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._buf, self._pos = b"", 0
        self.read_in = self.out = 0

    def _more(self) -> bool:
        """Inflate the next piece into the buffer; False at the end of the gzip stream."""
        if self._z.eof:
            return False
        pending = self._z.unconsumed_tail
        if not pending:
            pending = self._file.read(_CHUNK)
            self.read_in += len(pending)
            if not pending:
                raise SnapshotError("the archive is truncated: the gzip stream ends before the tar does")
        try:
            piece = self._z.decompress(pending, _CHUNK)
        except zlib.error:
            raise SnapshotError("the archive is not valid gzip past its start: it is damaged") from None
        self.out += len(piece)
        limits = self._limits
        if self.out > limits.inflated or self.out > limits.ratio * self.read_in + limits.slack:
            raise SnapshotError(
                f"the archive inflates to more than {limits.ratio} times its size (or past "
                f"{limits.inflated // _GIB} GiB): a real snapshot's encrypted store barely compresses, so "
                "this is refused as a decompression bomb"
            )
        self._buf, self._pos = self._buf[self._pos :] + piece, 0
        return True

    def read(self, n: int) -> bytes:
        """Return exactly n bytes, or refuse the archive as truncated."""
        while len(self._buf) - self._pos < n:
            if not self._more():
                raise SnapshotError("the archive is truncated: a member ends early")
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def chunks(self, n: int) -> Iterator[bytes]:
        """Yield the next n bytes in pieces, never holding them all."""
        while n:
            if self._pos >= len(self._buf) and not self._more():
                raise SnapshotError("the archive is truncated: a member ends early")
            piece = self._buf[self._pos : self._pos + n]
            self._pos += len(piece)
            n -= len(piece)
            yield piece

    def finish(self) -> None:
        """Refuse anything but zero padding between the tar's end and the gzip stream's end."""
        while True:
            if any(self._buf[self._pos :]):
                raise SnapshotError("the archive has data after the tar's end")
            self._buf, self._pos = b"", 0
            if not self._more():
                break
        if self._z.unused_data or self._file.read(1):
            raise SnapshotError("the file has data after the gzip stream's end")


def _octal(field: bytes) -> int:
    """Read a ustar numeric field: octal digits, NUL or space terminated."""
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not text or any(c not in b"01234567" for c in text):
        raise SnapshotError("a tar header has a number that is not octal (not a ustar archive)")
    return int(text, 8)


def _header(block: bytes) -> tuple[str, int] | None:
    """Read one ustar header block into (name, size); None for the end-of-archive block."""
    if not any(block):
        return None
    if _octal(block[148:156]) != sum(block[:148]) + 32 * 8 + sum(block[156:]):
        raise SnapshotError("a tar header's checksum is wrong: the file is not a snapshot, or it is damaged")
    if block[257:262] != b"ustar":
        raise SnapshotError("the archive is not ustar, as a raft snapshot's tar is")
    raw_name = block[345:500].rstrip(b"\0") + b"/" + block[:100].rstrip(b"\0")
    name = raw_name.lstrip(b"/").decode("utf-8", errors="replace")
    if block[156:157] not in (b"0", b"\0") or name not in MEMBERS:
        shown = name[:80].encode("unicode_escape").decode("ascii")
        raise SnapshotError(
            f"the archive holds {shown!r}: a raft snapshot holds only the plain files {', '.join(MEMBERS)}"
        )
    return name, _octal(block[124:136])


def _state_entries(stream: _Inflated, size: int, limits: Limits, digest) -> Iterator[tuple[str, bytes]]:
    """Yield (key, value) of state.bin's small entries; hash every byte, skip large entries unread."""
    left = size
    while left:
        prefix = b""
        while True:  # the varint length, at most 10 bytes
            if len(prefix) >= min(10, left):
                raise SnapshotError("state.bin has an entry length that is not a varint")
            prefix += stream.read(1)
            if not prefix[-1] & 0x80:
                break
        length, _ = _varint(prefix, 0)
        digest.update(prefix)
        left -= len(prefix)
        if length > left:
            raise SnapshotError("state.bin has an entry that runs past its end: the snapshot is damaged")
        left -= length
        if length > limits.entry:
            for piece in stream.chunks(length):
                digest.update(piece)
            continue
        entry = stream.read(length)
        digest.update(entry)
        key = _bytes_field(entry, 1)
        if key in (SEAL_CONFIG.encode(), RECOVERY_CONFIG.encode()):
            yield key.decode(), _bytes_field(entry, 2)


def read_snapshot(file: BinaryIO, size: int, limits: Limits = Limits()) -> Snapshot:
    """Read a snapshot's seal configs and proof from an open file of ``size`` bytes, within ``limits``."""
    if size > limits.archive:
        raise SnapshotError(
            f"the file is {size} bytes, over the {limits.archive // _GIB} GiB this reader accepts "
            "for a snapshot"
        )
    head = file.read(2)
    if head != b"\x1f\x8b":
        raise SnapshotError(
            "the file is not gzip: expected the file 'bao operator raft snapshot save' (or vault's) wrote"
        )
    file.seek(0)
    stream = _Inflated(file, limits)
    small: dict[str, bytes] = {}
    configs: dict[str, bytes] = {}
    state_digest = None
    while (header := _header(stream.read(BLOCK))) is not None:
        name, length = header
        if name in small or (name == "state.bin" and state_digest is not None):
            raise SnapshotError(f"the archive holds {name} twice")
        if name == "state.bin":
            state_digest = hashlib.sha256()
            for key, value in _state_entries(stream, length, limits, state_digest):
                if key in configs:
                    raise SnapshotError(f"state.bin holds {key} twice")
                configs[key] = value
        else:
            if length > limits.small:
                raise SnapshotError(f"{name} is {length} bytes; a snapshot's is under {limits.small}")
            small[name] = stream.read(length)
        stream.read(-length % BLOCK)
    stream.read(BLOCK)  # the second end-of-archive block
    stream.finish()
    missing = [m for m in MEMBERS if m not in small and not (m == "state.bin" and state_digest)]
    if missing:
        raise SnapshotError(f"the archive lacks {', '.join(missing)}: it is not a whole raft snapshot")
    proof = parse_proof(
        small["meta.json"], small["SHA256SUMS"], small["SHA256SUMS.sealed"], small=limits.small
    )
    if not hmac.compare_digest(state_digest.hexdigest(), _sums(proof.sums)["state.bin"]):
        raise SnapshotError("state.bin does not match its SHA-256 in SHA256SUMS: the snapshot is damaged")
    if SEAL_CONFIG not in configs:
        raise SnapshotError(
            f"state.bin holds no {SEAL_CONFIG}: the snapshot is not of an initialized cluster"
        )
    seal = parse_seal_config(configs[SEAL_CONFIG])
    recovery = None
    if seal.type != "shamir":
        if RECOVERY_CONFIG not in configs:
            raise SnapshotError(f"the seal is {seal.type!r}, but state.bin holds no {RECOVERY_CONFIG}")
        recovery = parse_seal_config(configs[RECOVERY_CONFIG], RECOVERY_CONFIG)
    return Snapshot(seal=seal, recovery=recovery, proof=proof)
