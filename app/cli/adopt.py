"""Adoption of an existing Vault share set: adopt start, status, update, cancel."""

from __future__ import annotations

import base64
from typing import Any

import click

from app.cli.client import ADOPT, ADOPT_UPDATE, ATTEMPT
from app.cli.failure import fail_usage
from app.cli.options import Options, cancel_ceremony, pass_options
from app.cli.output import HIDDEN_NONCE, echo_json, progress, root_token_lines, x_list
from app.cli.prompts import read_token
from app.cli.snapshot import describe, load_snapshot
from app.cli.submit import nonce_option, submit_share
from app.snapshot import Snapshot

__all__ = ["adopt_group"]


@click.group("adopt")
def adopt_group() -> None:
    """Adopt an existing Vault share set, so that generate-share mints shares of its key."""


def _x(entry: str) -> int | None:
    """Read one x: decimal as every command prints it, or hex only with 0x (never a bare guess)."""
    if entry.isascii() and entry.isdigit():
        return int(entry)
    digits = entry[2:]
    if entry[:2].lower() == "0x" and digits and all(c in "0123456789abcdefABCDEF" for c in digits):
        return int(digits, 16)
    return None


def _indices(value: str) -> list[int]:
    """Parse '17,90,201' (or '0x11,0x5a') into x coordinates, or stop with a usage error."""
    if not value.strip():
        return []
    entries = [_x(entry.strip()) for entry in value.split(",")]
    if None in entries:
        fail_usage(
            "--known must list x coordinates separated by commas, in decimal as 'generate-share inspect' "
            f"prints them (17,90,201), or in hex with 0x (0x11,0x5a,0xc9), not {value!r}"
        )
    return entries


