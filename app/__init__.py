"""generate-share: mint one new Shamir share of an existing master key."""

import os
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, logs, notify, pgp
from .anchor import load_audit_key
from .api import limits, register_api
from .api.common import EXTENSION, SETTINGS
from .records import Store
from .service import GenerateShareService

__all__ = ["create_app"]

#: Settings a test session lays under every ``test_config`` (tests/conftest.py); empty otherwise.
TEST_DEFAULTS: dict = {}


def create_app(test_config: Mapping | None = None) -> Flask:
    """Build the app from the GENERATE_SHARE_* variables, or from ``test_config`` (app/config.py)."""
    if test_config is None:
        settings = config.from_environ()
    else:
        settings = config.from_mapping({**TEST_DEFAULTS, **test_config})
    app = Flask(__name__)
    # Every reply is JSON: no automatic HTML answer to OPTIONS (405 instead),
    # and no HTML redirect for a doubled slash (404 instead).
    app.url_map.merge_slashes = False
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.extensions[SETTINGS] = settings
    logs.configure(settings.log_level)
    proxies = settings.trusted_proxies
    if proxies:
        # Trust exactly this many X-Forwarded-* hops: the audit trail records
        # the client address that results.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    store = Store.open(
        settings.data_dir, audit_key=load_audit_key(settings.audit_key_file, settings.data_dir)
    )
    # Temporary GnuPG homes live in the data folder, which the store's lock makes
    # this process's alone: homes a killed worker left there are removed now.
    pgp.set_home_root(os.path.join(store.path, "gnupg"))
    notices = notify.Settings(
        urls=settings.notify_url,
        secret=settings.notify_secret.encode(),
        events=settings.notify_events,
        required=settings.notify_required,
    )
    notifier = notify.Notifier.attach(store, notices)
    service = app.extensions[EXTENSION] = GenerateShareService(
        store=store,
        notifier=notifier,
        require_nonce=settings.require_nonce,
        ceremony_auth=settings.ceremony_auth,
        min_free=settings.min_free_mb * 1024 * 1024,
    )
    # The store as the service writes it (app.trail.Trail): closing it writes what it holds first.
    app.extensions["generate_share_store"] = service.trail
    app.extensions["generate_share_notifier"] = notifier
    register_api(app)
    limits.register(app)
    return app
