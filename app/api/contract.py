"""What the HTTP API promises beyond its schemas: each operation's refusals, and what each field means.

Declarative data for app/api/openapi.py, which builds the OpenAPI document
(and so docs/openapi.json and docs/API.md) from it. Every refusal names a
request that provokes it, and tests/test_openapi.py sends each one to the app
and checks the reply carries the documented sentence word for word, so the
examples in the reference cannot go stale.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "CROSS_SITE_ORIGIN",
    "ERROR_TEXT",
    "EXAMPLE_NONCE",
    "EXAMPLE_SNAPSHOT",
    "GIVENS",
    "OPERATIONS",
    "RATE_LIMIT_EXAMPLE",
    "SHARED_REFUSALS",
    "Operation",
    "Refusal",
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


def _example_snapshot(meta: bytes = b'{"Index": 29, "Term": 3}') -> dict:
    """The snapshot field of a made-up 2-of-3 cluster whose sealed sums no key here opens."""
    sums = f"{hashlib.sha256(meta).hexdigest()}  meta.json\n{'0' * 64}  state.bin\n".encode()
    sealed = b"\x0a\x40" + bytes(range(64))  # BlobInfo field 1: a nonce, a ciphertext, a tag
    return {
        "seal_config": {"type": "shamir", "secret_shares": 3, "secret_threshold": 2},
        "meta": base64.b64encode(meta).decode(),
        "sha256sums": base64.b64encode(sums).decode(),
        "sealed": base64.b64encode(sealed).decode(),
    }


EXAMPLE_SNAPSHOT = _example_snapshot()


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


def _metric(field_name: str, kind: str, text: str) -> dict:
    """Return the JSON Schema of one entry of Vault's JSON metrics."""
    return {
        "type": "object",
        "required": ["Name", field_name, "Labels"],
        "properties": {
            "Name": {"type": "string", "description": "the metric's name, as Prometheus shows it"},
            field_name: {"type": kind, "description": text},
            "Labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "the metric's labels: class (1xx to 5xx) for the request counter",
            },
        },
    }


# OpenAPI links between the ceremony's steps, for readers and for
# schemathesis's stateful tests: init hands out shares, an attempt hands out
# the nonce, and every update reply carries the nonce on to the next update.
_INIT_LINKS = {
    "StartAttempt": {"operationId": "start_attempt_put"},
    "SubmitFirstShare": {"operationId": "update_put", "requestBody": {"key": "$response.body#/keys/0"}},
    "SubmitSecondShare": {"operationId": "update_put", "requestBody": {"key": "$response.body#/keys/1"}},
    "VerifyCustody": {"operationId": "verify_custody_put", "requestBody": {"key": "$response.body#/keys/0"}},
}
_NONCE_LINKS = {
    "SubmitShareWithNonce": {"operationId": "update_put", "requestBody": {"nonce": "$response.body#/nonce"}},
    "ReadAttempt": {"operationId": "read_attempt_get"},
    "CancelAttempt": {"operationId": "cancel_attempt_delete"},
}
_ADOPTION_LINKS = {
    "AdoptShareWithNonce": {
        "operationId": "adopt_update_put",
        "requestBody": {"nonce": "$response.body#/nonce"},
    },
    "ReadAdoption": {"operationId": "read_adoption_get"},
    "CancelAdoption": {"operationId": "cancel_adoption_delete"},
}

# Refusals that several operations share.
_NOT_JSON = Refusal(
    "the body is not JSON",
    'the request body is not valid JSON; send a JSON object such as {"key": "..."}',
    body="{not json",
)
_NOT_INITIALIZED = Refusal(
    "before init",
    "the service is not initialized; initialize it first with PUT /v1/sys/init",
    given=BEFORE_INIT,
)
_ALREADY_INITIALIZED = "the service is already initialized; nothing was changed"
_SHORT_KEY = "key has 4 hex digits; expected a share of 33 bytes (66 hex digits or 44 base64 characters)"
_SHARE_0 = {"key": "<share 0>"}
_ANY_SHARE = {"key": "01" * 33}
CROSS_SITE_ORIGIN = "https://elsewhere.example"  # the page a 403 example names
# The GENERATE_SHARE_RATE_LIMIT the 429 example names: two writes meet it at once, whatever the pace.
RATE_LIMIT_EXAMPLE = "1/minute"

