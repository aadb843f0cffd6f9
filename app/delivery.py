"""One webhook delivery: the body a trail line becomes, its signature, and the reply read to a bound.

app/notify.py decides what is sent when; this module makes each POST's body
(the line's own fields, byte for byte, plus ``audit_head``), signs it as
GitHub signs its webhooks, and reads what the receiver answers: to
``MAX_REPLY`` bytes at most, its body within ``DELIVERY_SECONDS``. Only the
status counts; a receiver that answers with a huge or endless body costs the
worker nothing. It imports nothing from Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
import urllib3

from .audit import line_hash

__all__ = ["DELIVERY_SECONDS", "MAX_REPLY", "SIGNATURE_HEADER", "payload", "read_reply", "sign"]

log = logging.getLogger("app.notify")

#: Field names that would carry key material. The trail never holds them;
#: a body never will either, even if a future event were to.
_FORBIDDEN = frozenset(
    {"key", "keys", "keys_base64", "key_base64", "share", "shares", "otp", "pad", "token", "root_token"}
)
SIGNATURE_HEADER = "X-Generate-Share-Signature"
#: Bytes of a receiver's reply read at most (the status is what counts).
MAX_REPLY = 4096
#: Seconds a delivery may spend reading its reply's body.
DELIVERY_SECONDS = 10.0


def sign(secret: bytes, body: bytes) -> str:
    """Return the signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def payload(line: bytes) -> tuple[dict, bytes]:
    """Return one trail line's notification: the event and its exact body bytes."""
    doc = json.loads(line)
    for name in _FORBIDDEN & doc.keys():
        # Text under such a name could be key material. The events the service
        # writes hold none (``shares`` in ``init`` is a count); a guard for future ones.
        if isinstance(doc[name], (str, list, dict)):
            log.error("notify: dropped field %r from event %s", name, doc.get("event"))
            del doc[name]
    doc["audit_head"] = {"seq": doc.get("seq"), "hash": line_hash(line)}
    return doc, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def read_reply(reply: requests.Response) -> None:
    """Read a reply's body to MAX_REPLY bytes within DELIVERY_SECONDS, then let the connection go.

    A body that ends by then is read whole, so the connection goes back to
    the pool; anything longer or slower is dropped with the connection.
    """
    deadline = time.monotonic() + DELIVERY_SECONDS
    read = 0
    try:
        while read <= MAX_REPLY and time.monotonic() < deadline:
            chunk = reply.raw.read(1024, decode_content=False)
            if not chunk:
                reply.raw.release_conn()  # the whole body was read: the connection can be reused
                return
            read += len(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # a broken or stalled body
        reply.close()
        raise requests.ConnectionError(type(exc).__name__) from None
    reply.close()  # too long or too slow: the rest goes with the connection
