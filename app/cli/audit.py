"""audit verify: check a data folder's audit trail on the server's own disk (it only reads)."""

from __future__ import annotations

import json
import os

import click

from app.cli.failure import OK, REFUSED
from app.cli.options import Options

__all__ = ["audit_group"]

DATA_DIR_ENV = "GENERATE_SHARE_DATA_DIR"
DEFAULT_DATA_DIR = "./data"


@click.group("audit")
def audit_group() -> None:
    """Check the data folder's audit trail."""


@audit_group.command("verify")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@click.pass_context
def audit_verify(ctx: click.Context, data_dir: str | None) -> None:
    """Verify the audit trail of DATA_DIR (default: $GENERATE_SHARE_DATA_DIR or ./data)."""
    # Imported here: only this command reads a data folder, the others speak HTTP.
    from app import records

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    report = records.verify(folder)
    if ctx.find_object(Options).json:
        click.echo(json.dumps({"ok": report.ok, "lines": report.lines, "message": report.message}))
    else:
        click.echo(report.message)
    ctx.exit(OK if report.ok else REFUSED)
