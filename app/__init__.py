"""generate-share: mint one new Shamir share of an existing master key."""

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs, notify, pgp
from .api import limits, register_api
from .api.common import EXTENSION
from .errors import StartupError
from .records import Store
from .service import GenerateShareService
from .token import AUTH_MODES

__all__ = ["create_app"]

DEFAULTS = {
    "DATA_DIR": "./data",
    "REQUIRE_NONCE": False,
    # "token": an operator token steers ceremonies, nonces are required, and a
    # new share without a PGP key comes XORed with a one-time pad. "open": the
    # seed's behaviour, for closed networks only.
    "CEREMONY_AUTH": "token",
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "LOG_LEVEL": "INFO",
    "TRUSTED_PROXIES": 0,
    "PROVIDE_AUTOMATIC_OPTIONS": False,
    # Web origins whose pages may send writes (see app/api/lifecycle.py): none.
    "ALLOWED_ORIGINS": "",
    # Webhook receivers for every audit event (app/notify.py): none.
    "NOTIFY_URL": "",
    "NOTIFY_SECRET": "",
    "NOTIFY_EVENTS": "",
    "NOTIFY_REQUIRED": False,
    # Writes per client before 429s (app/api/limits.py); "off" disables the limit.
    "RATE_LIMIT": limits.DEFAULT,
    # Below this many MB free in the data folder, refusals are only counted (app/refusals.py); 0: never.
    "MIN_FREE_MB": 64,
}


def create_app(test_config: Mapping | None = None) -> Flask:
    """Build the app: defaults, then GENERATE_SHARE_* variables or ``test_config``."""
    app = Flask(__name__)
    # Every reply is JSON: no automatic HTML answer to OPTIONS (405 instead),
    # and no HTML redirect for a doubled slash (404 instead).
    app.url_map.merge_slashes = False
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("GENERATE_SHARE")
    else:
        app.config.from_mapping(test_config)
    _check_config(app.config)
    notices = notify.settings(app.config)
    logs.configure(app.config["LOG_LEVEL"])
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # Trust exactly this many X-Forwarded-* hops: the audit trail records
        # the client address that results.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    store = Store.open(app.config["DATA_DIR"])
    # Temporary GnuPG homes live in the data folder, which the store's lock makes
    # this process's alone: homes a killed worker left there are removed now.
    pgp.set_home_root(os.path.join(store.path, "gnupg"))
    notifier = notify.Notifier.attach(store, notices)
    app.extensions[EXTENSION] = GenerateShareService(
        store=store,
        notifier=notifier,
        require_nonce=bool(app.config["REQUIRE_NONCE"]),
        ceremony_auth=app.config["CEREMONY_AUTH"],
        min_free=app.config["MIN_FREE_MB"] * 1024 * 1024,
    )
    app.extensions["generate_share_store"] = store
    app.extensions["generate_share_notifier"] = notifier
    register_api(app)
    limits.register(app)
    return app


def _check_config(config: Mapping) -> None:
    """Refuse to start on a setting of the wrong kind, naming it."""
    try:
        config["RATE_LIMIT"] = limits.check(config["RATE_LIMIT"])
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    free = config["MIN_FREE_MB"]
    if type(free) is not int or free < 0:
        raise StartupError(
            "GENERATE_SHARE_MIN_FREE_MB must be a whole number of megabytes (0 turns the low-disk guard off)"
        )
    limit = config["MAX_CONTENT_LENGTH"]
    if type(limit) is not int or limit < 1024:
        raise StartupError("GENERATE_SHARE_MAX_CONTENT_LENGTH must be a whole number of bytes, at least 1024")
    if not isinstance(config["DATA_DIR"], str) or not config["DATA_DIR"]:
        raise StartupError("GENERATE_SHARE_DATA_DIR must be a folder path")
    level = config["LOG_LEVEL"]
    if not isinstance(level, str) or level.upper() not in logging.getLevelNamesMapping():
        raise StartupError("GENERATE_SHARE_LOG_LEVEL must be a level name such as INFO or DEBUG")
    config["LOG_LEVEL"] = level.upper()
    proxies = config["TRUSTED_PROXIES"]
    if type(proxies) is not int or not 0 <= proxies <= 10:
        raise StartupError("GENERATE_SHARE_TRUSTED_PROXIES must be a whole number of proxy hops, 0 to 10")
    if not isinstance(config["REQUIRE_NONCE"], (bool, int)):
        raise StartupError("GENERATE_SHARE_REQUIRE_NONCE must be true or false")
    config["ALLOWED_ORIGINS"] = _origins(config["ALLOWED_ORIGINS"])
    auth = config["CEREMONY_AUTH"]
    if not isinstance(auth, str) or auth.strip().lower() not in AUTH_MODES:
        raise StartupError(
            "GENERATE_SHARE_CEREMONY_AUTH must be token (the default: an operator token steers "
            "each ceremony) or open (the seed's behaviour, without a token, for closed networks)"
        )
    config["CEREMONY_AUTH"] = auth.strip().lower()


_ORIGINS_HELP = (
    "GENERATE_SHARE_ALLOWED_ORIGINS must be a comma-separated list of web origins, each "
    "scheme://host[:port] with no path, such as https://ops.example.org,http://127.0.0.1:8080"
)


def _origins(value) -> frozenset[str]:
    """Return the allowed origins in the form a browser sends them, or refuse to start."""
    if isinstance(value, str):
        entries = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        entries = list(value)
    else:
        raise StartupError(_ORIGINS_HELP)
    origins = set()
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
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
            raise StartupError(f"{_ORIGINS_HELP}; {entry!r} is not one")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        # A browser leaves out the scheme's default port and writes the host in
        # lowercase (urlsplit lowercases it): compare in that form.
        default = 443 if parts.scheme == "https" else 80
        origins.add(f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else ""))
    return frozenset(origins)
