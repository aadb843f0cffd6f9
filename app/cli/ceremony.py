"""The generate-share ceremony: init, start, status, update, cancel, and decode for the new holder."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from app import pgp
from app.cli.client import ADOPT, ATTEMPT, INIT, UPDATE
from app.cli.decrypt import gpg_decrypt
from app.cli.failure import USAGE, Failure, fail_usage
from app.cli.options import Options, cancel_ceremony, lead_call, pass_options
from app.cli.output import (
    HIDDEN_NONCE,
    echo_json,
    fingerprint_line,
    grouped,
    progress,
    root_token_lines,
    subkey_line,
)
from app.cli.prompts import read_key_file, read_pad, read_token
from app.cli.submit import nonce_option, submit_share
from app.encoding import otp_check as otp_check_of

__all__ = ["cancel", "decode", "init", "start", "status", "update"]


@click.command()
@pass_options
def status(options: Options) -> None:
    """Show the share generation attempt: started, progress, nonce (to the lead), PGP fingerprint."""
    reply = options.client().call("GET", ATTEMPT, token=read_token(options.token_file))
    if options.json:
        echo_json(reply)
        return
    s = reply.data
    click.echo(f"Started:         {'true' if s['started'] else 'false'}")
    click.echo(f"Progress:        {progress(s)}")
    click.echo(f"Nonce:           {s['nonce'] or (HIDDEN_NONCE if s['started'] else '-')}")
    masked = bool(s.get("otp_length"))
    click.echo(
        f"PGP fingerprint: {fingerprint_line(s['pgp_fingerprint'], masked=masked) if s['started'] else '-'}"
    )
    subkey = subkey_line(s) if s["started"] else None
    if subkey:
        click.echo(subkey)
    if s.get("otp_length"):
        click.echo(f"One-time pad:    {s['otp_length']} bytes, held by the lead (the new share is masked)")


@click.command()
@click.option("--shares", "secret_shares", type=int, required=True, help="How many shares to make.")
@click.option("--threshold", "secret_threshold", type=int, required=True, help="How many rebuild the key.")
@click.option(
    "--pgp-keys",
    default=None,
    metavar="FILE,FILE,...",
    help="One public key file per share (binary or armored), comma-separated; share i is encrypted to key i.",
)
@click.option("--share-limit", type=int, default=None, help="The most shares that may ever exist.")
@pass_options
def init(
    options: Options, secret_shares: int, secret_threshold: int, pgp_keys: str | None, share_limit: int | None
) -> None:
    """Create the master key and print its shares, to distribute at once."""
    body: dict[str, Any] = {"secret_shares": secret_shares, "secret_threshold": secret_threshold}
    if pgp_keys is not None:
        paths = [p.strip() for p in pgp_keys.split(",")]
        if not all(paths):
            fail_usage("--pgp-keys must be a comma-separated list of files, with no empty entry")
        body["pgp_keys"] = [read_key_file(p) for p in paths]
    if share_limit is not None:
        body["share_limit"] = share_limit
    reply = options.client().call("PUT", INIT, body)
    if options.json:
        echo_json(reply)
        return
    result = reply.data
    fingerprints = result.get("pgp_fingerprints") or []
    if fingerprints:
        for i, (share, fp) in enumerate(zip(result["keys_base64"], fingerprints, strict=True), start=1):
            click.echo(f"Share {i} (encrypted to {grouped(fp)}, base64): {share}")
    else:
        for i, share in enumerate(result["keys"], start=1):
            click.echo(f"Share {i} (x = {int(share[-2:], 16)}): {share}")  # hex: x is the last byte
    click.echo("")
    click.echo(
        f"{len(result['keys'])} shares made, threshold {secret_threshold}: "
        f"any {secret_threshold} of them rebuild the master key."
    )
    click.echo(
        "WARNING: distribute these shares now, one to each holder. They are shown only this once; "
        "the service does not keep them."
    )
    if fingerprints:
        click.echo("Each holder decrypts theirs with: generate-share decode --key-base64 <their share>")
    root_token_lines(result)


@click.command()
@click.option(
    "--pgp-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The new holder's public key file (binary or armored); the new share is encrypted to it.",
)
@pass_options
def start(options: Options, pgp_key: str | None) -> None:
    """Start a share generation attempt, optionally for a PGP key."""
    body = {"pgp_key": read_key_file(pgp_key)} if pgp_key else {}
    reply = lead_call(options, "PUT", ATTEMPT, body)
    if options.json:
        echo_json(reply)
        return
    s = reply.data
    click.echo("Share generation attempt started.")
    click.echo(f"Nonce:           {s['nonce']}")
    click.echo(f"Progress:        {progress(s)}")
    click.echo(f"PGP fingerprint: {fingerprint_line(s['pgp_fingerprint'], masked=bool(s.get('otp')))}")
    subkey = subkey_line(s)
    if subkey:
        click.echo(subkey)
    otp = s.get("otp")
    if otp:
        click.echo(f"One-time pad:    {otp}")
    click.echo("")
    click.echo("Announce the nonce to every holder; each gives their share with:")
    click.echo(f"  generate-share update --nonce {s['nonce']}")
    if s["pgp_fingerprint"]:
        click.echo(
            "Compare the fingerprint and the encryption subkey out loud with what the new holder's "
            "'gpg --fingerprint --with-subkey-fingerprints' shows, before anyone submits a share."
        )
    elif otp:
        click.echo(
            "Keep the one-time pad yourself, or give it to the new holder alone; it is shown only this "
            "once and the service does not keep it. The last update prints the new share masked with it, "
            "and only the pad unmasks it (asked without echo):"
        )
        click.echo("  generate-share decode --otp - --check <check> --key-base64 <masked share>")
    else:
        click.echo("Without --pgp-key, whoever submits the last share sees the new share in the clear.")


def _encrypted_to(status: dict) -> str:
    """Describe, before a share is asked for, the key and subkey the new share is encrypted to."""
    masked = bool(status.get("otp_length"))
    line = f"new share encrypted to: {fingerprint_line(status['pgp_fingerprint'], masked=masked)}"
    subkey = status.get("pgp_subkey_fingerprint")
    if isinstance(subkey, str) and subkey:
        line += f", subkey {grouped(subkey)}"
    return line


def _create_private(path: str) -> int:
    """Create path for the new share, readable by its owner only; never overwrite a file."""
    try:
        # O_EXCL: an existing file (a share written by an earlier attempt) is never replaced.
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise Failure(
            f"{path} already exists: name a new file for --output; nothing was sent", exit_code=USAGE
        ) from None
    except OSError as exc:
        raise Failure(
            f"cannot create {path}: {exc.strerror or exc}; nothing was sent", exit_code=USAGE
        ) from None


@click.command()
@nonce_option
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="If your share completes the attempt, also write the encrypted (or masked) new share to "
    "FILE (base64, mode 600; an existing file is never overwritten), for 'decode --key-file'.",
)
@pass_options
def update(options: Options, nonce: str | None, output_file: str | None) -> None:
    """Submit your share to the attempt in progress (asked without echo)."""
    fd = _create_private(output_file) if output_file is not None else None
    written = False
    unmask = ""  # how decode unmasks the written share, when it is masked

    def describe(c: dict) -> str:
        """Describe the attempt; refuse --output before the share is asked if the new share comes in clear."""
        if fd is not None and not (c["pgp_fingerprint"] or c.get("otp_length")):
            fail_usage(
                "--output writes only an encrypted or masked share, and this attempt returns the new "
                "share in clear (no PGP key, open mode); run update without --output. Nothing was sent."
            )
        return f"Attempt {c['nonce'] or 'in progress'}: {progress(c)}; {_encrypted_to(c)}"

    def keep(s: dict) -> None:
        """Write the new share, encrypted or masked, to the --output file before it is printed."""
        nonlocal written, unmask
        if fd is None or not s.get("complete"):
            return
        with os.fdopen(os.dup(fd), "w", encoding="ascii") as f:
            f.write(s["key_base64"] + "\n")
        written = True
        if s.get("otp_check"):
            unmask = f"--otp - --check {s['otp_check']} "

    try:
        done = submit_share(
            options,
            ATTEMPT,
            UPDATE,
            nonce=nonce,
            command="update",
            missing="no share generation attempt is in progress; start one with 'generate-share start'",
            describe=describe,
            keep=keep,
            elsewhere=(
                ADOPT,
                "an adoption is in progress, not a share generation attempt: give your existing share "
                "to it with 'generate-share adopt update --nonce NONCE'; nothing was sent",
            ),
            check="alone, with 'generate-share verify'",
        )
    finally:
        if fd is not None:
            os.close(fd)
            if not written:
                Path(output_file).unlink(missing_ok=True)  # only the empty file this command created
    if written and not options.json:
        click.echo(
            f"Written to {output_file} (mode 600): generate-share decode {unmask}--key-file {output_file}"
        )
    if done is None:
        return
    before, s = done
    if s["pgp_fingerprint"]:
        b64 = s["key_base64"]
        click.echo(f"The new share is issued, encrypted to the PGP key {grouped(s['pgp_fingerprint'])}.")
        click.echo("Encrypted share (base64):")
        click.echo(b64)
        click.echo("Its holder decrypts it with:")
        click.echo(f"  generate-share decode --key-base64 {b64}")
        click.echo("or with gpg alone:")
        click.echo(f"  echo {b64} | base64 -d | gpg --decrypt | xxd -p -c 33")
    elif s.get("otp_length") or before.get("otp_length"):
        b64 = s["key_base64"]
        click.echo(
            "The new share is issued, masked with the lead's one-time pad: without the pad it is useless."
        )
        click.echo(f"Masked share (base64): {b64}")
        check = s.get("otp_check") or ""
        if check:
            click.echo(f"Check:                 {check}")
        click.echo(
            "The lead unmasks it with the pad that 'generate-share start' printed (asked without echo); "
            "the check tells a wrong pad from the right one:"
        )
        click.echo(f"  generate-share decode --otp - --check {check or 'CHECK'} --key-base64 {b64}")
    else:
        click.echo("The new share is issued and recorded in the registry.")
        click.echo(f"New share (hex):    {s['key']}")
        click.echo(f"New share (base64): {s['key_base64']}")
        click.echo(
            "WARNING: give it to its new holder now. It is shown only this once; "
            "the service does not keep it."
        )


@click.command()
@pass_options
def cancel(options: Options) -> None:
    """Cancel the attempt in progress; every submitted share is forgotten."""
    cancel_ceremony(options, ATTEMPT, "share generation attempt")


@click.command()
@click.option(
    "--key-base64",
    "key_base64",
    default=None,
    metavar="B64",
    help="The encrypted (or masked) share, base64; '-' reads it from stdin.",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="A file holding the encrypted (or masked) share: base64, as 'update --output' writes it, "
    "or an OpenPGP message (binary or armored).",
)
@click.option(
    "--otp",
    default=None,
    metavar="-",
    help="Unmask a share with the one-time pad 'generate-share start' printed, instead of gpg: "
    "'--otp -' asks for the pad without echo (or reads it from stdin), keeping it out of the "
    "shell's history; a pad on the command line is refused.",
)
@click.option(
    "--check",
    "otp_check",
    default=None,
    metavar="HEX",
    help="With --otp: the check printed beside the masked share; a wrong pad is refused, "
    "never unmasked into a wrong share.",
)
@click.option(
    "--gnupg-home",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The GnuPG home holding your secret key (gpg's default when omitted). With a passphrase, "
    "export GPG_TTY=$(tty) first so that gpg can ask for it.",
)
@pass_options
def decode(
    options: Options,
    key_base64: str | None,
    key_file: str | None,
    otp: str | None,
    otp_check: str | None,
    gnupg_home: str | None,
) -> None:
    """Decrypt a share with your own gpg, or unmask it with the pad; print it in hex and base64."""
    if otp is not None and otp != "-":
        # The value is not repeated: it may be the pad.
        fail_usage(
            "--otp takes '-' only: the pad is then asked without echo (or read from standard input), "
            "which keeps it out of the shell's history and the process list; nothing was unmasked"
        )
    if otp_check is not None and otp is None:
        fail_usage("--check goes with --otp: a PGP-encrypted share is checked by gpg itself")
    if otp is not None and gnupg_home is not None:
        fail_usage("--otp unmasks a share that was not PGP-encrypted; --gnupg-home is for one that was")
    if (key_base64 is None) == (key_file is None):
        fail_usage("give the share once: --key-base64 B64, --key-base64 - (stdin), or --key-file FILE")
    if key_base64 == "-" and otp == "-":
        fail_usage("--key-base64 - and --otp - cannot both read stdin: put the share in a --key-file")
    if otp is not None and not otp_check:
        fail_usage(
            "--otp needs --check HEX, printed beside the masked share by the update that completed "
            "the attempt: without it a wrong pad would unmask to a wrong share that looks right"
        )
    message = _read_message(key_base64, key_file, pgp=otp is None)
    if otp is not None:
        _print_share(options, _unmask(message, read_pad(otp), otp_check))
        return
    # gpg --decrypt also "decrypts" a plain literal-data packet or a passphrase
    # message: a sender could make a holder print and adopt a share of their choosing.
    try:
        pgp.require_encrypted_message(message)
    except pgp.PGPError as exc:
        fail_usage(
            f"{'--key-file' if key_file else '--key-base64'} does not hold a share encrypted to your key. "
            f"{exc} A share masked with a one-time pad (no --pgp-key in token mode) is unmasked with "
            "--otp instead."
        )
    _print_share(options, gpg_decrypt(message, gnupg_home))


def _read_message(key_base64: str | None, key_file: str | None, *, pgp: bool) -> bytes:
    """Return the encrypted (or masked) share from --key-base64, stdin or --key-file."""
    if key_file is not None:
        source = key_file
        try:
            data = Path(key_file).read_bytes()
        except OSError as exc:
            raise Failure(f"cannot read {key_file}: {exc.strerror or exc}", exit_code=USAGE) from None
    elif key_base64 == "-":
        source = "standard input"
        stdin = getattr(sys.stdin, "buffer", None)
        data = stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8", errors="replace")
    else:
        source = "--key-base64"
        data = key_base64.encode("utf-8", errors="replace")
    if not data.strip():
        fail_usage(f"{source} is empty; copy the whole encrypted share")
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        # A file or stdin may also hold the OpenPGP message itself, binary or armored.
        if pgp and source != "--key-base64":
            return data
        fail_usage(f"{source} is not valid base64; copy the whole encrypted share")


def _unmask(masked: bytes, pad: bytearray, check: str) -> bytes:
    """Return the masked share XOR the pad, refusing a pad of another length or one the check refutes."""
    try:
        if len(pad) != len(masked):
            fail_usage(
                f"the pad is {len(pad)} bytes but the masked share is {len(masked)}: they must be the "
                "same length. Use the pad that 'generate-share start' printed for this attempt, "
                "and the whole share."
            )
        given = check.strip().lower().encode("utf-8", errors="replace")
        if not hmac.compare_digest(otp_check_of(pad, masked).encode("ascii"), given):
            raise Failure(
                "the pad, the masked share and --check do not belong together, so nothing was "
                "unmasked: use the pad that 'generate-share start' printed for this attempt, and "
                "the masked share and check that its last update printed, each copied whole"
            )
        return bytes(m ^ p for m, p in zip(masked, pad, strict=True))
    finally:
        pad[:] = bytes(len(pad))  # best effort: Python may hold other copies


def _print_share(options: Options, share: bytes) -> None:
    """Print a share in hex and base64 (or as JSON for scripts)."""
    if options.json:
        b64 = base64.b64encode(share).decode("ascii")
        click.echo(json.dumps({"key": share.hex(), "key_base64": b64, "index": share[-1] if share else None}))
        return
    click.echo(f"Share (hex):    {share.hex()}")
    click.echo(f"Share (base64): {base64.b64encode(share).decode('ascii')}")
    if share:
        click.echo(f"Share x:        {share[-1]} (its last byte; 'generate-share shares' lists it)")
