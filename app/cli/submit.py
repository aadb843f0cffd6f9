"""Send a holder's share to whichever ceremony (generate-share or adoption) is in progress."""

from __future__ import annotations

from collections.abc import Callable

import click

from app.cli.client import Client
from app.cli.failure import Failure, fail_usage
from app.cli.options import Options
from app.cli.output import echo_json, progress
from app.cli.prompts import confirm, read_share, stdin_is_terminal

__all__ = ["nonce_option", "submit_share"]

nonce_option = click.option(
    "--nonce",
    default=None,
    metavar="NONCE",
    help="The nonce the lead announced; the share is accepted only by that attempt. "
    "Without it, a terminal asks you to confirm the attempt shown.",
)


def _pinned_nonce(client: Client, current: dict, nonce: str | None, command: str) -> str:
    """Return the nonce to send: the holder's own, or the server's once the holder confirmed it."""
    if nonce is not None:
        # Checked before the share is asked for; the server checks it again.
        if nonce != current["nonce"]:
            raise Failure(
                f"the ceremony in progress has the nonce {current['nonce']}, not {nonce}: it is not the "
                "attempt the lead announced. Ask the lead before giving your share; nothing was sent."
            )
        return nonce
    if stdin_is_terminal():
        if not confirm(f"Is {current['nonce']} the nonce the lead announced?"):
            raise Failure("not confirmed: your share was not sent. Ask the lead for the nonce.")
        return current["nonce"]
    if client.token_mode():
        fail_usage(
            f"without a terminal to confirm the attempt, pass the nonce the lead announced: "
            f"generate-share {command} --nonce NONCE"
        )
    return current["nonce"]  # open mode: the seed's behaviour, the server's own nonce


def submit_share(
    options: Options,
    status_path: str,
    update_path: str,
    *,
    nonce: str | None,
    command: str,
    missing: str,
    describe: Callable[[dict], str],
    keep: Callable[[dict], None] | None = None,
) -> tuple[dict, dict] | None:
    """Send the holder's share to the ceremony in progress; return (status before, reply) once complete.

    keep, if given, sees the reply before anything is printed (update --output saves the new share).
    """
    client = options.client()
    client.health()  # a share goes only to a generate-share server
    current = client.call("GET", status_path).data
    if not current["started"]:
        raise Failure(missing)  # before asking: nobody types a secret for nothing
    click.echo(describe(current), err=True)
    body = {"nonce": _pinned_nonce(client, current, nonce, command)}
    body["key"] = read_share()
    reply = client.call("PUT", update_path, body)
    del body
    if keep is not None:
        keep(reply.data)
    if options.json:
        echo_json(reply)
        return None
    s = reply.data
    click.echo(f"Share accepted: {progress(s)}.")
    if not s["complete"]:
        left = s["required"] - s["progress"]
        click.echo(f"Waiting for {left} more share{'s' if left != 1 else ''}.")
        return None
    return current, s
