"""What the HTTP API promises beyond its schemas: the words its refusals are written in.

``Refusal`` (one way a request is refused, with a request that provokes it)
and ``Operation`` (what a view takes and gives), the states a documented
refusal is given in, the example values, and the errors every operation
answers alike (``ERROR_TEXT``, ``SHARED_REFUSALS``). Each view's own entry is
in app/api/operations.py. Declarative data for app/api/openapi.py, which
builds the OpenAPI document (and so docs/openapi.json and docs/API.md);
tests/test_openapi.py sends every documented request to the app and checks
the reply carries the documented sentence word for word, so the examples in
the reference cannot go stale.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "CROSS_SITE_ORIGIN",
    "ERROR_TEXT",
    "EXAMPLE_NONCE",
    "EXAMPLE_SNAPSHOT",
    "GIVENS",
    "RATE_LIMIT_EXAMPLE",
    "SHARED_REFUSALS",
    "Operation",
    "Refusal",
    "example_snapshot",
]

# Placeholders in the documented requests and sentences, which
# tests/test_openapi.py replaces with the real values when it replays them.
EXAMPLE_NONCE = "2dbd10f1-8528-6246-09e7-82b25b8aba63"  # the nonce of the attempt in progress

# The state of the service before a documented refusal; the test sets each up.
BEFORE_INIT = "before init"
AFTER_INIT = "after init (3 of 5)"
FULL = "after init with share_limit 2 and 2 shares"
ATTEMPT = "while an attempt is in progress"
ATTEMPT_ONE = "after one share (<share 0>) was submitted to the attempt"
ATTEMPT_TWO = "after two shares (<share 0>, <share 1>) were submitted to the attempt"
ADOPTION = "while an adoption (threshold 2, required 3) is in progress"
ADOPTION_TWO = "after two shares (<share 0>, <share 1>) were submitted to the adoption"
UNCHECKED_ONE = (
    "after adopting <share 0> to <share 2> of a 2-of-5 set with the x of <share 4> known (so the "
    "service holds no digest at that x), and <share 0> submitted to an attempt"
)
SNAPSHOT_ONE = "after one share (<share 0>) was submitted to an adoption with EXAMPLE_SNAPSHOT (2 of 3)"
GIVENS = (
    BEFORE_INIT,
    AFTER_INIT,
    FULL,
    ATTEMPT,
    ATTEMPT_ONE,
    ATTEMPT_TWO,
    ADOPTION,
    ADOPTION_TWO,
    UNCHECKED_ONE,
    SNAPSHOT_ONE,
)
#: The x a documented sentence names where it depends on the share sent (the test puts the real one).
EXAMPLE_X = "x = 7;"


def example_snapshot(meta: bytes = b'{"Index": 29, "Term": 3}') -> dict:
    """The snapshot field of a made-up 2-of-3 cluster whose sealed sums no key here opens."""
    sums = f"{hashlib.sha256(meta).hexdigest()}  meta.json\n{'0' * 64}  state.bin\n".encode()
    sealed = b"\x0a\x40" + bytes(range(64))  # BlobInfo field 1: a nonce, a ciphertext, a tag
    return {
        "seal_config": {"type": "shamir", "secret_shares": 3, "secret_threshold": 2},
        "meta": base64.b64encode(meta).decode(),
        "sha256sums": base64.b64encode(sums).decode(),
        "sealed": base64.b64encode(sealed).decode(),
    }


EXAMPLE_SNAPSHOT = example_snapshot()


@dataclass(frozen=True)
class Refusal:
    """One way an operation refuses a request, with a request that provokes it.

    ``sentence`` is one of the reply's errors word for word; tests/test_openapi.py
    sends ``body`` (a str is sent as raw bytes; "<share N>" is share N of the
    set ``given`` made) in the state ``given`` and checks the reply carries it.
    """

    when: str
    sentence: str
    body: object = None
    given: str = AFTER_INIT
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 400


@dataclass(frozen=True)
class Operation:
    """What one view takes and gives, beyond what its route says.

    Schemas are named (classes of ``app.api.schemas``), so that a renamed
    schema breaks this document and its test, not the import of the app.
    """

    reply: str | dict | None  # a schema name, an inline JSON Schema, or None: 204 with no body
    request: str | None = None
    query: str | None = None
    body_required: bool = False
    refusals: tuple[Refusal, ...] = ()
    description: str = ""
    links: Mapping[str, Mapping] = field(default_factory=dict)
    #: Other media types of the success reply than application/json, with their schema.
    other_media: Mapping[str, Mapping] = field(default_factory=dict)


CROSS_SITE_ORIGIN = "https://elsewhere.example"  # the page a 403 example names
# The GENERATE_SHARE_RATE_LIMIT the 429 example names: two writes meet it at once, whatever the pace.
RATE_LIMIT_EXAMPLE = "1/minute"

ERROR_TEXT = {
    400: "The caller can fix the request: bad JSON, a wrong type or value, or a call that does "
    "not fit the current state. Nothing was changed.",
    403: "The request came from a browser page of another site. Nothing was changed.",
    404: "No such path (the answer to any unknown path under the prefix).",
    405: "The path does not take this method; the Allow header lists those it takes.",
    413: "The request body is larger than the configured limit (GENERATE_SHARE_MAX_CONTENT_LENGTH).",
    429: "The client sent more writes than GENERATE_SHARE_RATE_LIMIT allows (20 a second by default; "
    "reads are never limited). Nothing was changed; Retry-After says in how many seconds to send again.",
    500: "A fault of the server itself; the detail is in the server log.",
    503: "The server could not do its part (disk, gpg); nothing was changed or issued.",
}

#: One example each for the errors every operation may answer alike.
SHARED_REFUSALS = {
    404: Refusal(
        "an unknown path, here GET /v1/sys/no-such-path",
        "no such path: /v1/sys/no-such-path; the service answers under /v1/sys/ (init, "
        "generate-share/attempt, generate-share/update, adopt/attempt, adopt/update, shares, "
        "shares/verify, health, metrics, openapi.json)",
        status=404,
    ),
    413: Refusal(
        "a body over 64 KiB, the default limit",
        "the request body is larger than the limit of 65536 bytes; send a smaller JSON object",
        body=" " * (64 * 1024 + 1),
        status=413,
    ),
    429: Refusal(
        f"a client's second write within a minute, when GENERATE_SHARE_RATE_LIMIT is {RATE_LIMIT_EXAMPLE}",
        f"too many writes from this client (the limit is {RATE_LIMIT_EXAMPLE}); nothing was changed: "
        "wait for the seconds Retry-After says, then send again",
        status=429,
    ),
    500: Refusal(
        "a bug or a broken environment",
        "internal server error; the detail is in the server log",
        status=500,
    ),
    503: Refusal(
        "the data folder's disk is full",
        "the server could not record the change (No space left on device); nothing was changed or "
        "issued: retry once the server's disk is fixed",
        status=503,
    ),
}
