"""generate-share: the operator's command line for a whole key ceremony.

Like ``vault operator generate-root``, it walks the key holders through an
attempt (start, status, update, cancel), initializes the service or adopts an
existing Vault share set (``adopt``), decodes an encrypted share with the
holder's own gpg, lets a holder check alone that their share is still good
(``verify``), and shows the registry with its custody column. It talks to the
server over HTTP only. Exit codes: 0 ok, 1 refused by the server (or by gpg,
or a share that ``verify`` finds not valid), 2 usage, 3 cannot reach the server.

A share given to this program is printed only where the contract says so: the
shares of ``init``, the new share when ``update`` completes, and the output of
``decode``. A share typed for ``adopt update`` or ``verify`` is never printed.
No share is ever logged or part of an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import click
import requests

__all__ = ["main"]

DEFAULT_ADDRESS = "http://127.0.0.1:8200"
ADDRESS_ENV = "GENERATE_SHARE_ADDR"
DATA_DIR_ENV = "GENERATE_SHARE_DATA_DIR"
DEFAULT_DATA_DIR = "./data"
TIMEOUT_SECONDS = 30

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3

ATTEMPT = "/v1/sys/generate-share/attempt"
UPDATE = "/v1/sys/generate-share/update"
INIT = "/v1/sys/init"
SHARES = "/v1/sys/shares"
VERIFY = "/v1/sys/shares/verify"
ADOPT = "/v1/sys/adopt/attempt"
ADOPT_UPDATE = "/v1/sys/adopt/update"


class Failure(click.ClickException):
    """A one-line-per-reason error with its exit code, shown without a traceback."""

    def __init__(self, *messages: str, exit_code: int = REFUSED) -> None:
        """Keep the messages (never a share) and the exit code."""
        super().__init__(" ".join(messages))
        self.messages = list(messages) or ["unknown error"]
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        """Print each message as one line on stderr."""
        for message in self.messages:
            click.echo(f"Error: {message}", file=file, err=file is None)


class _Fields(dict):
    """A JSON object of a reply: a missing field is one line of error, not a traceback."""

    def __missing__(self, key: str) -> NoReturn:
        """Refuse a reply that lacks a field this CLI needs."""
        raise Failure(f"the server's reply has no field {key!r}; is the address a generate-share server?")


@dataclass(frozen=True)
class Reply:
    """One successful HTTP reply: its status, raw text, and parsed JSON (or None)."""

    status: int
    text: str
    data: Any


class Client:
    """The server's HTTP API, with every failure turned into a Failure."""

    def __init__(self, address: str, ca_cert: str | None) -> None:
        """Remember the server's address and how to verify its TLS certificate."""
        self.address = address.rstrip("/")
        self.session = requests.Session()
        self.session.verify = ca_cert if ca_cert else True

    def call(
        self, method: str, path: str, body: dict | None = None, params: dict[str, str] | None = None
    ) -> Reply:
        """Send one request; return the reply or raise Failure (exit 1 or 3)."""
        url = self.address + path
        try:
            r = self.session.request(method, url, json=body, params=params, timeout=TIMEOUT_SECONDS)
        except requests.exceptions.InvalidURL as exc:  # also catches a bad port or host
            raise Failure(
                f"the address {self.address} is not a valid URL: {_reason(exc)}", exit_code=USAGE
            ) from None
        except requests.RequestException as exc:  # refused, DNS, TLS, timeout, broken reply
            raise Failure(
                f"cannot reach the server at {self.address}: {_reason(exc)}", exit_code=UNREACHABLE
            ) from None
        data = None
        if r.content:
            try:
                data = r.json(object_hook=_Fields)
            except ValueError:
                data = None
        if r.status_code >= 400:
            errors = data.get("errors") if isinstance(data, dict) else None
            if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
                raise Failure(*(" ".join(e.split()) for e in errors))
            raise Failure(f"the server at {self.address} answered HTTP {r.status_code} without an error list")
        if r.content and not isinstance(data, dict):
            raise Failure(
                f"the server at {self.address} answered HTTP {r.status_code} with a reply that is not "
                "a JSON object; is it a generate-share server?"
            )
        return Reply(status=r.status_code, text=r.text, data=data)


