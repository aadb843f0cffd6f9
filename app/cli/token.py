"""token reset: replace a lost operator token, offline, on the server's own disk."""

from __future__ import annotations

import json

import click

from app.cli.audit import KEY_FILE, audit_key
from app.cli.failure import OK, Failure
from app.cli.options import Options

__all__ = ["token_group"]


@click.group("token")
def token_group() -> None:
    """Manage the operator token (GENERATE_SHARE_CEREMONY_AUTH=token)."""


@token_group.command("reset")
@click.argument("data_dir", type=click.Path(file_okay=False))
@KEY_FILE
@click.pass_context
def token_reset(ctx: click.Context, data_dir: str, key_file: str) -> None:
    """Replace the operator token of DATA_DIR while the service is stopped; print the new one once.

    The old token stops working; the trail records root_token_reset.
    """
    # Imported here: only this command and audit verify read a data folder.
    from app.errors import StartupError
    from app.token import reset_token

    try:
        token = reset_token(data_dir, audit_key(key_file, data_dir))
    except StartupError as exc:
        raise Failure(str(exc)) from None
    if ctx.find_object(Options).json:
        click.echo(json.dumps({"root_token": token}))
    else:
        click.echo(
            "The operator token was replaced; the old one no longer works. The new token, shown "
            "this once (only its hash is kept):\n\n"
            f"    {token}\n\n"
            "Give it to the ceremony lead (GENERATE_SHARE_TOKEN, or a file for --token-file)."
        )
    ctx.exit(OK)
