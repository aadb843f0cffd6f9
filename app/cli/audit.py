"""audit verify and audit show: a data folder's audit trail, on the server's own disk (they only read).

``verify`` prints the trail's head (sequence number and hash), to compare
with the ``audit_head`` noted in a ceremony's minutes: a head that went back,
or a different hash at the same number, means the records were replaced.
``show`` prints the trail as a table for the people who read it. With the
audit key (``--key-file``, or ``$GENERATE_SHARE_AUDIT_KEY_FILE`` as the service
reads it), ``verify`` also checks each recorded head's anchor and says so;
``anchor`` anchors, once, records written before the key was set.
"""

from __future__ import annotations

import json
import os
from datetime import datetime

import click

from app.cli.failure import OK, REFUSED, USAGE, Failure
from app.cli.options import Options

__all__ = ["audit_group"]

DATA_DIR_ENV = "GENERATE_SHARE_DATA_DIR"
DEFAULT_DATA_DIR = "./data"


@click.group("audit")
def audit_group() -> None:
    """Check the data folder's audit trail."""


KEY_FILE = click.option(
    "--key-file",
    envvar="GENERATE_SHARE_AUDIT_KEY_FILE",
    default="",
    metavar="FILE",
    help="the audit key file the service anchors its heads with (default: $GENERATE_SHARE_AUDIT_KEY_FILE)",
)


def audit_key(key_file: str, folder: str):
    """Load the audit key named by --key-file (None without one); Failure says what is wrong."""
    from app.anchor import load_audit_key
    from app.errors import StartupError

    try:
        return load_audit_key(key_file, folder)
    except StartupError as exc:
        raise Failure(
            str(exc).replace("GENERATE_SHARE_AUDIT_KEY_FILE", "--key-file"), exit_code=USAGE
        ) from None


@audit_group.command("verify")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@KEY_FILE
@click.pass_context
def audit_verify(ctx: click.Context, data_dir: str | None, key_file: str) -> None:
    """Verify the audit trail of DATA_DIR (default: $GENERATE_SHARE_DATA_DIR or ./data) and print its head.

    The report names the anchor it checked: the audit key's id, or none.
    """
    # Imported here: only this command reads a data folder, the others speak HTTP.
    from app import reading

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    report = reading.verify(folder, audit_key(key_file, folder))
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


@audit_group.command("anchor")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@KEY_FILE
@click.pass_context
def audit_anchor(ctx: click.Context, data_dir: str | None, key_file: str) -> None:
    """Anchor the records of a stopped service's DATA_DIR under the audit key, once, after checking them.

    For records written before GENERATE_SHARE_AUDIT_KEY_FILE was set. The whole trail is checked as at
    a start first; note the head it prints in the minutes.
    """
    from app.errors import StartupError
    from app.records import Store

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    key = audit_key(key_file, folder)
    if key is None:
        raise Failure(
            "name the audit key file with --key-file or GENERATE_SHARE_AUDIT_KEY_FILE", exit_code=USAGE
        )
    try:
        store = Store.open(folder, audit_key=key, anchor_now=True)
    except StartupError as exc:
        raise Failure(str(exc)) from None
    head = store.head
    store.close()
    click.echo(f"audit trail anchored under the audit key {key.key_id}")
    click.echo(f"audit head: seq {head.seq}, hash {head.digest}")
    ctx.exit(OK)


# Fields every line carries, shown in their own columns or not at all.
_FRAME = frozenset({"seq", "time", "event", "client", "request_id", "prev", "format"})
# The fields a reader looks for first, in this order; the rest follow by name.
_FIRST = ("index", "indices", "progress", "required", "threshold", "shares", "count", "action", "reason")
_SUMMARY_WIDTH = 100


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Parse --since as an RFC 3339 time with a zone."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} is not an RFC 3339 time with a zone, such as 2026-11-26T13:00:00Z"
        )
    return when


