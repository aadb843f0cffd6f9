"""How the CLI shows what the server said: fingerprints, progress, custody, JSON as is."""

from __future__ import annotations

import click

from app.cli.client import Reply

__all__ = [
    "custody",
    "echo_json",
    "fingerprint_line",
    "grouped",
    "progress",
    "root_token_lines",
    "subkey_line",
    "x_list",
]


#: What a holder without the lead's token sees for the nonce of a ceremony in token mode.
HIDDEN_NONCE = "not shown without the operator token: use the nonce the lead announced"


def grouped(fingerprint: str) -> str:
    """Return a fingerprint in groups of four, as gpg --fingerprint shows it."""
    groups = [fingerprint[i : i + 4].upper() for i in range(0, len(fingerprint), 4)]
    if len(groups) == 10:
        return " ".join(groups[:5]) + "  " + " ".join(groups[5:])
    return " ".join(groups)


def fingerprint_line(fingerprint: str, *, masked: bool = False) -> str:
    """Describe the attempt's PGP key for people who compare it out loud."""
    if not fingerprint and masked:
        return "none (the new share will be returned masked with the lead's one-time pad)"
    if not fingerprint:
        return "none (the new share will be returned unencrypted)"
    return grouped(fingerprint)  # as gpg --fingerprint shows it, to be compared out loud


def subkey_line(status: dict) -> str | None:
    """Return the 'Encryption subkey:' line when the reply names the subkey, else None."""
    # Older servers do not send the field; an attempt without PGP sends none or null.
    subkey = status.get("pgp_subkey_fingerprint")
    if not isinstance(subkey, str) or not subkey:
        return None
    return f"Encryption subkey: {grouped(subkey)}"


def progress(status: dict) -> str:
    """Return progress as '2 of 3 shares provided'."""
    return f"{status['progress']} of {status['required']} shares provided"


def echo_json(reply: Reply) -> None:
    """Print the server's JSON reply as it came."""
    if reply.text.strip():
        click.echo(reply.text.strip())


def x_list(indices: list[int]) -> str:
    """Return x coordinates as '1, 2, 17'."""
    return ", ".join(str(x) for x in indices) if indices else "none"


def custody(share: dict) -> str:
    """Describe whether a share's holder proved custody, and when last."""
    if not share["verifiable"]:
        return "not verifiable"
    return f"verified {share['verified_at']}" if share["verified_at"] else "never verified"


def root_token_lines(reply: dict) -> None:
    """Print the root token a token-mode server returned, once, with what to do with it."""
    token = reply.get("root_token")
    if not token:
        return  # open mode: there is no lead's token
    click.echo("")
    click.echo(f"Root token: {token}")
    # Lines a terminal of 80 columns shows whole: this is read once, carefully.
    click.echo(
        "Keep it as you would a Vault root token: the ceremony lead needs it to start\n"
        "and cancel ceremonies, and to see the nonce again (export GENERATE_SHARE_TOKEN,\n"
        "or --token-file FILE with mode 600). It is shown only this once; the service\n"
        "keeps only its hash. A lost token is replaced, with the service stopped, by:\n"
        "  generate-share token reset DATA_DIR"
    )
