"""The CLI's exit codes and its one error type, shown as one line per reason."""

from __future__ import annotations

from typing import IO, Any, NoReturn

import click

__all__ = ["INTERRUPTED", "OK", "REFUSED", "UNREACHABLE", "USAGE", "Failure", "fail_usage"]

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class Failure(click.ClickException):
    """A one-line-per-reason error with its exit code, shown without a traceback."""

    def __init__(self, *messages: str, exit_code: int = REFUSED, status: int | None = None) -> None:
        """Keep the messages (never a share or a token), the exit code and the server's HTTP status."""
        super().__init__(" ".join(messages))
        self.messages = list(messages) or ["unknown error"]
        self.exit_code = exit_code
        self.status = status  # the HTTP status when the server refused, else None

    def show(self, file: IO[Any] | None = None) -> None:
        """Print each message as one line on stderr."""
        for message in self.messages:
            click.echo(f"Error: {message}", file=file, err=file is None)


def fail_usage(message: str) -> NoReturn:
    """Stop with a usage error of one line."""
    raise Failure(message, exit_code=USAGE)