def _events(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> frozenset[str]:
    """Refuse an event name the service never writes (a typo would otherwise show nothing)."""
    from app.notify import EVENTS

    unknown = sorted(set(value) - EVENTS)
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)} is not an event of the trail; use one of {', '.join(sorted(EVENTS))}"
        )
    return frozenset(value)


def _summary(event: dict) -> str:
    """Say in one short line what an event's own fields hold."""
    names = [k for k in _FIRST if k in event] + sorted(
        k for k in event if k not in _FRAME and k not in _FIRST
    )
    parts = []
    for name in names:
        value = event[name]
        if name == "count":  # coalesced refusals: how many, from when to when (one is just the line)
            if value == 1:
                continue
            span = (
                f" from {event['first']} to {event['last']}" if "first" in event and "last" in event else ""
            )
            parts.append(f"count={value}{span}")
            continue
        if name in ("first", "last") and "count" in event:
            continue
        if value in ("", None, []):  # no PGP key, no fingerprint: nothing to read
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"{name}={value}")
    text = " ".join(parts)
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 1] + "…"


def _table(rows: list[dict]) -> str:
    """Lay the events out in aligned columns."""
    head = ("SEQ", "TIME", "EVENT", "CLIENT", "SUMMARY")
    cells = [head] + [
        (
            str(e.get("seq", "")),
            str(e.get("time", "")),
            str(e.get("event", "")),
            str(e.get("client", "")),
            _summary(e),
        )
        for e in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in cells
    )


@audit_group.command("show")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@click.option("--event", "events", multiple=True, callback=_events, help="Show only this event (repeatable).")
@click.option("--since", callback=_since, help="Show only events at or after this RFC 3339 time.")
@click.pass_context
def audit_show(
    ctx: click.Context, data_dir: str | None, events: frozenset[str], since: datetime | None
) -> None:
    """Print the audit trail of DATA_DIR (default: $GENERATE_SHARE_DATA_DIR or ./data) as a table."""
    from pathlib import Path

    from app.audit import AUDIT_FILE, BrokenTrail, split_lines, walk
    from app.folder import SymlinkError, read_file
    from app.state import STATE_FILE

    folder = Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if not folder.is_dir():
        click.echo(
            f"Error: {folder} is not a folder (no such data folder): name the service's DATA_DIR", err=True
        )
        ctx.exit(USAGE)
    try:
        raw = read_file(folder, AUDIT_FILE)
        state = read_file(folder, STATE_FILE)
    except SymlinkError as exc:
        click.echo(f"Error: {exc}; audit show never follows a link", err=True)
        ctx.exit(REFUSED)
    except OSError as exc:
        click.echo(f"Error: cannot read {exc.filename or folder}: {exc.strerror}", err=True)
        ctx.exit(REFUSED)
    if raw is None and state is None:
        click.echo(
            f"Error: {folder} holds no records (no {STATE_FILE}, no {AUDIT_FILE}): "
            "name the service's DATA_DIR",
            err=True,
        )
        ctx.exit(USAGE)
    shown, broken = [], None
    try:
        # walk checks each line's number and link as it decodes it: what is shown is the chain.
        for _, event, _ in walk(split_lines(raw or b"")):
            if events and event.get("event") not in events:
                continue
            if since is not None and not _at_or_after(event.get("time"), since):
                continue
            shown.append(event)
    except BrokenTrail as exc:
        broken = str(exc)
    if ctx.find_object(Options).json:
        click.echo(json.dumps({"events": shown, "broken": broken}))
    else:
        click.echo(_table(shown))
    if broken:
        click.echo(
            f"Error: {broken}; the lines after it are not shown: run 'generate-share audit verify {folder}'",
            err=True,
        )
        ctx.exit(REFUSED)
    ctx.exit(OK)


def _at_or_after(stamp, since: datetime) -> bool:
    """Tell whether a line's time is at or after ``since``; a line without a readable time is kept."""
    try:
        return datetime.fromisoformat(stamp) >= since
    except (TypeError, ValueError):
        return True
