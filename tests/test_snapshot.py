"""The raft snapshot reader, on archives the tests build: OpenBao's and Vault's layouts, and hostile files."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import replace

import pytest
from snapshots import Cluster, archive, gzip_bomb, storage_entry, tar_bytes

from app import shamir
from app.snapshot import Limits, Proof, SnapshotError, opens, parse_proof, parse_seal_config, read_snapshot


class Counting(io.BytesIO):
    """A file that counts how many bytes were read from it."""

    taken = 0

    def read(self, n=-1):
        data = super().read(n)
        self.taken += len(data)
        return data


DEFAULT = Limits()


def read(data: bytes, limits: Limits = DEFAULT):
    return read_snapshot(io.BytesIO(data), len(data), limits)


def refused(data: bytes, fragment: str, limits: Limits = DEFAULT) -> str:
    with pytest.raises(SnapshotError) as caught:
        read(data, limits)
    assert fragment in str(caught.value), str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(
    "layout",
    [{}, {"swapped": True}, {"vault": True}, {"multi": True}],
    ids=["openbao", "openbao, sealed lines swapped", "vault one seal", "vault seal HA"],
)
def test_the_clusters_own_quorum_opens_its_snapshot(layout):
    cluster = Cluster()
    snap = read(archive(cluster.members(**layout)))
    assert (snap.seal.type, snap.seal.secret_shares, snap.seal.secret_threshold) == ("shamir", 5, 3)
    assert snap.recovery is None and (snap.proof.index, snap.proof.term) == (29, 3)
    assert opens(shamir.combine(cluster.shares[2:5]), snap.proof)
    # Two shares rebuild some other key; a stranger's key opens nothing.
    assert not opens(shamir.combine(cluster.shares[:2]), snap.proof)
    assert not opens(Cluster().key, snap.proof)


def test_a_share_with_one_bit_flipped_does_not_open_it():
    cluster = Cluster()
    proof = read(archive(cluster.members())).proof
    wrong = bytearray(cluster.shares[0])
    wrong[3] ^= 1
    assert not opens(shamir.combine([bytes(wrong), *cluster.shares[1:3]]), proof)


def test_an_auto_unsealed_cluster_gives_its_recovery_config():
    cluster = Cluster(kind="awskms", recovery_threshold=2)
    snap = read(archive(cluster.members()))
    assert snap.seal.type == "awskms"
    recovery = snap.recovery
    assert (recovery.type, recovery.secret_threshold, recovery.secret_shares) == ("shamir", 2, 5)


def test_a_large_entry_is_skipped_unread_but_hashed():
    cluster = Cluster()
    big = storage_entry("logical/big", bytes(300_000))
    snap = read(archive(cluster.members(extra_entries=big)), Limits(entry=1000))
    assert snap.seal.secret_threshold == 3
    # Hashed all the same: a changed byte in the skipped entry is caught.
    members = cluster.members(extra_entries=big)
    members["state.bin"] = members["state.bin"][:-1] + b"\1"
    refused(archive(members), "state.bin does not match its SHA-256", Limits(entry=1000))


def test_a_gzip_bomb_is_refused_after_a_few_kilobytes():
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros in about 250 KB
    f = Counting(bomb)
    with pytest.raises(SnapshotError, match="decompression bomb"):
        read_snapshot(f, len(bomb))
    assert f.taken < 128 << 10, f.taken  # under 128 KiB of the file read: refused long before its end


def test_an_archive_over_the_cap_is_refused_before_reading():
    f = Counting(b"\x1f\x8b" + bytes(100))
    with pytest.raises(SnapshotError, match="over the 1 GiB"):
        read_snapshot(f, 5 << 30, Limits(archive=1 << 30))
    assert f.taken == 0


def test_an_oversized_small_member_is_refused_before_it_is_read():
    members = Cluster().members()
    members["meta.json"] = b" " * 70_000
    refused(archive(members), "meta.json is 70000 bytes")


CUTS = {"3 bytes": 3, "10 bytes": 10, "40 bytes": 40, "half": 0.5, "no trailer": -9, "one byte short": -1}


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_truncated_archive_is_refused(cut):
    data = archive(Cluster().members())
    n = CUTS[cut]
    data = data[: int(len(data) * n)] if isinstance(n, float) else data[:n]
    with pytest.raises(SnapshotError) as caught:
        read(data)
    assert "truncated" in str(caught.value) or "damaged" in str(caught.value), str(caught.value)


def _renamed(name: str, **tar_options) -> bytes:
    members = list(Cluster().members().items())
    members[0] = (name, members[0][1])
    return archive(members, **tar_options)


HOSTILE = {
    "junk": (b"this is not a snapshot\n" * 50, "not gzip"),
    "empty file": (b"", "not gzip"),
    "gzip of junk": (gzip.compress(b"junk" * 1000), "not a ustar archive"),
    "gzip of nothing": (gzip.compress(b""), "truncated"),
    "../ member": (_renamed("../meta.json"), "'../meta.json'"),
    "absolute member": (_renamed("/etc/passwd"), "'etc/passwd'"),
    "dot-slash member": (_renamed("./meta.json"), "'./meta.json'"),
    "an unexpected member": (
        archive([*Cluster().members().items(), ("extra.txt", b"x")]),
        "'extra.txt'",
    ),
    "a symlink": (
        archive([*Cluster().members().items(), ("meta.json", b"")], type=tarfile.SYMTYPE, linkname="/etc"),
        "'meta.json'",
    ),
    "a directory": (archive({"meta.json": b""}, type=tarfile.DIRTYPE), "'meta.json/'"),
    "a pax header": (archive(Cluster().members(), format=tarfile.PAX_FORMAT, pax_headers={"x": "y"}), "'"),
    "a gnu long name": (_renamed("a" * 150, format=tarfile.GNU_FORMAT), "'././@LongLink'"),
    "a ustar prefix": (_renamed("d" * 120 + "/meta.json"), "'dddddddd"),
    "meta.json twice": (
        archive([*Cluster().members().items(), ("meta.json", b"{}")]),
        "meta.json twice",
    ),
    "a missing member": (
        archive({k: v for k, v in Cluster().members().items() if k != "SHA256SUMS.sealed"}),
        "lacks SHA256SUMS.sealed",
    ),
    "no members": (archive({}), "lacks meta.json, state.bin, SHA256SUMS, SHA256SUMS.sealed"),
    "a tar, not gzipped": (tar_bytes(Cluster().members()), "not gzip"),
    "data after the gzip stream": (archive(Cluster().members()) + b"trailing", "after the gzip"),
    "a second gzip stream": (archive(Cluster().members()) * 2, "after the gzip"),
    "data after the tar": (gzip.compress(tar_bytes(Cluster().members()) + b"x" * 600), "after the tar"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_with_a_sentence(case):
    data, fragment = HOSTILE[case]
    refused(data, fragment)


def _altered(**changes) -> bytes:
    members = Cluster().members()
    members.update(changes)
    return archive(members)


ALTERED = {
    "meta.json changed": (_altered(**{"meta.json": b'{"Index": 1, "Term": 1}'}), "meta.json does not match"),
    "SHA256SUMS malformed": (_altered(SHA256SUMS=b"nonsense\n"), "SHA256SUMS must hold two lines"),
    "sealed empty": (_altered(**{"SHA256SUMS.sealed": b"\x0a\x00"}), "holds no AES-GCM ciphertext"),
    "sealed junk": (_altered(**{"SHA256SUMS.sealed": b"\xff" * 40}), "protobuf"),
    "sealed multi, bad length": (
        _altered(**{"SHA256SUMS.sealed": b"multiwrapvalue:1\0\0\0\x09abc"}),
        "length does not match",
    ),
    "sealed multi, no slots": (
        _altered(**{"SHA256SUMS.sealed": b"multiwrapvalue:1\0\0\0\x02\x08\x07"}),
        "with 0 seals",
    ),
}


def test_a_changed_state_is_caught():
    members = Cluster().members()
    members["state.bin"] = members["state.bin"].replace(b'secret_threshold": 3', b'secret_threshold": 2')
    refused(archive(members), "state.bin does not match its SHA-256")


@pytest.mark.parametrize("case", list(ALTERED))
def test_an_altered_small_file_is_refused(case):
    data, fragment = ALTERED[case]
    refused(data, fragment)


def test_a_snapshot_without_a_seal_config_is_refused():
    cluster = Cluster()
    members = cluster.members()
    state = storage_entry("core/other", b"x")
    members["state.bin"] = state
    members["SHA256SUMS"] = members["SHA256SUMS"].split(b"\n")[0] + b"\n" + _state_line(state)
    # The proof no longer matches the sealed sums, but the reader stops at the config first.
    refused(archive(members), "holds no core/seal-config")


def _state_line(state: bytes) -> bytes:
    return f"{hashlib.sha256(state).hexdigest()}  state.bin\n".encode()


def test_an_auto_unsealed_snapshot_without_a_recovery_config_is_refused():
    cluster = Cluster(kind="transit")
    members = cluster.members()
    state = storage_entry("core/seal-config", b'{"type":"transit","secret_shares":1,"secret_threshold":1}')
    members["state.bin"] = state
    members["SHA256SUMS"] = members["SHA256SUMS"].split(b"\n")[0] + b"\n" + _state_line(state)
    refused(archive(members), "holds no core/recovery-seal-config")


@pytest.mark.parametrize(
    "config, fragment",
    [
        (b"not json", "is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"secret_shares": 5, "secret_threshold": 3}', "no seal type"),
        (b'{"type": "shamir", "secret_shares": 5, "secret_threshold": 6}', "threshold <= shares"),
        (b'{"type": "shamir", "secret_shares": 5, "secret_threshold": true}', "as integers"),
        (b'{"type": "shamir", "secret_shares": 256, "secret_threshold": 3}', "<= 255"),
    ],
)
def test_a_bad_seal_config_is_refused(config, fragment):
    with pytest.raises(SnapshotError, match=fragment):
        parse_seal_config(config)


def test_the_proof_is_checked_without_a_key():
    cluster = Cluster()
    m = cluster.members()
    proof = parse_proof(m["meta.json"], m["SHA256SUMS"], m["SHA256SUMS.sealed"])
    assert isinstance(proof, Proof) and opens(cluster.key, proof)
    with pytest.raises(SnapshotError, match="meta.json does not match"):
        parse_proof(b'{"Index": 9, "Term": 9}', m["SHA256SUMS"], m["SHA256SUMS.sealed"])
    with pytest.raises(SnapshotError, match="must be 1 to 65536 bytes"):
        parse_proof(m["meta.json"], m["SHA256SUMS"], bytes(70_000))
    # A key of a length AES does not take opens nothing (and raises nothing).
    assert not opens(cluster.key[:31], proof)
    # Sealed sums that list another digest do not match, whatever the key.
    other = (b"0" if proof.sums[:1] != b"0" else b"1") + proof.sums[1:]
    assert not opens(cluster.key, replace(proof, sums=other))
