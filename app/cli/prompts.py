"""What the operator hands to the CLI: a share typed without echo, a PGP key file."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import click

from app.cli.failure import USAGE, Failure

__all__ = ["read_key_file", "read_share"]

PROMPT = "Your share (hex or base64; it is not shown)"


def read_key_file(path: str) -> str:
    """Read a PGP public key file (binary or armored) and return it base64-encoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Failure(
            f"cannot read the PGP key file {path}: {exc.strerror or exc}", exit_code=USAGE
        ) from None
    if not data.strip():
        raise Failure(f"the PGP key file {path} is empty", exit_code=USAGE)
    return base64.b64encode(data).decode("ascii")


def _stdin_is_terminal() -> bool:
    """Tell whether standard input is a terminal a person types into."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_share() -> str:
    """Ask for a share without echo on a terminal, else read one line of stdin."""
    if _stdin_is_terminal():
        share = click.prompt(PROMPT, hide_input=True, err=True)
    else:
        share = sys.stdin.readline()
    share = share.strip()
    if not share:
        raise Failure(
            "no share was given: type it at the prompt or pipe it on standard input", exit_code=USAGE
        )
    return share
