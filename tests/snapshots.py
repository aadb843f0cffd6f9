"""Raft snapshots the tests build, in OpenBao's layout and in Vault's (from its source's description).

A snapshot is a gzipped ustar archive of meta.json, state.bin (varint-delimited
protobuf StorageEntry {key = 1, value = 2}), SHA256SUMS and SHA256SUMS.sealed
(a go-kms-wrapping BlobInfo whose field 1 is nonce || AES-GCM ciphertext || tag;
with several Vault seals, "multiwrapvalue:1", a big-endian length and
MultiWrapValue {generation = 1, repeated BlobInfo slots = 2}).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app import shamir


def varint(n: int) -> bytes:
    """Encode n as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(number: int, value: bytes) -> bytes:
    """Encode a length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_varint(number: int, value: int) -> bytes:
    """Encode a varint protobuf field."""
    return varint(number << 3) + varint(value)


def storage_entry(key: str, value: bytes) -> bytes:
    """One state.bin entry: its varint length, then StorageEntry {key = 1, value = 2}."""
    entry = field_bytes(1, key.encode()) + field_bytes(2, value)
    return varint(len(entry)) + entry


def blob_info(key: bytes, plain: bytes, *, vault: bool = False) -> bytes:
    """A BlobInfo as the aead wrapper makes it; Vault also sets wrapped (field 4)."""
    nonce = secrets.token_bytes(12)
    ciphertext = nonce + AESGCM(key).encrypt(nonce, plain, None)
    key_info = field_bytes(5, field_varint(1, 0) + field_bytes(3, b"shamir"))
    return field_bytes(1, ciphertext) + (field_varint(4, 1) if vault else b"") + key_info


def multi_wrap(blobs: list[bytes], generation: int = 7) -> bytes:
    """Vault's SealWrappedValue for several seals."""
    body = field_varint(1, generation) + b"".join(field_bytes(2, b) for b in blobs)
    return b"multiwrapvalue:1" + struct.pack(">I", len(body)) + body


def seal_config(shares: int = 5, threshold: int = 3, kind: str = "shamir") -> bytes:
    """core/seal-config as Vault and OpenBao store it."""
    return json.dumps(
        {
            "type": kind,
            "secret_shares": shares,
            "secret_threshold": threshold,
            "pgp_keys": None,
            "nonce": "",
            "backup": False,
            "stored_shares": 1,
        }
    ).encode()


def sums_of(meta: bytes, state: bytes) -> bytes:
    """SHA256SUMS as the snapshot writes it (sha256sum's format)."""
    return (
        f"{hashlib.sha256(meta).hexdigest()}  meta.json\n{hashlib.sha256(state).hexdigest()}  state.bin\n"
    ).encode()


@dataclass
class Cluster:
    """A made-up cluster: a 32-byte key split into shares, and what its snapshot would say."""

    threshold: int = 3
    count: int = 5
    kind: str = "shamir"
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    recovery_threshold: int = 3
    index: int = 29
    term: int = 3

    def __post_init__(self):
        # An auto-unsealed cluster's holders keep recovery keys: those are what is split.
        split_at = self.threshold if self.kind == "shamir" else self.recovery_threshold
        self.shares = shamir.split(self.key, self.count, split_at)

    def seal_numbers(self) -> tuple[int, int]:
        """(secret_shares, secret_threshold) of core/seal-config: 1 and 1 for an auto-unseal seal."""
        return (self.count, self.threshold) if self.kind == "shamir" else (1, 1)

    def members(
        self, *, vault: bool = False, multi: bool = False, extra_entries: bytes = b"", swapped: bool = False
    ) -> dict[str, bytes]:
        """The four members of this cluster's snapshot."""
        meta = json.dumps(
            {"Version": 1, "ID": "bolt-snapshot", "Index": self.index, "Term": self.term}
        ).encode()
        entries = [
            storage_entry("core/cluster/local/info", secrets.token_bytes(200)),
            storage_entry("core/seal-config", seal_config(*self.seal_numbers(), self.kind)),
        ]
        if self.kind != "shamir":
            entries.append(
                storage_entry("core/recovery-seal-config", seal_config(self.count, self.recovery_threshold))
            )
        entries.append(storage_entry("logical/abc/secret", secrets.token_bytes(500)))
        state = b"".join(entries) + extra_entries
        sums = sums_of(meta, state)
        # OpenBao writes both copies from a Go map: the sealed one may list the lines the other way round.
        plain = b"".join(reversed(sums.splitlines(keepends=True))) if swapped else sums
        if self.kind != "shamir":  # sealed by the KMS, whose key no holder has
            sealed = blob_info(secrets.token_bytes(32), plain, vault=vault)
        elif multi:
            other = secrets.token_bytes(32)
            sealed = multi_wrap([blob_info(other, plain, vault=True), blob_info(self.key, plain, vault=True)])
        else:
            sealed = blob_info(self.key, plain, vault=vault)
        return {"meta.json": meta, "state.bin": state, "SHA256SUMS": sums, "SHA256SUMS.sealed": sealed}


def tar_bytes(members: dict[str, bytes] | list[tuple[str, bytes]], **tar_options) -> bytes:
    """A tar of the members, in order (ustar unless told otherwise)."""
    items = members.items() if isinstance(members, dict) else members
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_options.pop("format", tarfile.USTAR_FORMAT)) as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 1_700_000_000
            for k, v in tar_options.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def archive(members: dict[str, bytes] | list[tuple[str, bytes]], **tar_options) -> bytes:
    """A gzipped tar of the members: a snapshot file."""
    return gzip.compress(tar_bytes(members, **tar_options), mtime=0)


def write(path: Path, data: bytes) -> Path:
    """Write a snapshot file and return its path."""
    path.write_bytes(data)
    return path


def gzip_bomb(inflated: int) -> bytes:
    """A valid gzip stream of ``inflated`` zero bytes (whole MiB), about a thousandth of that on disk.

    Each MiB is deflated once and ends with a full flush, which resets the
    compressor, so every further MiB is the same bytes: repeated, not recomputed.
    """
    chunk = bytes(1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    count = inflated >> 20
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    body = first + again * (count - 1) + z.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + body + struct.pack("<II", crc, inflated & 0xFFFFFFFF)
