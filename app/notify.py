"""Webhook notifications: every audit event POSTed, signed, to receivers the operator does not control.

The outbox is the trail itself. The trail is already a durable, ordered log
of every event, so each receiver URL needs only a cursor: a file in the data
folder (``notify-<hash of the URL>.cursor``, 0600, never followed through a
link) holding the seq and hash of the last line that receiver accepted. A
thread per URL reads the trail after its cursor and POSTs each line, in
order, until a 2xx; a failure backs off exponentially (capped at
``MAX_BACKOFF`` seconds) and retries the same line. Only lines the store has
committed are sent (a line a crash leaves uncommitted is cut at start, so it
must never reach anyone). That gives at least once, in order, per URL, across
restarts, with no second copy of the events; receivers deduplicate by ``seq``.

The cursor is written at most every ``CURSOR_INTERVAL`` seconds (and when
the backlog empties, and at shutdown): a crash re-sends at most that much,
which deduplication absorbs.

A ceremony's own events are never queued behind what strangers caused.
Strangers can only make the service write ``refused`` and
``share_verify_failed`` lines (coalesced by app/refusals.py); when more than
``AHEAD_AFTER`` lines wait before any other event, that event is sent first,
ahead of them, and skipped when the in-order pass reaches it. Receivers then
see its seq before smaller ones; the seq and ``prev`` still give the order.

Each delivery (app/delivery.py) has one deadline, ``DELIVERY_SECONDS``, from
connecting to the reply's last byte, and reads ``MAX_REPLY`` bytes of the
reply's body at most: a receiver that answers with a huge, endless or
trickled reply, head or body, fails that delivery, which is retried.

Each body is the trail line's own fields (``event``, ``seq``, ``time``,
``prev``, the event's fields, the request id and client address) plus
``audit_head``: the seq and SHA-256 of that line. Re-serialising the fields
without ``audit_head`` (sorted keys, no spaces) gives the line byte for byte,
so a receiver can check the chain itself. It is signed as GitHub signs its
webhooks: ``X-Generate-Share-Signature: sha256=<HMAC-SHA256 of the body>``.

``GENERATE_SHARE_NOTIFY_REQUIRED=true`` makes a ceremony's start wait
(``CONFIRM_SECONDS`` at most) until every URL accepted its start event.

This module imports nothing from Flask.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass

import requests

from . import delivery
from .audit import AUDIT_FILE, line_hash
from .delivery import SIGNATURE_HEADER, payload, sign
from .folder import DataFolder

__all__ = ["EVENTS", "Notifier", "Settings", "sign"]

log = logging.getLogger(__name__)

#: Every event name the service writes to its trail (app/ceremonies, app/records, app/token).
EVENTS = frozenset(
    {
        "init",
        "attempt_started",
        "share_accepted",
        "share_issued",
        "attempt_cancelled",
        "reconstruction_failed",
        "adoption_started",
        "adoption_cancelled",
        "adoption_failed",
        "adopted",
        "share_verified",
        "share_verify_failed",
        "root_token_reset",
        "refused",
    }
)
#: The events a NOTIFY_REQUIRED start waits on.
START_EVENTS = ("attempt_started", "adoption_started")
MIN_SECRET = 16
MAX_BACKOFF = 10.0
FIRST_BACKOFF = 0.25
CONFIRM_SECONDS = 5.0
CURSOR_INTERVAL = 0.5
#: Lines waiting before a ceremony's event past which it is sent ahead of them.
AHEAD_AFTER = 16
#: The events anyone at the port can make the service write: never ahead of a ceremony's.
STRANGER_EVENTS = (b'"event":"refused"', b'"event":"share_verify_failed"')
#: A ceremony's events kept in memory to be sent ahead, at most (more wait their turn).
MAX_AHEAD = 1024
_CURSOR_MAGIC = b"generate-share notify cursor 1"
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Settings:
    """The notification settings (checked in app/config.py): no URLs means no notifications."""

    urls: tuple[str, ...] = ()
    secret: bytes = b""
    events: frozenset[str] = EVENTS
    required: bool = False


def cursor_name(url: str) -> str:
    """Return the cursor file's name for ``url`` (hashed: a webhook URL may hold a secret)."""
    return "notify-" + hashlib.sha256(url.encode()).hexdigest()[:16] + ".cursor"


