"""Collect a quorum's shares under one nonce: the rules every ceremony shares.

Generate-share and adoption are the same act: holders submit shares one at a
time, with the ceremony's nonce, until ``required`` are in. This is the one
place that decides whether a submitted share may be taken (``check``; the
ceremony then writes its line and ``take``s it): the nonce must match,
the share must decode to the quorum's length, its x must not be 0, and it may
be neither a share already submitted nor a different share at an x already
submitted. Shares live only here, in memory, in bytearrays this object
owns (decoded straight into them) and overwrites when the quorum is spent or
cancelled. That is best effort, said plainly: Python gives no control over
memory, and the request body, the JSON parser's string and the HTTP
server's buffers hold other copies this code cannot reach.

In token mode the nonce is a secret shared by the lead and the holders: no
reply but the lead's shows it and no trail line carries it (``label`` names
the ceremony by a public id instead), and it is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ..encoding import decode_share
from ..errors import BadRequest

__all__ = ["Quorum", "wipe"]


def wipe(buffers: list[bytearray]) -> None:
    """Overwrite secret buffers: best effort, since Python may hold other copies."""
    for buf in buffers:
        buf[:] = bytes(len(buf))


class Quorum:
    """The shares submitted so far to one ceremony, under its nonce."""

    def __init__(
        self,
        *,
        required: int,
        lengths: range,
        require_nonce: bool = False,
        reveal_nonce: bool = True,
    ):
        self.nonce = _uuid4()
        #: What the trail calls this ceremony: the nonce in open mode, where it is public;
        #: in token mode, where it is a secret, an id of its own.
        self.label = {"nonce": self.nonce} if reveal_nonce else {"ceremony": _uuid4()}
        self.required = required
        self._lengths = lengths
        self._require_nonce = require_nonce
        # In token mode no refusal offers the current nonce: it is the secret
        # that keeps strangers out of the quorum.
        self._reveal_nonce = reveal_nonce
        self._shares: list[bytearray] = []
        self._unchecked: list[int] = []  # the x of each share taken without a custody digest

    @property
    def progress(self) -> int:
        """Return how many shares were taken since the start or the last reset."""
        return len(self._shares)

    @property
    def last(self) -> bool:
        """Tell whether the next share taken completes the quorum."""
        return len(self._shares) + 1 >= self.required

    @property
    def unchecked(self) -> list[int]:
        """Return the x of each share taken that nothing could check before the quorum completes."""
        return list(self._unchecked)

    def take(self, share: bytearray, *, checked: bool = True) -> bool:
        """Keep one share that ``check`` passed (this quorum now owns the buffer); tell if complete."""
        self._shares.append(share)
        if not checked:
            self._unchecked.append(share[-1])
        return len(self._shares) >= self.required

    @contextmanager
    def spent(self) -> Iterator[list[bytearray]]:
        """Yield the complete quorum's shares, then forget them whatever happened.

        Used or refused, the shares go: a failure leaves progress at 0 so the
        holders can submit again.
        """
        try:
            yield list(self._shares)  # the buffers themselves: no copy to forget
        finally:
            self.clear()

    def clear(self) -> None:
        """Forget every submitted share (progress returns to 0)."""
        wipe(self._shares)
        self._shares.clear()
        self._unchecked.clear()

    def check(self, key: str, nonce: str | None) -> bytearray:
        """Decode a holder's share and refuse it unless every rule holds."""
        self._check_nonce(nonce)
        try:
            share = decode_share(key, self._expected_lengths())
        except BadRequest as refused:
            if not self._shares or len(self._lengths) == 1:
                raise
            # The first share fixed the length: if it was cut short or padded,
            # every correct share after it lands here, and must not be blamed.
            raise BadRequest(
                f"{refused.messages[0]}, the length of the first share submitted in this attempt; "
                "if your share is whole, an earlier share may be the wrong one: the lead can "
                "cancel the adoption ('generate-share adopt cancel') and start it again, so "
                "that every holder submits anew; nothing was counted"
            ) from None
        x = share[-1]
        if x == 0:
            raise BadRequest(
                "key ends in the byte 0, but a share's last byte is its x, from 1 to 255; "
                "check that the whole share was copied"
            )
        for seen in self._shares:
            if hmac.compare_digest(seen, share):
                raise BadRequest(
                    "this share was already submitted in this attempt; "
                    "each of the required shares must come from a different holder"
                )
            # Two shares at one x cannot both lie on the key's polynomial.
            if seen[-1] == x:
                raise BadRequest(
                    f"a different share with x = {x} was already submitted in this attempt; "
                    "every share has its own x, so one of the two is wrong"
                )
        return share

    def _expected_lengths(self) -> range:
        """Return the accepted lengths: once a share is in, every other must match it."""
        if not self._shares:
            return self._lengths
        n = len(self._shares[0])
        return range(n, n + 1)

    def _check_nonce(self, nonce: str | None) -> None:
        if nonce is None:
            if not self._require_nonce:
                return
            if self._reveal_nonce:
                raise BadRequest(
                    "nonce is required on this server: send the nonce of the attempt "
                    f"in progress ({self.nonce}) with each share"
                )
            raise BadRequest(
                "nonce is required on this server: send your share with the nonce the ceremony "
                "lead announced for this ceremony; nothing was counted"
            )
        if hmac.compare_digest(nonce.encode(), self.nonce.encode()):
            return
        if self._reveal_nonce:
            raise BadRequest(
                f"nonce does not match the attempt in progress; the current nonce is {self.nonce}"
            )
        raise BadRequest(
            "nonce does not match the ceremony in progress: it was cancelled and started again, "
            "or it is not the one the ceremony lead announced; nothing was counted: do not send "
            "your share again until the lead confirms the nonce"
        )


def _uuid4() -> str:
    """Return a random UUID (version 4) from ``secrets``."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
