"""The server's settings: every ``GENERATE_SHARE_*`` variable, read once, checked, frozen.

This is the only module of the server that reads the environment. The app
(``create_app``), ``gunicorn.conf.py`` and the worker (``app/worker.py``) all
take their values from one :class:`Settings`; the CLI keeps its own client
settings (``GENERATE_SHARE_ADDR``, ``_TOKEN``, ``_CACERT``, ``_FORMAT``) in
app/cli, and those are not read here.

A bad value refuses the start with one sentence that names the variable and
says what it takes (:class:`SettingError`, a :class:`StartupError`).
``gunicorn.conf.py`` loads the settings in the master, before anything
listens, so a bad one exits 4 (``REFUSED`` there) without a traceback.

Adding a setting is one line in :class:`Settings`::

    idle_seconds: float = setting(30.0, number(above=0, at_most=600), takes="...", doc="...")

``setting(default, parse, takes=, doc=)``: the field's name in upper case after
``GENERATE_SHARE_`` is the variable; ``parse`` turns the variable's text
(or, from a test's mapping, a Python value) into the value and raises
ValueError when it cannot (a message, if any, is added after the sentence);
``takes`` finishes "GENERATE_SHARE_IDLE_SECONDS must be ..."; ``doc`` is the
README's Configuration row (tests/test_config.py holds the README's table to
:func:`markdown_table`: paste its output there). Checks across settings go in
:meth:`Settings._check_together`. Then read it where it is needed as
``settings.idle_seconds``: through ``get_settings()`` in app/api,
``create_app`` passes it on to the rest.

Hand-written rather than a settings library: the checks are a dozen small
functions, the sentences are the product (each is a documented refusal), and
the module must not pull anything heavier than ``limits`` into gunicorn's master.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

from .errors import StartupError
from .notify import EVENTS, MIN_SECRET, START_EVENTS

__all__ = ["PREFIX", "SettingError", "Settings", "from_environ", "from_mapping", "markdown_table", "setting"]

PREFIX = "GENERATE_SHARE_"
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_OFF = frozenset({"0", "off", "none", "false", "no"})


class SettingError(StartupError):
    """A setting the service cannot start with; the message names the variable."""


def setting(
    default: Any,
    parse: Callable[[Any], Any],
    *,
    takes: str,
    doc: str,
    shown: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting: its parsed default, its parser, what it takes, its README line."""
    metadata = {"parse": parse, "takes": takes, "doc": doc, "shown": shown}
    return field(default=default, metadata=metadata, repr=not secret)


# -- parsers: text from the environment (or a Python value from a test) -> value --------


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