#: Every view, by "<blueprint>.<function>"; a view missing here is still
#: documented, as a reply of any JSON object, and a test fails until it is added.
OPERATIONS: dict[str, Operation] = {
    "init.read_init": Operation(reply="InitStatusReply"),
    "init.initialize": Operation(
        reply="InitReply",
        request="InitRequest",
        body_required=True,
        refusals=(
            _NOT_JSON,
            Refusal(
                "secret_shares is missing",
                "secret_shares is required: the number of shares to create, from 2 to 255",
                body={"secret_threshold": 3},
                given=BEFORE_INIT,
            ),
            Refusal(
                "secret_threshold is 1",
                "secret_threshold must be from 2 to 255: with a threshold of 1 every share is the key "
                "itself, so there would be no shares to regenerate",
                body={"secret_shares": 3, "secret_threshold": 1},
                given=BEFORE_INIT,
            ),
            Refusal(
                "secret_threshold exceeds secret_shares",
                "secret_threshold (4) must not exceed secret_shares (3)",
                body={"secret_shares": 3, "secret_threshold": 4},
                given=BEFORE_INIT,
            ),
            Refusal(
                "pgp_keys does not have one key per share",
                "pgp_keys has 1 entries; it must have exactly secret_shares (3), one PGP key per share",
                body={"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["AAAA"]},
                given=BEFORE_INIT,
            ),
            Refusal(
                "an entry of pgp_keys is not an OpenPGP public key",
                "pgp_keys[0]: The data is not OpenPGP data; send one public key as exported by gpg --export.",
                body={"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["AAAA", "AAAA"]},
                given=BEFORE_INIT,
            ),
            Refusal(
                "the service is already initialized",
                _ALREADY_INITIALIZED,
                body={"secret_shares": 3, "secret_threshold": 2},
            ),
            Refusal(
                "an adoption is in progress",
                "an adoption is in progress; finish it, or cancel it with DELETE "
                "/v1/sys/adopt/attempt, first",
                body={"secret_shares": 3, "secret_threshold": 2},
                given=ADOPTION,
            ),
        ),
        links=_INIT_LINKS,
    ),
    "generate_share.read_attempt": Operation(
        reply="StatusReply", refusals=(_NOT_INITIALIZED,), links=_NONCE_LINKS
    ),
    "generate_share.start_attempt": Operation(
        reply="StatusReply",
        request="AttemptRequest",
        refusals=(
            _NOT_JSON,
            _NOT_INITIALIZED,
            Refusal(
                "another attempt is in progress",
                "share generation already in progress; cancel it with DELETE "
                "/v1/sys/generate-share/attempt before starting another",
                given=ATTEMPT,
            ),
            Refusal(
                "pgp_key is not base64",
                "pgp_key must be a base64-encoded OpenPGP public key (the binary key file, or an "
                "ASCII-armored one, encoded with `base64 -w0`)",
                body={"pgp_key": "not base64!"},
            ),
            Refusal(
                "pgp_key is not one public key able to encrypt",
                "pgp_key: The data is not OpenPGP data; send one public key as exported by gpg --export.",
                body={"pgp_key": "AAAA"},
            ),
            Refusal(
                "no further share may be issued",
                "the share limit of 2 was reached (2 shares issued), so no further share can be "
                "generated; the limit was fixed at init and cannot be raised",
                given=FULL,
            ),
        ),
        links=_NONCE_LINKS,
    ),
    "generate_share.cancel_attempt": Operation(
        reply=None, description="204 also when no attempt was in progress."
    ),
    "generate_share.update": Operation(
        reply="StatusReply",
        request="UpdateRequest",
        body_required=True,
        description="At the threshold the reply has complete = true and key / key_base64 = the new "
        "share, or the OpenPGP message that encrypts it.",
        refusals=(
            _NOT_JSON,
            Refusal("key is missing", "key is required: one existing share, as hex or base64", body={}),
            Refusal(
                "no attempt is in progress",
                "no share generation attempt is in progress; start one with PUT "
                "/v1/sys/generate-share/attempt",
                body=_SHARE_0,
            ),
            Refusal(
                "the nonce is not the attempt's (or is missing where GENERATE_SHARE_REQUIRE_NONCE is set)",
                f"nonce does not match the attempt in progress; the current nonce is {EXAMPLE_NONCE}",
                body={"key": "<share 0>", "nonce": "0f0e0d0c-0000-4000-8000-000000000000"},
                given=ATTEMPT,
            ),
            Refusal(
                "the share does not decode to the key's length",
                _SHORT_KEY,
                body={"key": "abcd"},
                given=ATTEMPT,
            ),
            Refusal(
                "the same share was already submitted",
                "this share was already submitted in this attempt; each of the required shares must "
                "come from a different holder",
                body=_SHARE_0,
                given=ATTEMPT_ONE,
            ),
            Refusal(
                "the share is not the one recorded at its x (it counts nothing, spends nobody's share)",
                "this share is not the one the service recorded at x = 7; it was not counted and no "
                "holder's share was spent: check that you copied your whole share (PUT "
                "/v1/sys/shares/verify checks it alone) and send it again",
                body={"key": "<share 2, altered>"},
                given=ATTEMPT_TWO,
            ),
            Refusal(
                "the quorum's shares do not rebuild the master key (only with a share taken unchecked, "
                "at an x without a custody digest; progress returns to 0)",
                "the submitted shares did not reconstruct the master key; progress was reset to 0: "
                "each holder should check their share and submit it again",
                body={"key": "<share 4, altered>"},
                given=UNCHECKED_ONE,
            ),
        ),
        links={"SubmitNextShare": _NONCE_LINKS["SubmitShareWithNonce"]},
    ),
    "adopt.read_adoption": Operation(reply="AdoptionStatusReply"),
    "adopt.start_adoption": Operation(
        reply="AdoptionStatusReply",
        request="AdoptRequest",
        body_required=True,
        refusals=(
            _NOT_JSON,
            Refusal(
                "secret_threshold is missing",
                "secret_threshold is required: how many shares rebuild the existing key",
                body={},
                given=BEFORE_INIT,
            ),
            Refusal(
                "required does not exceed secret_threshold",
                "required (3) must exceed secret_threshold (3): one share more than the threshold is "
                "what lets the service catch a wrong one",
                body={"secret_threshold": 3, "required": 3},
                given=BEFORE_INIT,
            ),
            Refusal(
                "secret_threshold disagrees with the snapshot's seal config",
                "secret_threshold is 3, but the snapshot's seal config says 2: the threshold comes from "
                "the snapshot; leave secret_threshold out, or check that the snapshot is of this cluster",
                body={"secret_threshold": 3, "snapshot": EXAMPLE_SNAPSHOT},
                given=BEFORE_INIT,
            ),
            Refusal(
                "the snapshot's meta.json is not the one its SHA256SUMS lists",
                "snapshot: meta.json does not match its SHA-256 in SHA256SUMS: the snapshot was altered",
                body={"snapshot": {**EXAMPLE_SNAPSHOT, "meta": _example_snapshot(b"{}")["meta"]}},
                given=BEFORE_INIT,
            ),
            Refusal(
                "known_indices lists an x twice",
                "known_indices must not list the same x twice",
                body={"secret_threshold": 2, "known_indices": [7, 7]},
                given=BEFORE_INIT,
            ),
            Refusal("the service is already initialized", _ALREADY_INITIALIZED, body={"secret_threshold": 2}),
            Refusal(
                "another adoption is in progress",
                "an adoption is already in progress; cancel it with DELETE /v1/sys/adopt/attempt "
                "before starting another",
                body={"secret_threshold": 2},
                given=ADOPTION,
            ),
        ),
        links=_ADOPTION_LINKS,
    ),
    "adopt.cancel_adoption": Operation(reply=None, description="204 also when no adoption was in progress."),
    "adopt.adopt_update": Operation(
        reply="AdoptionStatusReply",
        request="UpdateRequest",
        body_required=True,
        description="When `required` shares are in and lie on one polynomial (and, when the adoption "
        "was started with a snapshot, their key opens it), the service is initialized with the "
        "existing key: the reply has complete = true and the adopted x in indices. No share and no "
        "key is returned or stored.",
        refusals=(
            _NOT_JSON,
            Refusal(
                "no adoption is in progress",
                "no adoption is in progress; start one with PUT /v1/sys/adopt/attempt",
                body=_ANY_SHARE,
                given=BEFORE_INIT,
            ),
            Refusal(
                "the share's last byte (its x) is 0",
                "key ends in the byte 0, but a share's last byte is its x, from 1 to 255; check that "
                "the whole share was copied",
                body={"key": "01" * 32 + "00"},
                given=ADOPTION,
            ),
            Refusal(
                "the shares do not lie on one polynomial of the threshold (progress returns to 0)",
                "the 3 shares are not consistent: they do not lie on one polynomial of threshold 2, "
                "so at least one is wrong or mistyped (or the threshold is not theirs); progress was "
                "reset to 0: each holder should check their share and submit it again",
                body={"key": "<share 2, altered>"},
                given=ADOPTION_TWO,
            ),
            Refusal(
                "the shares do not open the cluster's snapshot (progress returns to 0)",
                "these 2 shares do not open this cluster's snapshot: the key they rebuild does not "
                "decrypt its SHA256SUMS.sealed, so at least one is wrong or mistyped, or they belong to "
                "another cluster, or the snapshot is older than a rekey",
                body={"key": "<share 1>"},
                given=SNAPSHOT_ONE,
            ),
        ),
        links={"AdoptNextShare": _ADOPTION_LINKS["AdoptShareWithNonce"]},
    ),
    "oversight.registry": Operation(
        reply="SharesReply",
        query="SharesQuery",
        refusals=(
            _NOT_INITIALIZED,
            Refusal(
                "since is not a time with a zone",
                "since must be an RFC 3339 time with a zone, such as 2026-11-26T13:00:00Z",
                query="since=yesterday",
            ),
        ),
    ),
    "oversight.verify_custody": Operation(
        reply="CustodyReply",
        request="VerifyRequest",
        body_required=True,
        description="A share that is not the one recorded at its x gets only valid = false.",
        refusals=(
            _NOT_JSON,
            Refusal("key is missing", "key is required: the share you hold, as hex or base64", body={}),
            dataclasses.replace(_NOT_INITIALIZED, body=_ANY_SHARE),
            Refusal("the share does not decode to the key's length", _SHORT_KEY, body={"key": "abcd"}),
        ),
    ),
    # The overrides are described, not listed as parameters: a generated test
    # would take the 5xx a probe asks for (activecode=503) for a fault.
    "oversight.health": Operation(
        reply="HealthReply",
        description="The status code says the state, as Vault's does, so load balancers and monitors "
        "that know Vault work unchanged: 200 when initialized, 501 before init, 503 when the service "
        "cannot write its data folder (a read-only mount, no free block or inode, or a folder its user "
        "may not write; `sealed` is then true). The reply below comes with each of them; HEAD gives the "
        "status and headers only. Query overrides, as Vault takes them: `activecode`, `uninitcode` and "
        "`sealedcode` name the status to answer instead (a whole number from 200 to 599; 204 and 304 "
        "come without a body); `standbycode`, `performancestandbycode`, `drsecondarycode`, `standbyok` "
        "and `perfstandbyok` are checked and change nothing, since the service is never a standby "
        "(`standbyok` without a value counts as true).",
        refusals=(
            Refusal(
                "an override that is not a status code",
                "uninitcode must be an HTTP status code, a whole number from 200 to 599",
                query="uninitcode=abc",
            ),
            Refusal(
                "a flag that is neither true nor false",
                "standbyok must be true or false (or given without a value, for true)",
                query="standbyok=maybe",
            ),
        ),
    ),
    "oversight.metrics": Operation(
        reply={
            "type": "object",
            "description": "Vault's JSON metrics shape: every gauge and counter, read at this request",
            "required": ["Timestamp", "Gauges", "Counters", "Samples"],
            "properties": {
                "Timestamp": {"type": "string", "description": "when they were read, RFC 3339 in UTC"},
                "Gauges": {"type": "array", "items": _metric("Value", "number", "the gauge's value")},
                "Counters": {
                    "type": "array",
                    "items": _metric("Count", "integer", "the total since the service started"),
                },
                "Samples": {"type": "array", "items": {}, "description": "always empty"},
            },
        },
        query="MetricsQuery",
        other_media={"text/plain": {"type": "string", "description": "Prometheus' text format 0.0.4"}},
        description="Public numbers only, the same a holder sees in health and the registry, and the "
        "count of replies by status class: `generate_share_initialized`, `_threshold`, `_share_limit`, "
        "`_shares_issued`, `_attempt_in_progress`, `_attempt_progress`, `_adoption_in_progress`, "
        "`_audit_lines` (the trail's head), `_data_writable`, `_notify_backlog` (events not yet "
        "delivered to every notification URL) and the counter `generate_share_requests_total` with "
        "the label `class` (1xx to 5xx). With `format=prometheus` the reply is Prometheus' text "
        "format (`text/plain; version=0.0.4`), for a scrape job; without it, the JSON below. Every "
        "number is read from the service when asked, so a service nobody scrapes pays nothing for them.",
        refusals=(
            Refusal(
                "a format other than prometheus",
                "format must be prometheus (Prometheus' text format), or absent for Vault's JSON metrics",
                query="format=json",
            ),
        ),
    ),
    "openapi.document": Operation(reply={"type": "object"}),
}

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
