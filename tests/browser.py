"""Debian's Chromium, driven by Playwright, for the tests of the ceremony page (app/ui/).

Playwright's own browser download cannot be had here, so the tests launch
/usr/bin/chromium (the Debian package ``chromium``, installed by ``make test``)
through ``executable_path``. One browser serves a whole test module; every
person in a ceremony gets a context of their own (their own storage, cookies
and downloads), as if on their own machine.

``Watched`` follows one page: every request it makes, every console message,
every uncaught error and every Content-Security-Policy violation, so that a
test can say that none left the service's origin and none went wrong.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GENERATE_SHARE_TEST_CHROMIUM", "/usr/bin/chromium")
#: Where the test run leaves its screenshots (build/ is in .gitignore).
SHOTS = ROOT / "build" / "ui-screenshots"
#: A page that cannot be found answers within this many milliseconds of a load.
TIMEOUT_MS = 20_000
#: Names the browser resolves to loopback, for the DNS-rebinding test.
REBOUND = "rebound.example"

# Quiet: no update checks, no sync, no first-run dialogs, nothing phoning home.
ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--password-store=basic",
    f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
]

# Recorded in every page before its own scripts run (Playwright's init
# scripts are not subject to the page's policy).
_WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""

# Chromium's line for a reply with an error status, which a test that
# provokes a refusal expects.
REFUSED_RESOURCE = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


def launch(playwright: Playwright) -> Browser:
    """Start headless Chromium; fail with the package to install if it is missing."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: install it with 'apt-get install chromium' (make test does)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


@dataclass
class Watched:
    """One person's page, in their own browser context, and what it did."""

    context: BrowserContext
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/ui/") -> Watched:
        """Load a page of the service and wait for its first answer from the API."""
        self.page.goto(self.origin + path)
        # A locator, not wait_for_function: that one evaluates a string, which the page's policy forbids.
        expect(self.page.locator("#service-line")).not_to_contain_text("Connecting")
        return self

    def console_errors(self) -> list[str]:
        """Return every console error and warning, and every uncaught exception."""
        return [text for kind, text in self.console if kind in ("error", "warning")] + self.errors

    def violations(self) -> list[str]:
        """Return the policy violations the page reported."""
        return self.page.evaluate("window.__violations")

    def foreign_requests(self) -> list[str]:
        """Return every request that went anywhere but the service's origin."""
        own = (self.origin + "/", f"blob:{self.origin}/")
        return [url for url in self.requests if not url.startswith(own)]

    def leftovers(self) -> dict:
        """Return what the page could have left behind: storage, cookies, caches, databases, history."""
        found = self.page.evaluate(
            """async () => ({
                local: localStorage.length,
                session: sessionStorage.length,
                cookie: document.cookie,
                caches: (await caches.keys()).length,
                databases: (await indexedDB.databases()).length,
                workers: (await navigator.serviceWorker.getRegistrations()).length,
                history: history.length,
                url: location.href,
            })"""
        )
        found["context_cookies"] = len(self.context.cookies())
        return found

    def shot(self, name: str) -> Path:
        """Save a screenshot of the whole page as build/ui-screenshots/<name>.png."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        """Close the person's context (and every page and download in it)."""
        self.context.close()


def person(browser: Browser, origin: str, **options) -> Watched:
    """Open a new context and page for one person, watching everything it does."""
    options.setdefault("viewport", {"width": 1100, "height": 900})
    context = browser.new_context(accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_WATCH_CSP)
    page = context.new_page()
    watched = Watched(context=context, page=page, origin=origin)
    context.on("request", lambda request: watched.requests.append(request.url))
    page.on("console", lambda message: watched.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    return watched


class ForeignSite:
    """A page on another port of this host that tries to write to the service.

    It sends ``body`` to ``target`` twice, as an attacker's page can without
    any CORS preflight: a no-cors fetch of text/plain, then a form posted as
    text/plain whose one field spells the same JSON.
    """

    def __init__(self, target: str, body: str):
        # A text/plain form writes name=value: {"key": ..., "x": "="} is the same JSON object.
        name, value = body.rstrip().removesuffix("}") + ', "x": "', '"}'
        page = f"""<!doctype html><title>elsewhere</title>
<form id="f" method="post" enctype="text/plain" action="{html.escape(target)}">
<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}"></form>
<script>
fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors", body: {json.dumps(body)},
  headers: {{"Content-Type": "text/plain"}}}}).finally(() => document.getElementById("f").submit());
</script>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ForeignSite:  # noqa: PYI034 (never subclassed)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
