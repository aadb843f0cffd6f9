"""backup: a consistent copy of the data folder, on the server's own disk, while the service runs."""

from __future__ import annotations

import json
import os

import click

from app.cli.failure import OK, REFUSED, USAGE, Failure
from app.cli.options import Options

__all__ = ["backup"]

DATA_DIR_ENV = "GENERATE_SHARE_DATA_DIR"
DEFAULT_DATA_DIR = "./data"


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help=f"The data folder to copy (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR}).",
)
@click.pass_context
def backup(ctx: click.Context, dest: str, data_dir: str | None) -> None:
    """Copy the data folder's records into the new folder DEST (0700), verified, and print its audit head.

    Safe while the service runs; run it as the service's user. The copy holds
    state.json, audit.log and audit.head (not gnupg/ or the lock). Keep it
    like the data folder: it holds the verifier and the custody key.
    """
    # Imported here: only the offline commands read a data folder.
    from app.backup import BackupError
    from app.backup import backup as copy_folder

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    try:
        copied = copy_folder(folder, dest)
    except BackupError as exc:
        raise Failure(str(exc), exit_code=USAGE if exc.usage else REFUSED) from None
    head = {"seq": copied.head.seq, "hash": copied.head.digest}
    if ctx.find_object(Options).json:
        click.echo(json.dumps({"dest": str(copied.dest), "audit_head": head, "attempts": copied.attempts}))
    else:
        click.echo(
            f"Backup of {folder} written to {copied.dest} and verified.\n"
            f"audit head: seq {head['seq']}, hash {head['hash']}\n"
            "Note this head with the copy: a restore from it rolls the registry back to this line."
        )
    ctx.exit(OK)
