"""What the operator hands to the CLI: a share or pad typed without echo, a PGP key file, the lead's token."""

from __future__ import annotations

import base64
import binascii
import os
import stat
import sys
from pathlib import Path

import click

from app.cli.failure import USAGE, Failure

__all__ = [
    "confirm",
    "read_key_file",
    "read_nonce",
    "read_pad",
    "read_share",
    "read_token",
    "stdin_is_terminal",
]

PROMPT = "Your share (hex or base64; it is not shown)"
NONCE_PROMPT = "The nonce the lead announced (it is not shown)"
PAD_PROMPT = "The one-time pad from 'generate-share start' (base64; it is not shown)"
TOKEN_ENV = "GENERATE_SHARE_TOKEN"  # noqa: S105 (a variable name)
#: Far above any share (65 bytes are 130 hex digits), spaces and line breaks included.
MAX_SHARE_CHARS = 4096
MAX_TOKEN_CHARS = 4096  # far above a real token (Vault's are under 100); a bound for a file read by mistake


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


def stdin_is_terminal() -> bool:
    """Tell whether a person at a terminal can answer a question."""
    return _stdin_is_terminal()


def _stdin_is_terminal() -> bool:
    """Tell whether standard input is a terminal a person types into."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_share(prompt: str = PROMPT, *, whole: bool = False) -> str:
    """Ask for a share without echo on a terminal, else read stdin: all of it when whole, else a line.

    whole is for a command that reads one share: base64 wrapped over lines is then read entire.
    """
    if _stdin_is_terminal():
        share = click.prompt(prompt, hide_input=True, err=True)
    else:
        share = sys.stdin.read(MAX_SHARE_CHARS + 1) if whole else sys.stdin.readline(MAX_SHARE_CHARS + 1)
        if len(share) > MAX_SHARE_CHARS:
            raise Failure(
                f"standard input holds more than {MAX_SHARE_CHARS} characters, far more than a share: "
                "pipe the share alone",
                exit_code=USAGE,
            )
    share = "".join(share.split())  # hex grouped by spaces, base64 wrapped over lines
    if not share:
        raise Failure(
            "no share was given: type it at the prompt or pipe it on standard input", exit_code=USAGE
        )
    return share


def read_nonce() -> str:
    """Ask for the ceremony's nonce without echo (token mode: a secret of the lead and the holders)."""
    nonce = click.prompt(NONCE_PROMPT, hide_input=True, err=True).strip()
    if not nonce:
        raise Failure("no nonce was given: type the one the lead announced, or pass --nonce", exit_code=USAGE)
    return nonce


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal without echo; anything but y or yes is no."""
    # Without echo, and the answer never repeated: a holder used to being asked
    # for the share straight away may paste it here.
    answer = click.prompt(
        f"{question} [y/N] (your answer is not shown, in case a share is pasted here by mistake)",
        hide_input=True,
        default="",
        show_default=False,
        err=True,
    )
    return answer.strip().lower() in ("y", "yes")


def read_pad(value: str) -> bytearray:
    """Return the pad given as base64, or read it ('-') without echo on a terminal, else from stdin."""
    if value == "-":
        value = (
            click.prompt(PAD_PROMPT, hide_input=True, err=True)
            if _stdin_is_terminal()
            else sys.stdin.readline()
        )
    text = "".join(value.split())
    if not text:
        raise Failure(
            "the pad is empty: paste the whole pad that 'generate-share start' printed", exit_code=USAGE
        )
    try:
        # bytearray: clearing it after use is best effort, Python may have copied it.
        return bytearray(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise Failure(
            "the pad is not valid base64; paste the whole pad that 'generate-share start' printed",
            exit_code=USAGE,
        ) from None


def read_token(token_file: str | None) -> str | None:
    """Return the lead's token from --token-file, else from $GENERATE_SHARE_TOKEN, else None.

    A file that group or others may read is refused, as ssh refuses such a key:
    whoever reads the token can cancel the ceremony and start one for their own key.
    """
    if token_file is not None:
        source = f"the token file {token_file}"
        try:
            with open(token_file, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise Failure(
                        f"{source} may be read or changed by group or others "
                        f"(mode {stat.S_IMODE(mode):04o}); make it private with: chmod 600 {token_file}",
                        exit_code=USAGE,
                    )
                raw = f.read(MAX_TOKEN_CHARS + 3)
        except OSError as exc:
            raise Failure(f"cannot read {source}: {exc.strerror or exc}", exit_code=USAGE) from None
        text = raw.decode("ascii", errors="replace")
        text = text.removesuffix("\n").removesuffix("\r")  # one trailing newline, as an editor leaves it
    else:
        source = f"${TOKEN_ENV}"
        env = os.environ.get(TOKEN_ENV)
        if env is None:
            return None
        text = env
    # The token is never repeated: it is a credential. A header cannot carry
    # spaces or control characters, and requests would quote it in its error.
    if not text:
        raise Failure(f"{source} is empty; it must hold the root token printed by init", exit_code=USAGE)
    if len(text) > MAX_TOKEN_CHARS or not all("!" <= c <= "~" for c in text):
        raise Failure(
            f"{source} does not hold a token: expected one line of printable ASCII without spaces, "
            f"at most {MAX_TOKEN_CHARS} characters",
            exit_code=USAGE,
        )
    return text
