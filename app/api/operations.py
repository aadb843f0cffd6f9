"""Every view's entry in the contract: its reply, body and query schemas, its own refusals, its links.

The ``OPERATIONS`` table, in the words of app/api/contract.py. Each refusal
names a request that provokes it in a given state; tests/test_openapi.py sends
each one to the app and checks the reply carries the sentence word for word.
"""

from __future__ import annotations

import dataclasses

from .contract import (
    ADOPTION,
    ADOPTION_TWO,
    ATTEMPT,
    ATTEMPT_ONE,
    ATTEMPT_TWO,
    BEFORE_INIT,
    EXAMPLE_NONCE,
    EXAMPLE_SNAPSHOT,
    FULL,
    SNAPSHOT_ONE,
    UNCHECKED_ONE,
    Operation,
    Refusal,
    example_snapshot,
)

__all__ = ["OPERATIONS"]


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
                body={"snapshot": {**EXAMPLE_SNAPSHOT, "meta": example_snapshot(b"{}")["meta"]}},
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
