"""Small assertions shared by the HTTP tests."""

import base64

from app import shamir


def assert_error(response, status: int, fragment: str = "") -> str:
    """Check Vault's error shape and status; return the joined messages."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"errors"}
    assert body["errors"] and all(isinstance(e, str) and e for e in body["errors"])
    text = " ".join(body["errors"])
    assert fragment in text, text
    return text


def same_key(new_share_hex: str, old_shares_hex: list[str], threshold: int) -> bool:
    """Tell whether a new share rebuilds the key with threshold-1 old ones."""
    old = [bytes.fromhex(s) for s in old_shares_hex]
    expected = shamir.combine(old[:threshold])
    return shamir.combine([bytes.fromhex(new_share_hex), *old[: threshold - 1]]) == expected


def unmask(share_hex: str, otp: str | None) -> str:
    """Return a new share as hex, XORed with the start's one-time pad when there is one (token mode)."""
    if not otp:
        return share_hex
    pad = base64.b64decode(otp)
    return bytes(a ^ b for a, b in zip(bytes.fromhex(share_hex), pad, strict=True)).hex()
