"""generate-share: mint one new Shamir share of an existing master key."""

import logging
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .api import register_api
from .api.common import EXTENSION
from .errors import StartupError
from .service import GenerateShareService
from .store import Store

__all__ = ["create_app"]

DEFAULTS = {
    "DATA_DIR": "./data",
    "REQUIRE_NONCE": False,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "LOG_LEVEL": "INFO",
    "TRUSTED_PROXIES": 0,
    "PROVIDE_AUTOMATIC_OPTIONS": False,
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
    logs.configure(app.config["LOG_LEVEL"])
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # Trust exactly this many X-Forwarded-* hops: the audit trail records
        # the client address that results.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    store = Store.open(app.config["DATA_DIR"])
    app.extensions[EXTENSION] = GenerateShareService(
        store=store, require_nonce=bool(app.config["REQUIRE_NONCE"])
    )
    app.extensions["generate_share_store"] = store
    register_api(app)
    return app


def _check_config(config: Mapping) -> None:
    """Refuse to start on a setting of the wrong kind, naming it."""
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
