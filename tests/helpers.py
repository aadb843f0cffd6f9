"""Small assertions shared by the HTTP tests, and a reader of raw HTTP replies."""

import base64
import socket

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


def read_http_reply(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Read one whole Content-Length framed reply: its status, headers (lower-case names) and body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"closed before a reply; read {buf[:100]!r}"
        buf += data
    head, body = buf.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        data = sock.recv(65536)
        assert data, "closed inside a body"
        body += data
    return int(status_line.split()[1]), headers, body[:length]
