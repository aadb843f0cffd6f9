"""What each kind of setting takes: a parser from text (or a test's Python value) to the value.

Each parser raises ValueError when it cannot take the value; a message, if
any, is what app/config.py adds after its sentence ("GENERATE_SHARE_X must be
..."). Here rather than in app/config.py so that adding a setting stays a
one-line affair there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

from .notify import EVENTS

__all__ = [
    "choice",
    "events",
    "flag",
    "number",
    "optional_text",
    "origins",
    "public_origin",
    "rate",
    "raw_text",
    "text",
    "urls",
    "whole",
]

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_OFF = frozenset({"0", "off", "none", "false", "no"})


def text(value: Any) -> str:
    """Return non-empty text."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip()


def optional_text(value: Any) -> str:
    """Return text, possibly empty (unset)."""
    if not isinstance(value, str):
        raise ValueError
    return value.strip()


def raw_text(value: Any) -> str:
    """Return text exactly as given (a secret: not even stripped)."""
    if not isinstance(value, str):
        raise ValueError
    return value


def flag(value: Any) -> bool:
    """Return true or false from true/false (any case) or 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def whole(low: int, high: int | None = None) -> Callable[[Any], int]:
    """Return a parser of whole numbers from ``low`` to ``high`` (no upper bound when None)."""

    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if type(value) is not int or value < low or (high is not None and value > high):
            raise ValueError
        return value

    return parse


def number(*, above: float, at_most: float) -> Callable[[Any], float]:
    """Return a parser of numbers greater than ``above`` and at most ``at_most``."""

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError from None
        if type(value) not in (int, float) or not math.isfinite(value) or not above < value <= at_most:
            raise ValueError
        return float(value)

    return parse


def choice(*options: str, upper: bool = False) -> Callable[[Any], str]:
    """Return a parser of one of ``options`` (any case)."""

    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError
        word = value.strip().upper() if upper else value.strip().lower()
        if word not in options:
            raise ValueError
        return word

    return parse


def rate(value: Any) -> str | None:
    """Return a rate limit as ``limits.parse_many`` takes it, or None when off."""
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ValueError
    spec = value.strip()
    if spec.lower() in _OFF:
        return None
    try:
        items = parse_many(spec)
    except ValueError:
        raise ValueError(f"{spec!r} is not one") from None
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{spec!r} is not one")
    return spec


def _entries(value: Any) -> list[str]:
    """Return the non-empty entries of a comma-separated list (or of a test's list)."""
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        entries = list(value)
    else:
        raise ValueError
    return [e.strip() for e in entries if e.strip()]


def origins(value: Any) -> frozenset[str]:
    """Return web origins in the form a browser sends them (lowercase host, no default port)."""
    found = set()
    for entry in _entries(value):
        try:
            parts = urlsplit(entry)
            port = parts.port  # a port out of range raises ValueError
        except ValueError:
            parts = port = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.path
            or "?" in entry
            or "#" in entry
        ):
            raise ValueError(f"{entry!r} is not one")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default = 443 if parts.scheme == "https" else 80
        found.add(f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else ""))
    return frozenset(found)


def public_origin(value: Any) -> str:
    """Return the origin of one public URL as a browser sends it ("" when unset); a lone "/" path is fine."""
    if not isinstance(value, str):
        raise ValueError
    entry = value.strip()
    if not entry:
        return ""
    found = origins(entry.removesuffix("/"))
    if len(found) != 1:
        raise ValueError(f"{entry!r} is not one")
    return next(iter(found))


def urls(value: Any) -> tuple[str, ...]:
    """Return distinct http(s) URLs; a bad one is named by its place, never echoed (it may hold a secret)."""
    if not isinstance(value, str):
        raise ValueError
    found: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            parts = urlsplit(entry)
            parts.port  # noqa: B018 (a port out of range raises ValueError)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "#" in entry:
            raise ValueError(f"entry {len(found) + 1} is not one")
        if entry in found:
            raise ValueError(f"entry {len(found) + 1} repeats an earlier one")
        found.append(entry)
    return tuple(found)


def events(value: Any) -> frozenset[str]:
    """Return audit event names (all of them when empty)."""
    names = set(_entries(value))
    if not names:
        return EVENTS
    unknown = sorted(names - EVENTS)
    if unknown:
        raise ValueError(
            f"it names unknown events ({', '.join(unknown)}); the events are: {', '.join(sorted(EVENTS))}"
        )
    return frozenset(names)
