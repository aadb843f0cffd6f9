"""The service's errors: one root, each subclass knowing its HTTP status.

The API layer turns any ServiceError into Vault's ``{"errors": [...]}`` body;
the service and the core raise these without knowing about HTTP. Messages are
whole sentences meant for the caller and never carry key material.

Whatever a request sends, its error reply and its trail line stay a few KB:
``bounded`` keeps the first sentences, each cut short, and ``reason`` is the
one line a refusal's trail entry quotes.
"""

import json

__all__ = [
    "ServiceError",
    "BadRequest",
    "NotInitialized",
    "Conflict",
    "Forbidden",
    "Unavailable",
    "StartupError",
    "bounded",
    "reason",
    "shorten",
]

MAX_SENTENCES = 10
MAX_SENTENCE = 300
MAX_REASON = 1024
_CUT = "…"


def shorten(text: str, limit: int) -> str:
    """Return ``text``, shortened with "…" so that its JSON form has at most ``limit`` characters."""
    if len(text) <= limit and len(json.dumps(text)) - 2 <= limit:
        return text  # the common case: one short ASCII sentence
    room = limit - len(json.dumps(_CUT)) + 2
    kept = []
    for char in text:
        # Escapes count: a control character is 6 characters of JSON, an emoji 12.
        room -= len(json.dumps(char)) - 2
        if room < 0:
            break
        kept.append(char)
    return "".join(kept) + _CUT


def bounded(messages) -> list[str]:
    """Return the first sentences of ``messages``, each cut short, and how many more there were."""
    messages = list(messages)
    out = [shorten(m, MAX_SENTENCE) for m in messages[:MAX_SENTENCES]]
    if len(messages) > MAX_SENTENCES:
        more = len(messages) - MAX_SENTENCES
        out.append(f"and {more} more problem{'s' if more > 1 else ''}; fix the ones above and send again")
    return out


def reason(messages) -> str:
    """Return the reason a refusal's trail line gives: its sentences, bounded, in one line."""
    return shorten(" ".join(bounded(messages)), MAX_REASON)


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, *messages: str):
        super().__init__(*messages)
        self.messages = list(messages)


class BadRequest(ServiceError):
    """The caller sent something it can fix: wrong type, encoding or value."""


class NotInitialized(BadRequest):
    """The call needs an initialized service."""

    def __init__(self):
        super().__init__("the service is not initialized; initialize it first with PUT /v1/sys/init")


class Conflict(BadRequest):
    """The call does not fit the current state (Vault answers these with 400)."""


class Forbidden(ServiceError):
    """The call needs the operator token, and the request did not carry the right one."""

    status = 403


class Unavailable(ServiceError):
    """The server could not do its part (disk, gpg); nothing was changed or issued."""

    status = 503


class StartupError(Exception):
    """The service cannot start on this data folder; the message says why."""
