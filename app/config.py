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

``setting(default, parse, takes=, doc=)``, with a ``parse`` from app/parsers.py
(or a new one there): the field's name in upper case after
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
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import StartupError
from .notify import EVENTS, MIN_SECRET, START_EVENTS
from .parsers import (
    choice,
    events,
    flag,
    number,
    optional_text,
    origins,
    public_origin,
    rate,
    raw_text,
    text,
    urls,
    whole,
)

__all__ = ["PREFIX", "SettingError", "Settings", "from_environ", "from_mapping", "markdown_table", "setting"]

PREFIX = "GENERATE_SHARE_"


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
    audit_key_file: str = setting(
        "",
        optional_text,
        takes="the path of a file outside the data folder holding the audit key (at least 32 bytes)",
        doc="anchors the audit trail: every recorded head carries its HMAC under this key, so lines cut "
        "from the end with the heads recomputed are caught at start and by `audit verify --key-file`. "
        "Outside the data folder, mode 0400 or 0600 (make it with `openssl rand -hex 32`); once records "
        "are anchored the service refuses to start without it",
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
    connections_per_address: int = setting(
        256,
        whole(1, 100000),
        takes="a whole number of connections, 1 to 100000",
        doc="open connections one client address may hold (behind a reverse proxy, the proxy's); "
        "past it, a 503 and the connection is closed",
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
