"""The HTTP face: Flask blueprints that parse, call the service, and dump.

Every route answers under ``/v1/sys`` and under the seed's bare ``/sys``; the
ceremony page (app/ui/) under ``/ui/``.
"""

from flask import Flask

from . import adopt, errors, generate_share, init, lifecycle, openapi, oversight, ui

__all__ = ["register_api"]

PREFIXES = {"v1": "/v1/sys", "bare": "/sys"}
BLUEPRINTS = (init.bp, generate_share.bp, adopt.bp, oversight.bp, openapi.bp)


def register_api(app: Flask) -> None:
    """Mount every blueprint under both prefixes, and the error handlers."""
    for label, prefix in PREFIXES.items():
        for bp in BLUEPRINTS:
            app.register_blueprint(bp, url_prefix=prefix, name=f"{label}_{bp.name}")
    app.register_blueprint(ui.bp, url_prefix="/ui")
    lifecycle.register(app)
    errors.register(app)
