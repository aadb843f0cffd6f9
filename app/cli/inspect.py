"""inspect: tell a holder the x and the length of their share, offline."""

from __future__ import annotations

import click

from app.cli.failure import USAGE, Failure
from app.cli.prompts import read_share
from app.encoding import decode_share
from app.errors import BadRequest

__all__ = ["inspect_share"]

#: Any share this program deals in: 1 to 64 key bytes, then the x byte.
SHARE_LENGTHS = range(2, 66)


@click.command("inspect")
def inspect_share() -> None:
    """Print your share's x and length (asked without echo; offline, the share is never printed).

    x is the share's last byte, printed in decimal as every other command
    prints and reads it (adopt start --known, shares, init, verify).
    """
    text = read_share(whole=True)
    try:
        share = decode_share(text, SHARE_LENGTHS)
    except BadRequest as refused:
        raise Failure(*refused.messages, exit_code=USAGE) from None
    finally:
        del text
    if share[-1] == 0:
        raise Failure(
            "this share ends in the byte 0, but a share's x is 1 to 255: check the copy", exit_code=USAGE
        )
    click.echo(f"x:      {share[-1]}")
    click.echo(f"length: {len(share)} bytes (a key of {len(share) - 1} bytes)")
