"""The global options every command sees, and the client they configure."""

from __future__ import annotations

from dataclasses import dataclass

import click

from app.cli.client import Client
from app.cli.failure import Failure
from app.cli.output import echo_json
from app.cli.prompts import TOKEN_ENV, read_token

__all__ = ["Options", "lead_call", "pass_options"]


@dataclass
class Options:
    """The global options every subcommand sees."""

    address: str
    ca_cert: str | None
    output: str
    proxy: str | None = None
    token_file: str | None = None

    @property
    def json(self) -> bool:
        """Tell whether the output is the server's JSON for scripts."""
        return self.output == "json"

    def client(self) -> Client:
        """Return an HTTP client for the configured server, closed when the command ends."""
        client = Client(self.address, self.ca_cert, self.proxy)
        click.get_current_context().call_on_close(client.close)
        return client


pass_options = click.make_pass_decorator(Options)


def lead_call(options: Options, method: str, path: str, body: dict | None = None):
    """Send a request only the ceremony lead may make, with the lead's token when one is given."""
    token = read_token(options.token_file)
    try:
        return options.client().call(method, path, body, token=token)
    except Failure as exc:
        no_token_kept = any("has no operator token" in m for m in exc.messages)
        if exc.status == 403 and token is None and not no_token_kept:
            # One line in CLI terms, in place of the server's, which names HTTP headers.
            raise Failure(
                "permission denied: only the ceremony lead may do this, with the root token that "
                "'generate-share init' (or 'generate-share adopt start') printed: "
                f"set {TOKEN_ENV} or pass --token-file FILE",
                status=exc.status,
            ) from None
        raise


def cancel_ceremony(options: Options, path: str, what: str, voided: str | None = None) -> None:
    """Cancel the ceremony at path (lead only), saying so only if one was in progress.

    voided, if given, is said after a cancel in token mode (what the cancel made void).
    """
    read_token(options.token_file)  # a malformed token is refused before any request
    client = options.client()
    client.health()  # a Vault or OpenBao at this address is refused before anything else
    # The server answers 204 whether or not a ceremony was running: ask first, so that
    # nobody is told shares were discarded when there were none.
    if not client.call("GET", path).data["started"]:
        if not options.json:
            click.echo(f"No {what} was in progress; nothing was cancelled.")
        return
    reply = lead_call(options, "DELETE", path)
    if options.json:
        echo_json(reply)
        return
    click.echo(f"{what[0].upper()}{what[1:]} cancelled; every submitted share was discarded.")
    if voided and client.token_mode():
        click.echo(voided)
