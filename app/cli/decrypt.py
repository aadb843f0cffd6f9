"""Decrypt a share with the holder's own gpg, and say in a sentence why it could not.

gpg's last line on failure is often "decryption failed: No secret key" even
when the key is there and only its passphrase could not be asked (no
``GPG_TTY``, so pinentry has no terminal). gpg's machine-readable status lines
(``--status-fd``) carry the real reason: the error code of ``pkdecrypt_failed``,
``BAD_PASSPHRASE``, ``NO_SECKEY``; this module turns them into sentences.
"""

from __future__ import annotations

import subprocess

from app.cli.failure import Failure

__all__ = ["gpg_decrypt", "reason"]

STATUS = "[GNUPG:] "

# libgpg-error codes (the low 16 bits of the number gpg prints).
_BAD_PASSPHRASE = 11
_NO_SECKEY = 17
_NO_PIN_ENTRY = (83, 85, 86)  # PIN_ENTRY (pinentry failed), NO_PIN_ENTRY, BAD_PIN_METHOD
_CANCELED = (99, 198)  # CANCELED, FULLY_CANCELED
_NOT_A_TTY = 32870  # GPG_ERR_ENOTTY: pinentry-curses found no terminal
_TIMEOUT = 62

ASK_GPG_TTY = (
    "pinentry could not ask for your key's passphrase (it found no terminal): "
    "run 'export GPG_TTY=$(tty)' in this terminal and try again."
)


def gpg_decrypt(message: bytes, gnupg_home: str | None) -> bytes:
    """Return the plaintext of message decrypted by gpg, or raise Failure with gpg's real reason."""
    command = [
        "gpg",
        *(["--homedir", gnupg_home] if gnupg_home else []),
        "--status-fd",
        "2",  # status lines go to stderr, among gpg's own messages; stdout is the share alone
        "--decrypt",
    ]
    try:
        completed = subprocess.run(command, input=message, capture_output=True, check=False)
    except FileNotFoundError:
        raise Failure("gpg is not installed; install it with 'apt-get install gnupg'") from None
    if completed.returncode != 0 or not completed.stdout:
        text = completed.stderr.decode(errors="replace")
        raise Failure(f"gpg could not decrypt the share: {reason(text, completed.returncode, gnupg_home)}")
    return completed.stdout


def reason(stderr: str, returncode: int, gnupg_home: str | None) -> str:
    """Return one sentence for why gpg failed, from its status lines, else its last message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    status = [line[len(STATUS) :].split() for line in lines if line.startswith(STATUS)]
    keywords = {words[0] for words in status if words}
    codes = {
        int(words[2]) & 0xFFFF
        for words in status
        if len(words) >= 3 and words[0] == "ERROR" and words[1] == "pkdecrypt_failed" and words[2].isdigit()
    }
    recipients = [words[1] for words in status if len(words) >= 2 and words[0] == "ENC_TO"]
    if _BAD_PASSPHRASE in codes or "BAD_PASSPHRASE" in keywords:
        return "the passphrase of your secret key was wrong."
    if codes & {*_CANCELED}:
        return "the passphrase prompt was cancelled."
    if codes & {*_NO_PIN_ENTRY, _NOT_A_TTY} or "MISSING_PASSPHRASE" in keywords:
        return ASK_GPG_TTY
    if _TIMEOUT in codes:
        return "the passphrase prompt timed out; try again and answer it."
    if "NO_SECKEY" in keywords or _NO_SECKEY in codes:
        where = gnupg_home or "gpg's default home (~/.gnupg)"
        to = f" (it is encrypted to the key ID {', '.join(recipients)})" if recipients else ""
        return f"no secret key in {where} can decrypt it{to}; use --gnupg-home for another home."
    messages = [line for line in lines if not line.startswith(STATUS)]
    if messages:
        return messages[-1].removeprefix("gpg: ")
    return f"gpg exited with code {returncode}"