_LEVELS = tuple(logging.getLevelNamesMapping())


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, checked; build it with from_environ() or from_mapping()."""

    data_dir: str = setting(
        "./data",
        text,
        takes="a folder path",
        doc="the data folder (created 0700, files 0600); it must belong to the service's user, must not be "
        "writable by group or others, and neither it nor any entry in it may be a symbolic link, or the "
        "service refuses to start",
    )
    bind: str = setting(
        "127.0.0.1:8200",
        text,
        takes="an address for gunicorn to listen on, such as 127.0.0.1:8200 or unix:PATH",
        doc="where gunicorn listens",
    )
    threads: int = setting(
        8,
        whole(1, 1024),
        takes="a whole number of threads, 1 to 1024",
        doc="gunicorn threads in the one worker",
    )
    ceremony_auth: str = setting(
        "token",
        choice("token", "open"),
        takes="token (the default: an operator token steers each ceremony) or open (the seed's behaviour, "
        "without a token, for closed networks)",
        doc="`token`: an operator token steers ceremonies, nonces are required, a pad masks a share made "
        'without PGP; `open`: the seed\'s behaviour, for closed networks (see "Trust model")',
    )
    require_nonce: bool = setting(
        False,
        flag,
        takes="true or false",
        doc="in `open` mode, refuse updates that do not carry the attempt's nonce "
        "(always required in `token` mode)",
    )
    allowed_origins: frozenset[str] = setting(
        frozenset(),
        origins,
        takes="a comma-separated list of web origins, each scheme://host[:port] with no path, such as "
        "https://ops.example.org,http://127.0.0.1:8080",
        doc="comma-separated `scheme://host[:port]` web origins whose pages may send writes, besides the "
        "service's own page at its listening address and `PUBLIC_URL`; a write carrying any other `Origin` "
        "(one equal to the `Host` included: DNS rebinding), or `Sec-Fetch-Site: cross-site`/`same-site`, "
        "is refused with a 403",
        shown="empty",
    )
    public_url: str = setting(
        "",
        public_origin,
        takes="the address browsers open the service at behind a proxy, scheme://host[:port] with no path, "
        "such as https://ceremony.example.org",
        doc="the address browsers open the ceremony page (`/ui/`) at behind a reverse proxy, such as "
        "`https://ceremony.example.org`: its origin may send writes too",
        shown="empty",
    )
    request_deadline: float = setting(
        10.0,
        number(above=0, at_most=3600),
        takes="a number of seconds, above 0 and at most 3600",
        doc="seconds a request may take to arrive whole; past it, a 408 and the connection is closed",
        shown="10",
    )
    max_content_length: int = setting(
        64 * 1024,
        whole(1024),
        takes="a whole number of bytes, at least 1024",
        doc="largest request body in bytes (413 past it)",
    )
    rate_limit: str | None = setting(
        "20/second",
        rate,
        takes="a rate such as 20/second or 20 per second;100/minute (writes per client), "
        "or off to disable it",
        doc="writes per client address (after `TRUSTED_PROXIES`) before a 429 with `Retry-After`, e.g. "
        "`20 per second;300/minute`; `off` disables it. Reads are never limited",
    )
    min_free_mb: int = setting(
        64,
        whole(0),
        takes="a whole number of megabytes (0 turns the low-disk guard off)",
        doc="below this much free space in the data folder, refusals are only counted in memory (written "
        "as one line at the next ceremony event); health shows `low_disk`; `0` disables the guard",
    )
    notify_url: tuple[str, ...] = setting(
        (),
        urls,
        takes="one or more http:// or https:// URLs, comma-separated, such as "
        "https://hooks.example.org/generate-share",
        doc='webhook receivers for every audit event (see "Who hears of a ceremony")',
        shown="unset",
    )
    notify_secret: str = setting(
        "",
        raw_text,
        takes=f"text of at least {MIN_SECRET} characters",
        doc="the key that signs each notification (HMAC-SHA256); needed with `NOTIFY_URL`",
        shown="unset",
        secret=True,
    )
    notify_events: frozenset[str] = setting(
        EVENTS,
        events,
        takes="a comma-separated list of event names",
        doc="the events sent, comma-separated",
        shown="all",
    )
    notify_required: bool = setting(
        False,
        flag,
        takes="true or false",
        doc="a ceremony's start waits until every receiver accepted its start event",
    )
    tls_cert_file: str = setting(
        "",
        optional_text,
        takes="a file path",
        doc="serve HTTPS directly: the PEM certificate chain (both TLS files or neither)",
        shown="unset",
    )
    tls_key_file: str = setting(
        "",
        optional_text,
        takes="a file path",
        doc="serve HTTPS directly: its unencrypted PEM private key (both TLS files or neither)",
        shown="unset",
    )
    log_level: str = setting(
        "INFO", choice(*_LEVELS, upper=True), takes="a level name such as INFO or DEBUG", doc="log level"
    )
    trusted_proxies: int = setting(
        0,
        whole(0, 10),
        takes="a whole number of proxy hops, 0 to 10",
        doc="how many `X-Forwarded-For` hops to trust (werkzeug's `ProxyFix`); the audit trail records "
        "the client address that results",
    )

    def __post_init__(self) -> None:
        self._check_together()

    def _check_together(self) -> None:
        """Refuse settings that are each fine but do not fit together."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingError(
                "GENERATE_SHARE_TLS_CERT_FILE and GENERATE_SHARE_TLS_KEY_FILE go together: set both "
                "(PEM certificate chain and its private key) for HTTPS, or neither for plain HTTP"
            )
        if self.notify_url and len(self.notify_secret) < MIN_SECRET:
            raise SettingError(
                f"GENERATE_SHARE_NOTIFY_SECRET must be set, at least {MIN_SECRET} characters, when "
                "GENERATE_SHARE_NOTIFY_URL is: receivers check each notification's signature with it "
                "(for example: python3 -c 'import secrets; print(secrets.token_hex(32))')"
            )
        if self.notify_required and not self.notify_url:
            raise SettingError(
                "GENERATE_SHARE_NOTIFY_REQUIRED=true needs GENERATE_SHARE_NOTIFY_URL: "
                "without a receiver no ceremony could ever start"
            )
        if self.notify_required and not set(START_EVENTS) <= self.notify_events:
            raise SettingError(
                "GENERATE_SHARE_NOTIFY_EVENTS must include attempt_started and adoption_started when "
                "GENERATE_SHARE_NOTIFY_REQUIRED=true: a start waits until its event is accepted"
            )


_FIELDS = {f.name.upper(): f for f in dataclasses.fields(Settings)}


def _parse(name: str, value: Any) -> Any:
    """Return one setting's value, or raise SettingError naming its variable."""
    spec = _FIELDS[name]
    try:
        return spec.metadata["parse"](value)
    except ValueError as exc:
        detail = f"; {exc}" if str(exc) else ""
        raise SettingError(f"{PREFIX}{name} must be {spec.metadata['takes']}{detail}") from None


def from_environ(environ: Mapping[str, str] | None = None) -> Settings:
    """Return the settings in ``environ`` (the process environment by default), defaults for the rest."""
    environ = os.environ if environ is None else environ
    values = {n.lower(): _parse(n, environ[PREFIX + n]) for n in _FIELDS if PREFIX + n in environ}
    return Settings(**values)


def from_mapping(mapping: Mapping[str, Any]) -> Settings:
    """Return settings from a test's mapping of names without the prefix (``{"DATA_DIR": ...}``)."""
    unknown = sorted(set(mapping) - set(_FIELDS))
    if unknown:
        raise SettingError(f"{', '.join(PREFIX + n for n in unknown)} is not a setting of the server")
    return Settings(**{n.lower(): _parse(n, v) for n, v in mapping.items()})


def markdown_table() -> str:
    """Return the README's table of settings, one row per variable."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, spec in _FIELDS.items():
        default = spec.default
        shown = spec.metadata["shown"] or (
            str(default).lower() if isinstance(default, bool) else str(default)
        )
        if shown not in ("empty", "unset", "all"):
            shown = f"`{shown}`"
        rows.append(f"| `{PREFIX}{name}` | {shown} | {spec.metadata['doc']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
