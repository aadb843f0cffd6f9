"""The generate-share command group: global options, every command attached, the console script."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from app.cli.adopt import adopt_group
from app.cli.audit import audit_group
from app.cli.ceremony import cancel, decode, init, start, status, update
from app.cli.custody import shares, verify_share
from app.cli.options import Options
from app.cli.token import token_group

__all__ = ["cli", "main"]

DEFAULT_ADDRESS = "http://127.0.0.1:8200"
ADDRESS_ENV = "GENERATE_SHARE_ADDR"


def _check_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an address that is not an http:// or https:// URL."""
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} must start with http:// or https://", ctx=ctx, param=param)
    return value


def _check_proxy(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a proxy that is not http(s)://HOST[:PORT], before any request is sent."""
    if value is None:
        return None
    # The value is not repeated: a proxy URL may carry a user name and password.
    expected = "must be an http:// or https:// URL such as http://HOST:PORT (SOCKS is not supported)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        raise click.BadParameter(expected, ctx=ctx, param=param) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in value)
    ):
        raise click.BadParameter(expected, ctx=ctx, param=param)
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--address",
    envvar=ADDRESS_ENV,
    default=DEFAULT_ADDRESS,
    show_default=True,
    callback=_check_address,
    help=f"The server's URL (or set {ADDRESS_ENV}).",
)
@click.option(
    "--ca-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A CA certificate (PEM) to verify the TLS proxy in front of the server.",
)
@click.option(
    "--proxy",
    default=None,
    metavar="URL",
    callback=_check_proxy,
    help="Reach the server through this HTTP proxy. HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY "
    "are ignored: without --proxy the CLI connects directly.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints the server's JSON reply as is, for scripts.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="A file (mode 600) holding the lead's root token, sent to start and cancel; "
    "or set GENERATE_SHARE_TOKEN.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    address: str,
    ca_cert: str | None,
    proxy: str | None,
    output: str,
    token_file: str | None,
) -> None:
    """Walk a key ceremony: mint one new Shamir share with a quorum of holders.

    Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 cannot reach the server.
    """
    ctx.obj = Options(address=address, ca_cert=ca_cert, output=output, proxy=proxy, token_file=token_file)


_COMMANDS = (status, init, start, update, cancel, shares, verify_share, decode, adopt_group, audit_group)
for _command in (*_COMMANDS, token_group):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the console script generate-share)."""
    cli.main(args=argv, prog_name="generate-share")