def _reason(exc: BaseException) -> str:
    """Return the root cause of a requests failure as one short line."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        chain.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    for candidate in reversed(chain):
        module = type(candidate).__module__
        if isinstance(candidate, OSError) and not module.startswith(("urllib3", "requests")):
            text = candidate.strerror or str(candidate) or type(candidate).__name__
            return " ".join(str(text).split())
    text = str(chain[-1]) or type(chain[-1]).__name__
    return " ".join(text.split())


@dataclass
class Options:
    """The global options every subcommand sees."""

    address: str
    ca_cert: str | None
    output: str

    @property
    def json(self) -> bool:
        """Tell whether the output is the server's JSON for scripts."""
        return self.output == "json"

    def client(self) -> Client:
        """Return an HTTP client for the configured server, closed when the command ends."""
        client = Client(self.address, self.ca_cert)
        click.get_current_context().call_on_close(client.session.close)
        return client


pass_options = click.make_pass_decorator(Options)


def _check_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an address that is not an http:// or https:// URL."""
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} must start with http:// or https://", ctx=ctx, param=param)
    return value


def _grouped(fingerprint: str) -> str:
    """Return a fingerprint in groups of four, as gpg --fingerprint shows it."""
    groups = [fingerprint[i : i + 4].upper() for i in range(0, len(fingerprint), 4)]
    if len(groups) == 10:
        return " ".join(groups[:5]) + "  " + " ".join(groups[5:])
    return " ".join(groups)


def _fingerprint_line(fingerprint: str) -> str:
    """Describe the attempt's PGP key for people who compare it out loud."""
    if not fingerprint:
        return "none (the new share will be returned unencrypted)"
    return f"{fingerprint}  ({_grouped(fingerprint)})"


def _progress(status: dict) -> str:
    """Return progress as '2 of 3 shares provided'."""
    return f"{status['progress']} of {status['required']} shares provided"


def _echo_json(reply: Reply) -> None:
    """Print the server's JSON reply as it came."""
    if reply.text.strip():
        click.echo(reply.text.strip())


def _read_key_file(path: str) -> str:
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


def _read_share() -> str:
    """Ask for a share without echo on a terminal, else read one line of stdin."""
    if _stdin_is_terminal():
        share = click.prompt("Your share (hex or base64; it is not shown)", hide_input=True, err=True)
    else:
        share = sys.stdin.readline()
    share = share.strip()
    if not share:
        raise Failure(
            "no share was given: type it at the prompt or pipe it on standard input", exit_code=USAGE
        )
    return share


def _fail_usage(message: str) -> NoReturn:
    """Stop with a usage error of one line."""
    raise Failure(message, exit_code=USAGE)


def _indices(value: str) -> list[int]:
    """Parse '17,90,201' into x coordinates, or stop with a usage error."""
    if not value.strip():
        return []
    entries = [entry.strip() for entry in value.split(",")]
    if not all(entry.isascii() and entry.isdigit() for entry in entries):
        _fail_usage(f"--known must list x coordinates separated by commas, such as 17,90,201, not {value!r}")
    return [int(entry) for entry in entries]


def _x_list(indices: list[int]) -> str:
    """Return x coordinates as '1, 2, 17'."""
    return ", ".join(str(x) for x in indices) if indices else "none"


def _custody(share: dict) -> str:
    """Describe whether a share's holder proved custody, and when last."""
    if not share["verifiable"]:
        return "not verifiable"
    return f"verified {share['verified_at']}" if share["verified_at"] else "never verified"


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
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints the server's JSON reply as is, for scripts.",
)
@click.pass_context
def cli(ctx: click.Context, address: str, ca_cert: str | None, output: str) -> None:
    """Walk a key ceremony: mint one new Shamir share with a quorum of holders.

    Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 cannot reach the server.
    """
    ctx.obj = Options(address=address, ca_cert=ca_cert, output=output)


@cli.command()
@pass_options
def status(options: Options) -> None:
    """Show the share generation attempt: started, progress, nonce, PGP fingerprint."""
    reply = options.client().call("GET", ATTEMPT)
    if options.json:
        _echo_json(reply)
        return
    s = reply.data
    click.echo(f"Started:         {'true' if s['started'] else 'false'}")
    click.echo(f"Progress:        {_progress(s)}")
    click.echo(f"Nonce:           {s['nonce'] or '-'}")
    click.echo(f"PGP fingerprint: {_fingerprint_line(s['pgp_fingerprint']) if s['started'] else '-'}")


