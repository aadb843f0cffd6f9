"""/ui/: the ceremony page, served from the static files in app/ui/.

The files are read once, when the app is built, from the installed package
(so a wheel carries them), and served from a fixed table: no path from the
request ever reaches the file system, and there is no build step. Every
page and asset carries a strict Content-Security-Policy (scripts, styles and
requests of this origin only, no inline code, no eval, never in a frame),
no Referer, and (through app/api/lifecycle.py) ``Cache-Control: no-store``
and ``nosniff``.
"""

from importlib import resources

from flask import Blueprint, Response, abort, request

__all__ = ["bp", "CONTENT_SECURITY_POLICY", "HEADERS"]

bp = Blueprint("ui", __name__)

# Only this origin's scripts, styles, images and requests; nothing inline, no
# eval (no 'unsafe-*' anywhere), no form that navigates (a form whose script
# did not load must not put a share in a URL), no <base>, no frame, and
# Trusted Types so that no string can become markup.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}


def _load() -> dict[str, tuple[bytes, str]]:
    """Return every file of app/ui/ by name, with its content type."""
    files = {}
    for entry in resources.files("app.ui").iterdir():
        kind = _TYPES.get(entry.name.rpartition(".")[2])
        if kind is not None and entry.is_file():
            files[entry.name] = (entry.read_bytes(), kind)
    return files


FILES = _load()


@bp.get("/")
def page():
    """Serve the ceremony page."""
    return _serve("index.html")


@bp.get("/<name>")
def asset(name: str):
    """Serve one script, style sheet or image of the page."""
    if name == "index.html":
        abort(404)  # one address for the page
    return _serve(name)


def _serve(name: str) -> Response:
    found = FILES.get(name)
    if found is None:
        abort(404)
    body, kind = found
    return Response(body, content_type=kind, headers=HEADERS)


@bp.after_app_request
def _headers(response: Response) -> Response:
    """Give every reply under /ui (a 404, a 405, a redirect) the page's headers too."""
    path = request.path
    if path == "/ui" or path.startswith("/ui/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
    return response
