"""The trail's anchor: an HMAC of each recorded head under a key the data folder does not hold.

The chain and the two recorded heads (state file, head file) catch quiet
damage, but nothing in the data folder is secret: whoever can write it can
cut lines from the end and recompute both heads. With an audit key
(``GENERATE_SHARE_AUDIT_KEY_FILE``, a file outside the data folder, readable
by the service's user only), every recorded head carries
HMAC-SHA256(key, head), and a head without a valid one is refused at start
and by ``audit verify``: recomputing a head now needs the key too.

What the anchor cannot catch: a rollback of the whole folder to an earlier
copy of itself (trail, state file and head file as they were then), whose
heads were anchored then. Only heads kept outside the folder show that: the
``audit_head`` in the minutes of each ceremony, backups, webhook receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import replace
from pathlib import Path

from .errors import StartupError
from .state import Head

__all__ = ["SETTING", "AuditKey", "anchored", "check_anchors", "load_audit_key"]

SETTING = "GENERATE_SHARE_AUDIT_KEY_FILE"
MIN_KEY_BYTES = 32
_LABEL = b"generate-share audit head v1\0"


class AuditKey:
    """The audit key, held in memory only: it signs and checks heads, and names itself by a short id."""

    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"an audit key has at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)
        #: Names the key in messages and in verify's report, and proves nothing about it.
        self.key_id = hmac.new(self._key, b"generate-share audit key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, seq: int, digest: str) -> str:
        """Return the anchor of the head (seq, digest): 64 hex digits."""
        return hmac.new(self._key, _LABEL + b"%d\0%s" % (seq, digest.encode()), hashlib.sha256).hexdigest()

    def check(self, seq: int, digest: str, anchor: str | None) -> bool:
        """Tell, in constant time, whether anchor is this key's anchor of the head."""
        return anchor is not None and hmac.compare_digest(self.sign(seq, digest), anchor)

    def __repr__(self) -> str:
        """Name the key by its id only: the key itself never reaches a log line."""
        return f"AuditKey(key_id={self.key_id!r})"


def load_audit_key(path: str, data_dir: str | os.PathLike) -> AuditKey | None:
    """Read the audit key file named by the setting (None if unset); StartupError says what is wrong."""
    if not path:
        return None
    file = Path(path)
    try:
        inside = file.resolve().is_relative_to(Path(data_dir).resolve())
    except OSError:
        inside = False
    if inside:
        raise StartupError(
            f"{SETTING} names {file}, inside the data folder {data_dir}: the key must live where "
            "whoever can write the data folder cannot read it, such as /etc/generate-share/audit.key"
        )
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StartupError(f"{SETTING} names {file}, which cannot be read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise StartupError(
                f"{SETTING} names {file}, which its group or others can read or write (mode "
                f"{stat.S_IMODE(mode):04o}); make it 0400 or 0600, owned by the service's user"
            )
        key = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    if len(key) < MIN_KEY_BYTES:
        raise StartupError(
            f"{SETTING} names {file}, which holds {len(key)} bytes; an audit key has at least "
            f"{MIN_KEY_BYTES} (make one with: openssl rand -hex 32 > FILE)"
        )
    return AuditKey(key)


def anchored(head: Head, key: AuditKey | None) -> Head:
    """Return head with its anchor under key (none without a key)."""
    return replace(head, anchor=key.sign(head.seq, head.digest) if key else None)


def check_anchors(
    key: AuditKey | None, state_head: Head, file_head: Head | None, *, written: bool, adopting: bool = False
) -> str | None:
    """Return why the recorded heads do not stand under the audit key (or without one), else None.

    ``written``: the trail holds lines (an empty trail has nothing to cut). ``adopting``: records
    from before the key may carry no anchor (they are anchored once the other checks passed).
    """
    heads = [("the data file's", state_head)] + ([("the audit head file's", file_head)] if file_head else [])
    anchored = [name for name, head in heads if head.anchor is not None]
    if not written:
        return None
    if key is None:
        if anchored:
            return (
                f"{anchored[0]} head is anchored under an audit key, which is not given: set {SETTING} "
                "to the key file the records were anchored with"
            )
        return None
    for name, head in heads:
        if head.anchor is None:
            if adopting and not anchored:
                continue
            return (
                f"{name} head (line {head.seq}) carries no anchor under the audit key {key.key_id}: it was "
                "recomputed by someone without the key, or the records were written before the key was "
                "set (then anchor them once with 'generate-share audit anchor DATA_DIR')"
            )
        if not key.check(head.seq, head.digest, head.anchor):
            return (
                f"{name} head (line {head.seq}) does not match its anchor under the audit key {key.key_id}: "
                f"it was recomputed by someone without the key, or {SETTING} names another key"
            )
    return None
