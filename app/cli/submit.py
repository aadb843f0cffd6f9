"""Send a holder's share to whichever ceremony (generate-share or adoption) is in progress."""

from __future__ import annotations

from collections.abc import Callable

import click

from app.cli.client import Client
from app.cli.failure import Failure, fail_usage
from app.cli.options import Options
from app.cli.output import echo_json, progress
from app.cli.prompts import confirm, read_nonce, read_share, stdin_is_terminal

__all__ = ["nonce_option", "submit_share"]

nonce_option = click.option(
    "--nonce",
    default=None,
    metavar="NONCE",
    help="The nonce the lead announced; the share is accepted only by that attempt. "
    "Without it, a terminal asks for it (token mode: it is a secret, not shown) or to confirm "
    "the attempt shown (open mode).",
)


def _pinned_nonce(client: Client, current: dict, nonce: str | None, command: str) -> str:
    """Return the nonce to send: the holder's own, or (open mode) the server's once the holder confirmed it.

    In token mode the nonce is a secret of the lead and the holders, which
    the server shows nobody else: it comes from --nonce or is typed without
    echo, and the server alone compares it.
    """
    if client.token_mode():
        if nonce is not None:
            return nonce
        if stdin_is_terminal():
            return read_nonce()
        fail_usage(
            f"without a terminal to type it, pass the nonce the lead announced: "
            f"generate-share {command} --nonce NONCE"
        )
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
    return current["nonce"]  # open mode: the seed's behaviour, the server's own nonce


_CHECK = "each holder should check their share"


def _point_elsewhere(client: Client, elsewhere: tuple[str, str] | None) -> None:
    """Stop with the other command when the other ceremony is the one in progress."""
    if elsewhere is None:
        return
    path, sentence = elsewhere
    try:
        running = client.call("GET", path).data["started"]
    except Failure:
        return  # the first refusal is the one to show
    if running:
        raise Failure(sentence)


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
    elsewhere: tuple[str, str] | None = None,
    check: str | None = None,
) -> tuple[dict, dict] | None:
    """Send the holder's share to the ceremony in progress; return (status before, reply) once complete.

    keep, if given, sees the reply before anything is printed (update --output saves the new share).
    elsewhere, if given, is the other ceremony's status path and what to say when it is the one running.
    check, if given, says how a holder checks their share when the quorum's shares fail.
    """
    client = options.client()
    client.health()  # a share goes only to a generate-share server
    try:
        current = client.call("GET", status_path).data
    except Failure as exc:
        # Not initialized: an adoption may be what runs.
        if exc.status == 400:
            _point_elsewhere(client, elsewhere)
        raise
    if not current["started"]:
        _point_elsewhere(client, elsewhere)
        raise Failure(missing)  # before asking: nobody types a secret for nothing
    click.echo(describe(current), err=True)
    body = {"nonce": _pinned_nonce(client, current, nonce, command)}
    body["key"] = read_share(whole=True)
    try:
        reply = client.call("PUT", update_path, body)
    except Failure as exc:
        if check is not None:
            # The server says "check their share"; name the tool that does it.
            exc.messages = [m.replace(_CHECK, f"{_CHECK} ({check})") for m in exc.messages]
        raise
    finally:
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