@cli.command()
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
            _fail_usage("--pgp-keys must be a comma-separated list of files, with no empty entry")
        body["pgp_keys"] = [_read_key_file(p) for p in paths]
    if share_limit is not None:
        body["share_limit"] = share_limit
    reply = options.client().call("PUT", INIT, body)
    if options.json:
        _echo_json(reply)
        return
    result = reply.data
    fingerprints = result.get("pgp_fingerprints") or []
    if fingerprints:
        for i, (share, fp) in enumerate(zip(result["keys_base64"], fingerprints, strict=True), start=1):
            click.echo(f"Share {i} (encrypted to {fp}, base64): {share}")
    else:
        for i, share in enumerate(result["keys"], start=1):
            click.echo(f"Share {i}: {share}")
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


@cli.command()
@click.option(
    "--pgp-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The new holder's public key file (binary or armored); the new share is encrypted to it.",
)
@pass_options
def start(options: Options, pgp_key: str | None) -> None:
    """Start a share generation attempt, optionally for a PGP key."""
    body = {"pgp_key": _read_key_file(pgp_key)} if pgp_key else {}
    reply = options.client().call("PUT", ATTEMPT, body)
    if options.json:
        _echo_json(reply)
        return
    s = reply.data
    click.echo("Share generation attempt started.")
    click.echo(f"Nonce:           {s['nonce']}")
    click.echo(f"Progress:        {_progress(s)}")
    click.echo(f"PGP fingerprint: {_fingerprint_line(s['pgp_fingerprint'])}")
    if s["pgp_fingerprint"]:
        click.echo(
            "Compare this fingerprint out loud with the new holder's own "
            "(gpg --fingerprint) before anyone submits a share."
        )
    else:
        click.echo("Without --pgp-key, whoever submits the last share sees the new share in the clear.")


def _submit_share(
    options: Options, status_path: str, update_path: str, *, missing: str, describe
) -> dict | None:
    """Send the holder's share to the ceremony in progress; return its status once complete."""
    client = options.client()
    current = client.call("GET", status_path).data
    if not current["started"]:
        raise Failure(missing)  # before asking: nobody types a secret for nothing
    click.echo(describe(current), err=True)
    body = {"key": _read_share(), "nonce": current["nonce"]}
    reply = client.call("PUT", update_path, body)
    del body
    if options.json:
        _echo_json(reply)
        return None
    s = reply.data
    click.echo(f"Share accepted: {_progress(s)}.")
    if not s["complete"]:
        left = s["required"] - s["progress"]
        click.echo(f"Waiting for {left} more share{'s' if left != 1 else ''}.")
        return None
    return s


@cli.command()
@pass_options
def update(options: Options) -> None:
    """Submit your share to the attempt in progress (asked without echo)."""
    s = _submit_share(
        options,
        ATTEMPT,
        UPDATE,
        missing="no share generation attempt is in progress; start one with 'generate-share start'",
        describe=lambda c: (
            f"Attempt {c['nonce']}: {_progress(c)}; "
            f"new share encrypted to: {_fingerprint_line(c['pgp_fingerprint'])}"
        ),
    )
    if s is None:
        return
    if s["pgp_fingerprint"]:
        b64 = s["key_base64"]
        click.echo(f"The new share is issued, encrypted to the PGP key {s['pgp_fingerprint']}.")
        click.echo("Encrypted share (base64):")
        click.echo(b64)
        click.echo("Its holder decrypts it with:")
        click.echo(f"  generate-share decode --key-base64 {b64}")
        click.echo("or with gpg alone:")
        click.echo(f"  echo {b64} | base64 -d | gpg --decrypt | xxd -p -c 33")
    else:
        click.echo("The new share is issued and recorded in the registry.")
        click.echo(f"New share (hex):    {s['key']}")
        click.echo(f"New share (base64): {s['key_base64']}")
        click.echo(
            "WARNING: give it to its new holder now. It is shown only this once; "
            "the service does not keep it."
        )


