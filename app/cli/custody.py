"""The registry and the custody drill: shares (every x ever issued) and verify (one holder's share)."""

from __future__ import annotations

import click

from app.cli.client import SHARES, VERIFY
from app.cli.failure import OK, REFUSED
from app.cli.options import Options, pass_options
from app.cli.output import custody, echo_json, grouped
from app.cli.prompts import read_share

__all__ = ["shares", "verify_share"]


@click.command()
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Count only the custody checks since this RFC 3339 time, such as 2026-01-01T00:00:00Z.",
)
@pass_options
def shares(options: Options, since: str | None) -> None:
    """List every share ever issued: index, origin, time, custody, PGP fingerprint (as gpg shows it)."""
    reply = options.client().call("GET", SHARES, params={"since": since} if since is not None else None)
    if options.json:
        echo_json(reply)
        return
    registry = reply.data
    header = ("INDEX", "ORIGIN", "ISSUED AT", "CUSTODY", "PGP FINGERPRINT")
    rows = [header]
    rows += [
        (str(s["index"]), s["origin"], s["issued_at"], custody(s), grouped(s["pgp_fingerprint"]) or "-")
        for s in registry["shares"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    click.echo("")
    summary = (
        f"{registry['issued']} shares issued, threshold {registry['threshold']}; "
        f"{registry['verifiable']} verifiable, {registry['verified']} verified"
    )
    if since is not None:
        summary += f" since {registry['since'] or since}"
    click.echo(summary)
    taken = registry.get("snapshot")
    if taken:
        click.echo(
            f"The set is bound to the cluster snapshot taken at raft index {taken['index']}, term "
            f"{taken['term']}: every share minted here opens it."
        )


@click.command("verify")
@click.pass_context
def verify_share(ctx: click.Context) -> None:
    """Check that the share you hold is the one the service issued (asked without echo).

    Exit 0 when it is, 1 when it is not (or the server refuses the share).
    """
    options = ctx.find_object(Options)
    client = options.client()
    client.health()  # before the share is asked for: it goes only to a generate-share server
    body = {"key": read_share(whole=True)}
    reply = client.call("PUT", VERIFY, body)
    del body
    result = reply.data
    if options.json:
        echo_json(reply)
    elif result["valid"]:
        click.echo(
            f"VALID: share x = {result['index']} (origin {result['origin']}, "
            f"issued {result['issued_at']}, verified now at {result['verified_at']})"
        )
    elif result.get("reason", "").startswith("this is not the share"):
        click.echo(f"NOT VALID: {result['reason']}.")
        click.echo(
            "Check that the whole share was copied (decrypted first, if it came encrypted); "
            "'generate-share shares' lists the x the service can verify."
        )
    else:
        # Never recorded, or named at adoption but never brought: unknown, not wrong.
        click.echo(f"CANNOT CHECK: {result.get('reason') or 'the server gave no reason'}.")
        click.echo(
            "The service holds nothing to compare it with, so this neither confirms nor refutes "
            "your share. On an adopted service, an x not named with 'adopt start --known' was never "
            "recorded; 'generate-share shares' lists the x the service knows."
        )
    ctx.exit(OK if result["valid"] else REFUSED)
