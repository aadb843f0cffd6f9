"""snapshot check: do these shares open this cluster's raft snapshot? Offline, nothing is sent anywhere.

Also the one place the CLI reads a snapshot file (``adopt start --snapshot``
uses it too): a regular file only, read by ``app.snapshot`` under its caps,
and every refusal is a usage error (exit 2) with the reader's sentence.
"""

from __future__ import annotations

import os
import stat

import click

from app import shamir
from app.cli.failure import OK, REFUSED, USAGE, Failure
from app.cli.prompts import read_share, stdin_is_terminal
from app.encoding import decode_share
from app.errors import BadRequest
from app.snapshot import Snapshot, SnapshotError, opens, read_snapshot

__all__ = ["describe", "load_snapshot", "snapshot_group"]

#: A share of any key AES-GCM takes (16, 24 or 32 bytes), then its x byte.
SHARE_LENGTHS = range(2, 66)


def load_snapshot(path: str) -> Snapshot:
    """Read the snapshot file at path, or stop with exit 2 and a sentence (never a traceback)."""
    flags = os.O_RDONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise Failure(f"cannot read the snapshot {path}: {exc.strerror or exc}", exit_code=USAGE) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Failure(
                f"the snapshot {path} is not a regular file: give the file that "
                "'bao operator raft snapshot save FILE' wrote",
                exit_code=USAGE,
            )
        os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            return read_snapshot(file, info.st_size)
        except SnapshotError as exc:
            raise Failure(f"{path} is not a usable raft snapshot: {exc}", exit_code=USAGE) from None
        except OSError as exc:
            raise Failure(
                f"cannot read the snapshot {path}: {exc.strerror or exc}", exit_code=USAGE
            ) from None


def describe(snap: Snapshot) -> str:
    """Say in one line what the snapshot is of."""
    seal, proof = snap.seal, snap.proof
    taken = f"taken at raft index {proof.index}, term {proof.term}"
    if snap.recovery is None:
        return f"a {seal.type} seal with {seal.secret_shares} shares, {seal.secret_threshold} needed; {taken}"
    rec = snap.recovery
    return (
        f"a {seal.type} seal (auto-unseal) with {rec.secret_shares} recovery keys, "
        f"{rec.secret_threshold} needed; {taken}"
    )


def _read_shares(count: int) -> list[bytes]:
    """Ask for count distinct shares, without echo on a terminal (one line each from stdin otherwise)."""
    shares: list[bytes] = []
    for i in range(1, count + 1):
        prompt = f"Share {i} of {count} (hex or base64; it is not shown)"
        text = read_share(prompt)
        try:
            share = decode_share(text, SHARE_LENGTHS, field=f"share {i}")
        except BadRequest as refused:
            raise Failure(*refused.messages, exit_code=USAGE) from None
        finally:
            del text
        if share[-1] == 0:
            raise Failure(f"share {i} ends in the byte 0, but a share's x is 1 to 255", exit_code=USAGE)
        if any(s[-1] == share[-1] for s in shares):
            raise Failure(
                f"share {i} has the x of an earlier share ({share[-1]}): each holder types their own",
                exit_code=USAGE,
            )
        if shares and len(share) != len(shares[0]):
            raise Failure(
                f"share {i} is {len(share)} bytes, but share 1 is {len(shares[0])}", exit_code=USAGE
            )
        shares.append(share)
    return shares


@click.group("snapshot")
def snapshot_group() -> None:
    """Check shares against a Vault or OpenBao raft snapshot, offline."""


@snapshot_group.command("check")
@click.option(
    "--snapshot",
    "path",
    required=True,
    metavar="FILE",
    help="The file 'bao operator raft snapshot save FILE' (or 'vault operator raft snapshot save') wrote.",
)
@click.pass_context
def snapshot_check(ctx: click.Context, path: str) -> None:
    """Tell whether t unseal shares, typed here without echo, open this cluster's snapshot.

    Offline: no server is asked and nothing leaves this machine. The holders
    take turns at this terminal. Exit 0 when the shares open the snapshot,
    1 when they do not, 2 when the file or a share cannot be used.
    """
    snap = load_snapshot(path)
    click.echo(f"Snapshot: {describe(snap)}.", err=True)
    if snap.recovery is not None:
        raise Failure(
            f"this cluster is auto-unsealed ({snap.seal.type}): its snapshot is sealed by that seal, "
            "not by the recovery keys, so it cannot prove recovery keys",
            exit_code=USAGE,
        )
    threshold = snap.seal.secret_threshold
    if threshold < 2:
        raise Failure(
            "this cluster's key is not split (threshold 1): there are no shares to check", exit_code=USAGE
        )
    if stdin_is_terminal():
        click.echo(f"{threshold} holders, one after another, type their share (it is not shown).", err=True)
    shares = _read_shares(threshold)
    # bytearray: clearing it after use is best effort, Python may have copied it.
    key = bytearray(shamir.combine(shares))
    try:
        good = opens(bytes(key), snap.proof)
    finally:
        key[:] = bytes(len(key))
        del shares
    if good:
        click.echo(f"YES: these {threshold} shares open this cluster's snapshot: they are shares of its key.")
    else:
        click.echo(
            f"NO: these {threshold} shares do not open this cluster's snapshot. At least one is wrong or "
            "mistyped, or belongs to another cluster, or the snapshot is older than a rekey."
        )
    ctx.exit(OK if good else REFUSED)
