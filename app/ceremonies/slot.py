"""One ceremony's place in the service, and the waits and refusals that belong to it.

The service (app/service.py) holds one ``Slot`` per kind of ceremony (the
attempt, the adoption) and its one lock. What a slot adds to the ceremony in
it is the same for both kinds, so it lives here once:

- while the start event of its ceremony waits for the notification receivers
  (GENERATE_SHARE_NOTIFY_REQUIRED), shares are refused (``refuse_unconfirmed``);
- ``confirm`` waits for them outside the lock, then keeps or cancels the
  ceremony under it;
- ``shown`` leaves a status's nonce out, in token mode, for a caller without
  the lead's token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import Conflict, Unavailable
from ..notify import CONFIRM_SECONDS, Notifier
from ..token import authorize

__all__ = ["Slot", "shown"]

R = TypeVar("R")


@dataclass
class Slot:
    """One ceremony's place in the service: the one in progress, if any."""

    #: How a refusal names it ("the attempt", "the adoption").
    name: str
    current: Any = None
    #: True while its start event waits for the receivers (GENERATE_SHARE_NOTIFY_REQUIRED).
    unconfirmed: bool = False

    def clear(self) -> None:
        """Leave the slot empty: the ceremony completed, was cancelled or did not start."""
        self.current = None
        self.unconfirmed = False

    def refuse_unconfirmed(self) -> None:
        """Refuse a share for a ceremony whose start the receivers have not yet accepted."""
        if self.unconfirmed:
            raise Conflict(
                "this ceremony's start is still waiting for the notification receivers to accept "
                "it; submit the share once the lead has the start reply"
            )

    def confirm(
        self,
        notifier: Notifier,
        lock: threading.Lock,
        seq: int,
        ceremony: object,
        cancel: Callable[[], None],
    ) -> None:
        """Wait, outside ``lock``, until every receiver accepted line ``seq``; else cancel and refuse."""
        # Outside the lock: a receiver that hangs delays only this start, not
        # health probes or other requests; holders meanwhile get a Conflict.
        accepted = notifier.confirm(seq, CONFIRM_SECONDS)
        with lock:
            if self.current is not ceremony:
                raise Conflict(f"{self.name} was cancelled while its start event was being delivered")
            self.unconfirmed = False
            if accepted:
                return
            cancel()
            self.clear()
        raise Unavailable(
            f"{self.name} did not start: GENERATE_SHARE_NOTIFY_REQUIRED is on and a notification "
            f"receiver did not accept its start event within {CONFIRM_SECONDS:g} s (refused, "
            "unreachable or slow); nothing started: retry once every receiver is reachable"
        )


def shown(reply: R, token: str | None, token_hash: str) -> R:
    """Leave a token-mode status's nonce out unless the request carries the lead's token.

    The nonce is then the secret that keeps strangers out of the quorum: the
    lead announces it to the holders. A wrong token is refused. (The caller
    decides whether the service is in token mode.)
    """
    if not reply.nonce:  # type: ignore[attr-defined]
        return reply
    if token is None:
        return replace(reply, nonce="")  # type: ignore[type-var]
    authorize(token, token_hash)
    return reply
