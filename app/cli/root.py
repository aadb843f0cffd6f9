"""The generate-share command group: global options, every command attached, the console script.

The global options (``--address``, ``--ca-cert``, ``--proxy``, ``--format``,
``--token-file``) are accepted before the command, as click expects, and after
it, as Vault users type them (``generate-share status --format json``): every
command and subgroup carries a copy that overrides the group's value only when
it was given on the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from app.cli.adopt import adopt_group
from app.cli.audit import audit_group
from app.cli.backup import backup
from app.cli.ceremony import cancel, decode, init, start, status, update
from app.cli.custody import shares, verify_share
from app.cli.failure import INTERRUPTED, Failure
from app.cli.inspect import inspect_share
from app.cli.options import Options
from app.cli.snapshot import snapshot_group
from app.cli.token import token_group

__all__ = ["GLOBAL_OPTIONS", "cli", "main"]

DEFAULT_ADDRESS = "http://127.0.0.1:8200"
ADDRESS_ENV = "GENERATE_SHARE_ADDR"
CACERT_ENV = "GENERATE_SHARE_CACERT"
FORMAT_ENV = "GENERATE_SHARE_FORMAT"
PACKAGE = "generate-share"


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an address that is not an http:// or https:// URL."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} must start with http:// or https://", ctx=ctx, param=param)
    if value is not None and urlsplit(value).path.rstrip("/").endswith("/v1"):
        # Every request path starts with /v1 already: VAULT_ADDR has no /v1 either.
        base = value.rstrip("/").removesuffix("/v1")
        raise click.BadParameter(
            f"{value!r} ends in /v1, which the CLI adds itself: give the server's address without it, {base}",
            ctx=ctx,
            param=param,
        )
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


# (declarations, Options attribute, settings shared by both copies, settings of the group's copy only)
_SHARED: tuple[tuple[tuple[str, ...], str, dict[str, Any], dict[str, Any]], ...] = (
    (
        ("--address",),
        "address",
        {"callback": _check_address, "metavar": "URL", "help": f"The server's URL (or set {ADDRESS_ENV})."},
        {"envvar": ADDRESS_ENV, "default": DEFAULT_ADDRESS, "show_default": True},
    ),
    (
        ("--ca-cert",),
        "ca_cert",
        {
            "type": click.Path(exists=True, dir_okay=False),
            "metavar": "FILE",
            "help": f"A CA certificate (PEM) to verify the server's or its TLS proxy's certificate (or set "
            f"{CACERT_ENV}). REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE are not read.",
        },
        {"envvar": CACERT_ENV, "default": None},
    ),
    (
        ("--proxy",),
        "proxy",
        {
            "metavar": "URL",
            "callback": _check_proxy,
            "help": "Reach the server through this HTTP proxy. HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and "
            "NO_PROXY are ignored: without --proxy the CLI connects directly.",
        },
        {"default": None},
    ),
    (
        ("--format", "output"),
        "output",
        {
            "type": click.Choice(["text", "json"]),
            "help": f"json prints the server's JSON reply as is, for scripts, and errors as "
            f'{{"errors": [...]}} on stderr (or set {FORMAT_ENV}).',
        },
        {"envvar": FORMAT_ENV, "default": "text", "show_default": True},
    ),
    (
        ("--token-file",),
        "token_file",
        {
            "type": click.Path(dir_okay=False),
            "metavar": "FILE",
            "help": "A file (mode 600) holding the lead's root token, sent to start and cancel; "
            "or set GENERATE_SHARE_TOKEN.",
        },
        {"default": None},
    ),
)
GLOBAL_OPTIONS = tuple(decls[0] for decls, *_ in _SHARED)


def _override(attribute: str, check: Callable | None) -> Callable:
    """Return a callback that sets an Options field when the option is given after a command."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        """Check the value, then let it win over the group's when it came from the command line."""
        if check is not None:
            value = check(ctx, param, value)
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            return
        options = ctx.find_object(Options)
        if options is not None:  # None only under --help, where nothing runs
            setattr(options, attribute, value)

    return callback