class Notifier:
    """Deliver every committed trail line to each URL, off the request path."""

    def __init__(self, folder: DataFolder | None = None, head_seq: int = 0, config: Settings | None = None):
        self.settings = config or Settings()
        self._folder = folder
        self._cond = threading.Condition()
        self._head = head_seq
        self._stopping = False
        self._nudged = 0
        self._fd = -1
        #: A ceremony's lines not yet delivered to every URL, by seq (app/refusals.py keeps strangers' few).
        self._ahead: dict[int, bytes] = {}
        self._targets: list[_Target] = []
        if self.settings.urls and folder is not None:
            self._fd = folder.open_file(AUDIT_FILE, os.O_RDONLY)
            raw = _read_all(self._fd)
            for url in self.settings.urls:
                self._targets.append(_Target(self, url, raw))

    @classmethod
    def attach(cls, store, config: Settings) -> Notifier:
        """Deliver ``store``'s commits from now on (threads only when URLs are set); stop at exit."""
        notifier = cls(store.folder, store.head.seq, config)
        store.watch(notifier.committed)
        if notifier._targets:
            notifier.start()
            atexit.register(notifier.stop)
        return notifier

    @property
    def required(self) -> bool:
        """Tell whether a ceremony's start must be accepted by every receiver first."""
        return self.settings.required and bool(self._targets)

    def start(self) -> Notifier:
        """Start one delivery thread per URL."""
        for target in self._targets:
            target.thread.start()
        return self

    def committed(self, seq: int, line: bytes = b"") -> None:
        """Take note that the trail's committed head is now ``seq`` (cheap: the store calls it)."""
        with self._cond:
            self._head = seq
            if line and self._targets and not any(mark in line for mark in STRANGER_EVENTS):
                if len(self._ahead) < MAX_AHEAD:
                    self._ahead[seq] = line.rstrip(b"\n")
            self._cond.notify_all()

    def backlog(self) -> int:
        """Return how many events are not yet delivered, summed over the URLs."""
        head = self._head
        return sum(max(0, head - t.delivered - len(t.sent_ahead)) for t in self._targets)

    def _forget_ahead(self) -> None:
        """Drop the lines every URL has had (the caller holds the condition)."""
        for seq in [s for s in self._ahead if all(t.has(s) for t in self._targets)]:
            del self._ahead[seq]

    def confirm(self, seq: int, timeout: float = CONFIRM_SECONDS) -> bool:
        """Wait until every URL accepted line ``seq``; False once one fails or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            # Retry now rather than after a backoff: the receiver may be back.
            self._nudged += 1
            failures = [t.failures for t in self._targets]
            self._cond.notify_all()
            while True:
                if all(t.has(seq) for t in self._targets):
                    return True
                # In order per URL: a failure on any line at or before seq means seq was not accepted.
                if any(t.failures > n for t, n in zip(self._targets, failures, strict=True)):
                    return False
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop delivering, and record each URL's cursor."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for target in self._targets:
            if target.thread.is_alive():
                target.thread.join(timeout)
            target.save()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Target:
    """One receiver URL: its cursor, its reader, its thread."""

    def __init__(self, owner: Notifier, url: str, trail: bytes):
        self.owner = owner
        self.url = url
        self.name = cursor_name(url)
        self.label = f"receiver {owner.settings.urls.index(url) + 1}"  # the URL may hold a secret
        self.failures = 0
        #: Lines past ``delivered`` already accepted because they were sent ahead.
        self.sent_ahead: set[int] = set()
        self.delivered, self.digest, self.offset = self._load(trail)
        self._saved = self.delivered
        self._saved_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)

    def has(self, seq: int) -> bool:
        """Tell whether this URL accepted line ``seq`` (the caller holds the condition)."""
        return seq <= self.delivered or seq in self.sent_ahead

    def _send_ahead(self, session: requests.Session, head: int) -> bool:
        """Send a ceremony's lines first once one waits behind more than AHEAD_AFTER; False on a failure."""
        owner = self.owner
        with owner._cond:
            waiting = [
                (seq, line)
                for seq, line in sorted(owner._ahead.items())
                if self.delivered < seq <= head and seq not in self.sent_ahead
            ]
        # Only past a backlog; then every waiting one, so that a ceremony's events keep their order.
        if not waiting or waiting[-1][0] - self.delivered <= AHEAD_AFTER:
            return True
        for seq, line in waiting:
            if not self._deliver(session, line):
                return False
            with owner._cond:
                self.sent_ahead.add(seq)
                owner._cond.notify_all()
        return True

    def _load(self, trail: bytes) -> tuple[int, str, int]:
        """Return (seq, hash, byte offset) of the last line this URL accepted, per its cursor file."""
        folder = self.owner._folder
        folder.remove_leftovers(self.name)
        raw = folder.read(self.name)
        if raw is None:
            return 0, "", 0
        seq, digest = _parse_cursor(raw)
        if seq is None:
            log.error(
                "notify: the cursor %s is damaged; re-sending the whole trail to %s", self.name, self.label
            )
            return 0, "", 0
        offset, at = 0, 0
        for _ in range(seq):
            at = trail.find(b"\n", offset)
            if at < 0:
                break
            line_start, offset = offset, at + 1
        if at < 0 or (seq and line_hash(trail[line_start:at]) != digest):
            # The trail was replaced (a restored backup?): receivers see seqs
            # they already had, with another audit_head hash, which is the alarm.
            log.error(
                "notify: the trail no longer holds line %d as %s received it; re-sending the whole trail",
                seq,
                self.label,
            )
            return 0, "", 0
        return seq, digest, offset

    def save(self, force: bool = True) -> None:
        """Record the cursor durably (when it moved; at most every CURSOR_INTERVAL unless forced)."""
        if self.delivered == self._saved:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < CURSOR_INTERVAL:
            return
        data = b"%s seq=%d hash=%s\n" % (_CURSOR_MAGIC, self.delivered, self.digest.encode())
        try:
            self.owner._folder.replace(self.name, data)
        except OSError as exc:
            # The older cursor on disk only means re-sending after a restart
            # (at least once still holds); do not retry in a loop.
            log.error("notify: cannot record the cursor %s: %s", self.name, exc.strerror or exc)
        self._saved, self._saved_at = self.delivered, now

    def _next_lines(self, head: int) -> list[bytes]:
        """Read the committed lines after the cursor, up to ``head`` (a chunk at a time)."""
        data = os.pread(self.owner._fd, _READ_CHUNK, self.offset)
        lines = data.split(b"\n")[:-1]  # the last piece is incomplete (or empty)
        if not lines and data:
            # One line longer than a chunk: read exactly to its end.
            whole = _read_line(self.owner._fd, self.offset)
            lines = [whole] if whole is not None else []
        return lines[: max(0, head - self.delivered)]

    def _run(self) -> None:
        owner = self.owner
        session = delivery.open_session()
        backoff = retry_at = 0.0
        nudged = owner._nudged
        while True:
            # Only cheap steps under the condition's lock: the store's commit
            # (under the service's lock) takes it too. Writing the cursor and
            # the POST happen outside it.
            with owner._cond:
                while not owner._stopping:
                    if owner._nudged != nudged:
                        nudged, retry_at = owner._nudged, 0.0
                    wait = retry_at - time.monotonic()
                    if wait > 0:
                        owner._cond.wait(wait)
                    elif owner._head > self.delivered or self.delivered != self._saved:
                        break
                    else:
                        owner._cond.wait()
                if owner._stopping:
                    break
                head = owner._head
            if head <= self.delivered:
                self.save()  # the backlog is empty: record where it ends now
                continue
            lines = self._next_lines(head)
            if not lines:
                # Committed lines the file does not show yet: cannot happen with
                # one writer; wait a little instead of spinning.
                retry_at = time.monotonic() + FIRST_BACKOFF
                continue
            for line in lines:
                seq = self.delivered + 1
                # Before each line: a ceremony's event committed meanwhile goes first.
                sent = self._send_ahead(session, owner._head)
                if not sent or (seq not in self.sent_ahead and not self._deliver(session, line)):
                    backoff = min(MAX_BACKOFF, backoff * 2 if backoff else FIRST_BACKOFF)
                    retry_at = time.monotonic() + backoff
                    with owner._cond:
                        self.failures += 1
                        owner._cond.notify_all()
                    break
                backoff = 0.0
                with owner._cond:
                    self.offset += len(line) + 1
                    self.delivered += 1
                    self.sent_ahead.discard(seq)
                    self.digest = line_hash(line)
                    owner._forget_ahead()
                    owner._cond.notify_all()
                self.save(force=False)
                if owner._stopping:
                    break
        session.close()

    def _deliver(self, session: requests.Session, line: bytes) -> bool:
        """POST one line (or skip an event this URL does not want); True once it is accepted."""
        try:
            doc, body = payload(line)
        except ValueError:
            log.error("notify: line %d of the trail is not JSON; skipped", self.delivered + 1)
            return True
        if doc.get("event") not in self.owner.settings.events:
            return True
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "generate-share-notify/1",
            SIGNATURE_HEADER: sign(self.owner.settings.secret, body),
            "X-Generate-Share-Event": str(doc.get("event")),
            "X-Generate-Share-Seq": str(doc.get("seq")),
            "Accept-Encoding": "identity",  # a compressed reply could not be bounded by its bytes
        }
        try:
            status = delivery.post(session, self.url, body, headers)
        except requests.RequestException as exc:
            log.warning(
                "notify: %s did not take event %d (%s): %s; retrying",
                self.label,
                doc.get("seq"),
                doc.get("event"),
                type(exc).__name__,
            )
            return False
        if 200 <= status < 300:
            return True
        log.warning(
            "notify: %s answered %d to event %d (%s); retrying",
            self.label,
            status,
            doc.get("seq"),
            doc.get("event"),
        )
        return False


def _parse_cursor(raw: bytes) -> tuple[int | None, str]:
    """Return (seq, hash) from a cursor file, or (None, "") if it is damaged."""
    fields = raw.rstrip(b"\n").split(b" ")
    if b" ".join(fields[:-2]) != _CURSOR_MAGIC or len(fields) < 2:
        return None, ""
    seq, digest = fields[-2].removeprefix(b"seq="), fields[-1].removeprefix(b"hash=")
    if not seq.isdigit() or len(digest) not in (0, 64):
        return None, ""
    return int(seq), digest.decode()


def _read_all(fd: int) -> bytes:
    """Return the whole file behind ``fd``, read with pread."""
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _read_line(fd: int, offset: int) -> bytes | None:
    """Return the whole line starting at ``offset``, or None if it is not complete yet."""
    chunks = []
    while chunk := os.pread(fd, _READ_CHUNK, offset):
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)
    return None
