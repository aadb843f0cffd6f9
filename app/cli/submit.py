"""Send a holder's share to whichever ceremony (generate-share or adoption) is in progress."""

from __future__ import annotations

from collections.abc import Callable

import click

from app.cli.failure import Failure
from app.cli.options import Options
from app.cli.output import echo_json, progress
from app.cli.prompts import read_share

__all__ = ["submit_share"]


def submit_share(
    options: Options,
    status_path: str,
    update_path: str,
    *,
    missing: str,
    describe: Callable[[dict], str],
) -> dict | None:
    """Send the holder's share to the ceremony in progress; return its status once complete."""
    client = options.client()
    current = client.call("GET", status_path).data
    if not current["started"]:
        raise Failure(missing)  # before asking: nobody types a secret for nothing
    click.echo(describe(current), err=True)
    body = {"key": read_share(), "nonce": current["nonce"]}
    reply = client.call("PUT", update_path, body)
    del body
    if options.json:
        echo_json(reply)
        return None
    s = reply.data
    click.echo(f"Share accepted: {progress(s)}.")
    if not s["complete"]:
        left = s["required"] - s["progress"]
        click.echo(f"Waiting for {left} more share{'s' if left != 1 else ''}.")
        return None
    return s
