"""audit verify: check a data folder's audit trail on the server's own disk (it only reads).

It prints the trail's head (sequence number and hash), to compare with the
``audit_head`` noted in a ceremony's minutes: a head that went back, or a
different hash at the same number, means the records were replaced.
"""

from __future__ import annotations

import json
import os

import click

from app.cli.failure import OK, REFUSED, USAGE
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
    """Verify the audit trail of DATA_DIR (default: $GENERATE_SHARE_DATA_DIR or ./data) and print its head."""
    # Imported here: only this command reads a data folder, the others speak HTTP.
    from app import records

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    report = records.verify(folder)
    if not report.found:
        # A wrong path must never pass for an intact trail.
        click.echo(f"Error: {report.message}", err=True)
        ctx.exit(USAGE)
    if ctx.find_object(Options).json:
        head = {"seq": report.head.seq, "hash": report.head.digest} if report.head else None
        doc = {"ok": report.ok, "lines": report.lines, "message": report.message, "audit_head": head}
        click.echo(json.dumps(doc))
    else:
        click.echo(report.message)
    ctx.exit(OK if report.ok else REFUSED)
