"""The global options every command sees, and the client they configure."""

from __future__ import annotations

from dataclasses import dataclass

import click

from app.cli.client import Client

__all__ = ["Options", "pass_options"]


@dataclass
class Options:
    """The global options every subcommand sees."""

    address: str
    ca_cert: str | None
    output: str
    proxy: str | None = None

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
