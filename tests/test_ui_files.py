"""The ceremony page's files (app/ui/) and the headers they are served with, without a browser."""

import configparser
import fnmatch
import re
from pathlib import Path

import pytest

from app.api import ui

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "app" / "ui"
SERVED = sorted(p.name for p in UI.iterdir() if p.suffix in (".html", ".js", ".css", ".svg"))


def _headers_of_the_page(response) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == ui.CONTENT_SECURITY_POLICY
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_policy_allows_only_this_origin_and_nothing_inline():
    directives = dict(d.split(" ", 1) for d in ui.CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert "unsafe" not in ui.CONTENT_SECURITY_POLICY and "data:" not in ui.CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("name", SERVED)
def test_every_file_is_served_with_the_pages_headers(client, name):
    path = "/ui/" if name == "index.html" else f"/ui/{name}"
    r = client.get(path)
    assert r.status_code == 200
    assert r.data == (UI / name).read_bytes()
    kind = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assert r.headers["Content-Type"].startswith(kind[Path(name).suffix])
    _headers_of_the_page(r)
    head = client.head(path)
    assert head.status_code == 200 and head.data == b""
    _headers_of_the_page(head)


@pytest.mark.parametrize(
    "path", ["/ui/index.html", "/ui/nothing.js", "/ui/__init__.py", "/ui/..%2f__init__.py", "/ui/%2e%2e"]
)
def test_anything_else_under_ui_is_a_404_with_the_pages_headers(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    _headers_of_the_page(r)


def test_ui_without_its_slash_goes_to_the_page(client):
    r = client.get("/ui")
    assert r.status_code == 308 and r.headers["Location"].endswith("/ui/")
    _headers_of_the_page(r)


def test_writes_to_the_page_are_refused(client):
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        r = client.open("/ui/", method=method)
        assert r.status_code == 405
        _headers_of_the_page(r)


def test_no_file_loads_anything_from_elsewhere_or_runs_inline_code():
    for name in SERVED:
        text = (UI / name).read_text()
        # A namespace name is not a request; any other absolute URL would be.
        urls = re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"'<>)]*", text)
        assert [u for u in urls if u != "http://www.w3.org/2000/svg"] == [], name
        if name.endswith(".js"):
            assert not re.search(
                r"\beval\(|new Function|innerHTML|outerHTML|insertAdjacentHTML|document\.write", text
            )
            assert not re.search(
                r"localStorage|sessionStorage|document\.cookie|indexedDB|history\.|location\.hash", text
            )
    page = (UI / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script type="module" src="main.js">']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    assert not re.search(
        r"<(input|textarea|select)\b[^>]*\bname=\"(?!protect\")", page
    )  # no field is ever sent


def test_every_field_for_a_secret_is_a_password_field_with_no_autocomplete_nor_spellcheck():
    page = (UI / "index.html").read_text()
    for field in ("holder-share", "adopt-share", "custody-share", "lead-token", "adopt-cancel-token"):
        tag = re.search(rf'<input id="{field}"[^>]*>', page).group(0)
        assert 'type="password"' in tag and 'autocomplete="off"' in tag and 'spellcheck="false"' in tag, tag
        assert re.search(rf'<label for="{field}">', page), field


def test_every_file_is_package_data_so_a_wheel_carries_it():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["app.ui"].split(",")]
    for name in SERVED:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    assert (UI / "__init__.py").exists()  # a package, so packages = find: takes it


def test_every_module_stays_small():
    for name in SERVED:
        assert len((UI / name).read_text().splitlines()) <= 450, name
