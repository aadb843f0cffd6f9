"""The service's errors: one root, each subclass knowing its HTTP status.

The API layer turns any ServiceError into Vault's ``{"errors": [...]}`` body;
the service and the core raise these without knowing about HTTP. Messages are
whole sentences meant for the caller and never carry key material.
"""

__all__ = [
    "ServiceError",
    "BadRequest",
    "NotInitialized",
    "Conflict",
    "Forbidden",
    "Unavailable",
    "StartupError",
]


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, *messages: str, audited: bool = False):
        super().__init__(*messages)
        self.messages = list(messages)
        #: True when the service already wrote this refusal to the audit trail.
        self.audited = audited


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