@cli.command()
@pass_options
def cancel(options: Options) -> None:
    """Cancel the attempt in progress; every submitted share is forgotten."""
    reply = options.client().call("DELETE", ATTEMPT)
    if options.json:
        _echo_json(reply)
        return
    click.echo("Share generation attempt cancelled; every submitted share was discarded.")


@cli.command()
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Count only the custody checks since this RFC 3339 time, such as 2026-01-01T00:00:00Z.",
)
@pass_options
def shares(options: Options, since: str | None) -> None:
    """List every share ever issued: index, origin, time, custody, PGP fingerprint."""
    reply = options.client().call("GET", SHARES, params={"since": since} if since is not None else None)
    if options.json:
        _echo_json(reply)
        return
    registry = reply.data
    header = ("INDEX", "ORIGIN", "ISSUED AT", "CUSTODY", "PGP FINGERPRINT")
    rows = [header]
    rows += [
        (str(s["index"]), s["origin"], s["issued_at"], _custody(s), s["pgp_fingerprint"] or "-")
        for s in registry["shares"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    click.echo("")
    summary = (
        f"{registry['issued']} shares issued, threshold {registry['threshold']}; "
        f"{registry['verifiable']} verifiable, {registry['verified']} verified"
    )
    if since is not None:
        summary += f" since {registry['since'] or since}"
    click.echo(summary)


@cli.command("verify")
@click.pass_context
def verify_share(ctx: click.Context) -> None:
    """Check that the share you hold is the one the service issued (asked without echo).

    Exit 0 when it is, 1 when it is not (or the server refuses the share).
    """
    options = ctx.find_object(Options)
    client = options.client()
    body = {"key": _read_share()}
    reply = client.call("PUT", VERIFY, body)
    del body
    custody = reply.data
    if options.json:
        _echo_json(reply)
    elif custody["valid"]:
        click.echo(
            f"VALID: share x = {custody['index']} (origin {custody['origin']}, "
            f"issued {custody['issued_at']}, verified now at {custody['verified_at']})"
        )
    else:
        click.echo("NOT VALID: this is not the share the service issued at its x")
        click.echo(
            "Check that the whole share was copied (decrypted first, if it came encrypted); "
            "'generate-share shares' lists the x the service can verify."
        )
    ctx.exit(OK if custody["valid"] else REFUSED)


@cli.command()
@click.option("--key-base64", "key_base64", required=True, help="The encrypted share, base64.")
@click.option(
    "--gnupg-home",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The GnuPG home holding your secret key (gpg's default when omitted).",
)
@pass_options
def decode(options: Options, key_base64: str, gnupg_home: str | None) -> None:
    """Decrypt an encrypted share with your own gpg; print it in hex and base64."""
    try:
        message = base64.b64decode("".join(key_base64.split()), validate=True)
    except (binascii.Error, ValueError):
        _fail_usage("--key-base64 is not valid base64; copy the whole encrypted share")
    if not message:
        _fail_usage("--key-base64 is empty; copy the whole encrypted share")
    command = ["gpg", *(["--homedir", gnupg_home] if gnupg_home else []), "--quiet", "--decrypt"]
    try:
        completed = subprocess.run(command, input=message, capture_output=True, check=False)
    except FileNotFoundError:
        raise Failure("gpg is not installed; install it with 'apt-get install gnupg'") from None
    if completed.returncode != 0 or not completed.stdout:
        lines = [
            line.strip() for line in completed.stderr.decode(errors="replace").splitlines() if line.strip()
        ]
        reason = lines[-1] if lines else f"gpg exited with code {completed.returncode}"
        raise Failure(f"gpg could not decrypt the share: {reason}")
    share = completed.stdout
    if options.json:
        click.echo(json.dumps({"key": share.hex(), "key_base64": base64.b64encode(share).decode("ascii")}))
        return
    click.echo(f"Share (hex):    {share.hex()}")
    click.echo(f"Share (base64): {base64.b64encode(share).decode('ascii')}")


@cli.group("adopt")
def adopt_group() -> None:
    """Adopt an existing Vault share set, so that generate-share mints shares of its key."""


def _adoption_lines(s: dict) -> None:
    """Print an adoption's nonce, progress and threshold."""
    click.echo(f"Nonce:     {s['nonce'] or '-'}")
    click.echo(f"Progress:  {_progress(s) if s['started'] else '-'}")
    click.echo(f"Threshold: {s['secret_threshold'] if s['started'] else '-'}")


@adopt_group.command("start")
@click.option(
    "--threshold",
    "secret_threshold",
    type=int,
    required=True,
    help="How many shares rebuild the existing key (Vault's secret_threshold).",
)
@click.option(
    "--required",
    type=int,
    default=None,
    help="How many distinct shares will be brought (more than the threshold; default threshold + 1).",
)
@click.option(
    "--known",
    default=None,
    metavar="X,X,...",
    help="The x of every share that exists but whose holder will not take part, comma-separated.",
)
@click.option("--share-limit", type=int, default=None, help="The most shares that may ever exist.")
@pass_options
def adopt_start(
    options: Options,
    secret_threshold: int,
    required: int | None,
    known: str | None,
    share_limit: int | None,
) -> None:
    """Start adopting a share set split elsewhere (Vault, OpenBao)."""
    body: dict[str, Any] = {"secret_threshold": secret_threshold}
    if required is not None:
        body["required"] = required
    if known is not None:
        body["known_indices"] = _indices(known)
    if share_limit is not None:
        body["share_limit"] = share_limit
    reply = options.client().call("PUT", ADOPT, body)
    if options.json:
        _echo_json(reply)
        return
    s = reply.data
    click.echo("Adoption started.")
    _adoption_lines(s)
    if known is not None:
        click.echo(f"Known x:   {_x_list(body['known_indices'])} (recorded, not brought)")
    click.echo(
        f"Each of {s['required']} holders now runs 'generate-share adopt update'; the set is adopted "
        f"only if all {s['required']} shares lie on one polynomial of threshold {s['secret_threshold']}."
    )


@adopt_group.command("status")
@pass_options
def adopt_status(options: Options) -> None:
    """Show the adoption in progress: started, progress, threshold, nonce."""
    reply = options.client().call("GET", ADOPT)
    if options.json:
        _echo_json(reply)
        return
    s = reply.data
    click.echo(f"Started:   {'true' if s['started'] else 'false'}")
    _adoption_lines(s)


@adopt_group.command("update")
@pass_options
def adopt_update(options: Options) -> None:
    """Submit your existing share to the adoption in progress (asked without echo)."""
    s = _submit_share(
        options,
        ADOPT,
        ADOPT_UPDATE,
        missing="no adoption is in progress; start one with 'generate-share adopt start'",
        describe=lambda c: f"Adoption {c['nonce']}: {_progress(c)}, threshold {c['secret_threshold']}",
    )
    if s is None:
        return
    t = s["secret_threshold"]
    click.echo(f"The share set is adopted: its {s['required']} shares agree on one key of threshold {t}.")
    click.echo(f"Recorded as adopted: x = {_x_list(s['indices'])}")
    click.echo("Next: mint a replacement with 'generate-share start' and a quorum of updates.")
    click.echo("The service cannot ask your cluster whether this key is the right one, so:")
    click.echo(
        "LAST STEP: before relying on a share made here, unseal a test standby or a restored snapshot "
        f"with it and t-1 old shares ({t - 1} here)."
    )


@adopt_group.command("cancel")
@pass_options
def adopt_cancel(options: Options) -> None:
    """Cancel the adoption in progress; every submitted share is forgotten."""
    reply = options.client().call("DELETE", ADOPT)
    if options.json:
        _echo_json(reply)
        return
    click.echo("Adoption cancelled; every submitted share was discarded.")


@cli.group("audit")
def audit_group() -> None:
    """Check the data folder's audit trail."""


@audit_group.command("verify")
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@click.pass_context
def audit_verify(ctx: click.Context, data_dir: str | None) -> None:
    """Verify the audit trail of DATA_DIR (default: $GENERATE_SHARE_DATA_DIR or ./data)."""
    from app import audit

    folder = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    report = audit.verify(folder)
    if ctx.find_object(Options).json:
        click.echo(json.dumps({"ok": report.ok, "lines": report.lines, "message": report.message}))
    else:
        click.echo(report.message)
    ctx.exit(OK if report.ok else REFUSED)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the console script generate-share)."""
    cli.main(args=argv, prog_name="generate-share")