def _command_copies() -> list[click.Option]:
    """Return fresh copies of the global options for one command: no default, no environment."""
    copies = []
    for decls, attribute, shared, _ in _SHARED:
        settings = {**shared, "callback": _override(attribute, shared.get("callback"))}
        copies.append(click.Option(list(decls), expose_value=False, default=None, **settings))
    return copies


def _share_global_options(command: click.Command) -> None:
    """Give a command, and every command of a subgroup, its own copy of the global options."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", ())}
    command.params.extend(p for p in _command_copies() if not taken.intersection(p.opts))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _share_global_options(sub)


class _JsonErrors(Failure):
    """An error shown as Vault's {"errors": [...]} on stderr, with the exit code it had as text."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the errors as one JSON object on stderr."""
        click.echo(json.dumps({"errors": self.messages}), file=file, err=file is None)


def _errors_as_json(exc: click.ClickException) -> _JsonErrors:
    """Return the exception to show under --format json, with the same messages and exit code."""
    messages = exc.messages if isinstance(exc, Failure) else [exc.format_message()]
    return _JsonErrors(*messages, exit_code=exc.exit_code, status=getattr(exc, "status", None))


_JSON_WANTED = "generate_share.json_wanted"


def _json_wanted(args: list[str]) -> bool:
    """Tell whether a command line (else GENERATE_SHARE_FORMAT) asks for JSON; the last --format wins."""
    wanted = os.environ.get(FORMAT_ENV) == "json"
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--format" and i + 1 < len(args):
            wanted = args[i + 1] == "json"
        elif arg.startswith("--format="):
            wanted = arg == "--format=json"
    return wanted


class _Group(click.Group):
    """The root group: shares its options with every command; JSON errors; exit 130 on Ctrl-C."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Attach a command (or a subgroup and all its commands) with the global options."""
        _share_global_options(cmd)
        super().add_command(cmd, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the group's own line; show its usage errors as JSON when JSON was asked for."""
        wanted = ctx.meta[_JSON_WANTED] = _json_wanted(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            # Options does not exist yet: read the line (and the environment) as click would.
            if wanted:
                raise _errors_as_json(exc) from None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; show its error as JSON under --format json; exit 130 when interrupted."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            # Ctrl-C (or end of input) at a prompt or mid-request: no traceback, no "Aborted!",
            # and nothing typed is repeated; 130 is what a shell reports for SIGINT.
            raise click.exceptions.Exit(INTERRUPTED) from None
        except click.ClickException as exc:
            # A command's usage error comes before its own --format is applied: read the line too.
            options = ctx.find_object(Options)
            if (options is not None and options.json) or ctx.meta.get(_JSON_WANTED):
                raise _errors_as_json(exc) from None
            raise


def _group_option(decls: tuple[str, ...], shared: dict[str, Any], own: dict[str, Any]) -> Callable:
    """Return the group's decorator for one global option."""
    return click.option(*decls, **shared, **own)


def _global_options(function: Callable) -> Callable:
    """Decorate the group with the global options, defaults and environment included."""
    for decls, _, shared, own in reversed(_SHARED):
        function = _group_option(decls, shared, own)(function)
    return function


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=PACKAGE, prog_name=PACKAGE, message="%(prog)s %(version)s")
@_global_options
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

    The options below are also accepted after the command, as in
    'generate-share status --format json'.

    Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 cannot reach the server, 130 interrupted.
    """
    ctx.obj = Options(address=address, ca_cert=ca_cert, output=output, proxy=proxy, token_file=token_file)


_COMMANDS = (status, init, start, update, cancel, shares, verify_share, decode, adopt_group, audit_group)
for _command in (*_COMMANDS, token_group, backup, inspect_share, snapshot_group):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the console script generate-share)."""
    cli.main(args=argv, prog_name="generate-share")