def _adoption_lines(s: dict) -> None:
    """Print an adoption's nonce, progress and threshold."""
    click.echo(f"Nonce:     {s['nonce'] or (HIDDEN_NONCE if s['started'] else '-')}")
    click.echo(f"Progress:  {progress(s) if s['started'] else '-'}")
    click.echo(f"Threshold: {s['secret_threshold'] if s['started'] else '-'}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _seal(config) -> dict:
    return {
        "type": config.type,
        "secret_shares": config.secret_shares,
        "secret_threshold": config.secret_threshold,
    }


def snapshot_body(snap: Snapshot) -> dict:
    """Return what leaves this machine of a snapshot: its seal configs and three small files."""
    body = {
        "seal_config": _seal(snap.seal),
        "meta": _b64(snap.proof.meta),
        "sha256sums": _b64(snap.proof.sums),
        "sealed": _b64(snap.proof.sealed),
    }
    if snap.recovery is not None:
        body["recovery_seal_config"] = _seal(snap.recovery)
    return body


def _snapshot_threshold(snap: Snapshot, given: int | None) -> None:
    """Refuse a --threshold that disagrees with the snapshot, naming both, before anything is sent."""
    config = snap.recovery or snap.seal
    if given is not None and given != config.secret_threshold:
        fail_usage(
            f"--threshold is {given}, but the snapshot's "
            f"{'recovery ' if snap.recovery else ''}seal config says {config.secret_threshold}: "
            "leave --threshold out (it comes from the snapshot), or check that the snapshot is of "
            "this cluster"
        )


@adopt_group.command("start")
@click.option(
    "--threshold",
    "secret_threshold",
    type=int,
    default=None,
    help="How many shares rebuild the existing key (Vault's secret_threshold); "
    "with --snapshot it comes from the snapshot.",
)
@click.option(
    "--snapshot",
    "snapshot_path",
    default=None,
    metavar="FILE",
    help="A raft snapshot of the cluster ('bao operator raft snapshot save FILE'): the set is adopted only "
    "if the shares open it, so t holders suffice. Only its seal config, meta.json, SHA256SUMS and "
    "SHA256SUMS.sealed are sent; the encrypted store never leaves this machine.",
)
@click.option(
    "--required",
    type=int,
    default=None,
    help="How many distinct shares will be brought (more than the threshold; default threshold + 1).",
)
@click.option(
    "--known",
    default=None,
    metavar="X,X,...",
    help="The x of every share that exists but whose holder will not take part, comma-separated, "
    "in decimal as 'generate-share inspect' prints it (or hex with 0x).",
)
@click.option("--share-limit", type=int, default=None, help="The most shares that may ever exist.")
@pass_options
def adopt_start(
    options: Options,
    secret_threshold: int,
    required: int | None,
    known: str | None,
    share_limit: int | None,
    snapshot_path: str | None,
) -> None:
    """Start adopting a share set split elsewhere (Vault, OpenBao), proved by its snapshot if given."""
    body: dict[str, Any] = {}
    snap = None
    if snapshot_path is not None:
        snap = load_snapshot(snapshot_path)  # every refusal here comes before any request
        _snapshot_threshold(snap, secret_threshold)
        body["snapshot"] = snapshot_body(snap)
    elif secret_threshold is None:
        fail_usage("--threshold is required without --snapshot: how many shares rebuild the existing key")
    if secret_threshold is not None:
        body["secret_threshold"] = secret_threshold
    if required is not None:
        body["required"] = required
    if known is not None:
        body["known_indices"] = _indices(known)
    if share_limit is not None:
        body["share_limit"] = share_limit
    reply = options.client().call("PUT", ADOPT, body)
    if options.json:
        echo_json(reply)
        return
    s = reply.data
    click.echo("Adoption started.")
    if snap is not None:
        click.echo(f"Snapshot:  {describe(snap)}")
    _adoption_lines(s)
    if known is not None:
        click.echo(f"Known x:   {x_list(body['known_indices'])} (recorded, not brought)")
    click.echo(f"Announce the nonce to every holder; each of the {s['required']} gives their share with:")
    click.echo(f"  generate-share adopt update --nonce {s['nonce']}")
    for warning in s.get("warnings", ()):
        click.echo(f"Warning:   {warning}")
    if s.get("check") == "snapshot":
        click.echo(
            f"The share set is adopted only if the {s['required']} shares open this cluster's snapshot."
        )
    else:
        click.echo(
            f"The share set is adopted only if all {s['required']} shares lie on one polynomial "
            f"of threshold {s['secret_threshold']}."
        )
    root_token_lines(s)
    if s.get("root_token"):
        click.echo(
            "This token is this adoption's own, and the service's once the set is adopted: any token "
            "an earlier 'adopt start' printed no longer works, and cancelling this adoption voids "
            "this one too."
        )


@adopt_group.command("status")
@pass_options
def adopt_status(options: Options) -> None:
    """Show the adoption in progress: started, progress, threshold, nonce (to its lead)."""
    reply = options.client().call("GET", ADOPT, token=read_token(options.token_file))
    if options.json:
        echo_json(reply)
        return
    s = reply.data
    click.echo(f"Started:   {'true' if s['started'] else 'false'}")
    _adoption_lines(s)


@adopt_group.command("update")
@nonce_option
@pass_options
def adopt_update(options: Options, nonce: str | None) -> None:
    """Submit your existing share to the adoption in progress (asked without echo)."""
    done = submit_share(
        options,
        ADOPT,
        ADOPT_UPDATE,
        nonce=nonce,
        command="adopt update",
        missing="no adoption is in progress; start one with 'generate-share adopt start'",
        describe=lambda c: (
            f"Adoption {c['nonce'] or 'in progress'}: {progress(c)}, threshold {c['secret_threshold']}"
        ),
        elsewhere=(
            ATTEMPT,
            "a share generation attempt is in progress, not an adoption: give your share to it with "
            "'generate-share update --nonce NONCE'; nothing was sent",
        ),
        check="'generate-share inspect' shows its x and length; 'generate-share verify' checks a share "
        "only once its set is adopted",
    )
    if done is None:
        return
    s = done[1]
    t = s["secret_threshold"]
    if s.get("check") == "snapshot":
        click.echo(f"The share set is adopted: its {s['required']} shares open this cluster's snapshot.")
        click.echo(f"Recorded as adopted: x = {x_list(s['indices'])}")
        click.echo(
            "Next: mint a replacement with 'generate-share start' and a quorum of updates; the service "
            "issues it only once it opens the snapshot too."
        )
        return
    click.echo(f"The share set is adopted: its {s['required']} shares agree on one key of threshold {t}.")
    click.echo(f"Recorded as adopted: x = {x_list(s['indices'])}")
    click.echo("Next: mint a replacement with 'generate-share start' and a quorum of updates.")
    click.echo("The service cannot ask your cluster whether this key is the right one, so:")
    click.echo(
        "LAST STEP: before relying on a share made here, unseal a test standby or a restored snapshot "
        f"with it and t-1 old shares ({t - 1} here)."
    )


@adopt_group.command("cancel")
@pass_options
def adopt_cancel(options: Options) -> None:
    """Cancel the adoption in progress; every submitted share is forgotten."""
    cancel_ceremony(
        options,
        ADOPT,
        "adoption",
        voided="The root token that 'generate-share adopt start' printed for it no longer works: "
        "the next 'generate-share adopt start' prints a new token, and a new nonce to announce.",
    )
