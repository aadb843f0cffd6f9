"""Cross-site requests: a web page cannot make a holder's browser write to the service."""

import json
import subprocess

import hvac
import pytest
import requests

from app import create_app
from app.api.common import SETTINGS
from app.errors import StartupError
from helpers import assert_error
from server import Server

# Open mode: the browser checks come before any token, and open mode shows them without one.
pytestmark = pytest.mark.ceremony_auth("open")

V1 = "/v1/sys"
ALLOWED = "https://ops.example.org"
INIT = {"secret_shares": 3, "secret_threshold": 2}
EVIL = {"Origin": "https://evil.example"}

# Every write route, each with a body that would change something if it were read.
WRITES = [
    ("PUT", "/init", INIT),
    ("POST", "/init", INIT),
    ("PUT", "/generate-share/attempt", {}),
    ("POST", "/generate-share/attempt", {}),
    ("DELETE", "/generate-share/attempt", None),
    ("PUT", "/generate-share/update", {"key": "00" * 33}),
    ("PUT", "/adopt/attempt", {"secret_threshold": 2}),
    ("POST", "/adopt/update", {"key": "00" * 33}),
    ("DELETE", "/adopt/attempt", None),
    ("POST", "/shares/verify", {"key": "00" * 33}),
]


@pytest.fixture
def allowing(tmp_path):
    """An app that allows one origin, its test client and its data folder."""
    app = create_app(
        {"DATA_DIR": str(tmp_path / "data"), "ALLOWED_ORIGINS": f"{ALLOWED}, http://127.0.0.1:8080"}
    )
    yield app.test_client(), app.extensions["generate_share_store"].path
    app.extensions["generate_share_store"].close()


def _snapshot(folder) -> dict:
    """Every file of the data folder and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _open(client, method, path, body, headers, form=False):
    data = None if body is None else json.dumps(body)
    kind = "application/x-www-form-urlencoded" if form else "text/plain"  # what a form can send
    return client.open(V1 + path, method=method, data=data, headers=headers, content_type=kind)


@pytest.mark.parametrize(
    "headers",
    [
        EVIL,
        {"Origin": "null"},  # a sandboxed frame, or a page with no-referrer
        {"Origin": "http://127.0.0.1:8080.evil.example"},
        {"Origin": "https://ops.example.org:8443"},
        {"Origin": "http://ops.example.org"},  # the allowed host, but not its scheme
        {"Origin": "http://localhost", "Host": "localhost"},  # same origin as the Host: DNS rebinding
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a page on another port or subdomain of the same site
    ],
    ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()),
)
@pytest.mark.parametrize("initialized", [False, True], ids=["before-init", "after-init"])
def test_a_write_from_a_foreign_page_is_a_403_and_changes_nothing(allowing, headers, initialized):
    client, folder = allowing
    if initialized:
        assert client.put(f"{V1}/init", json=INIT).status_code == 200
    before = _snapshot(folder)
    for method, path, body in WRITES:
        r = _open(client, method, path, body, headers)
        text = assert_error(r, 403, "nothing was changed")
        assert "GENERATE_SHARE_ALLOWED_ORIGINS" in text and "curl" in text
        assert r.headers["X-Request-Id"] and not any(
            h.startswith("Access-Control-") for h in r.headers.keys()
        )
    assert _snapshot(folder) == before  # no state change, no audit line
    assert client.get(f"{V1}/init").get_json() == {"initialized": initialized}
    assert client.get(f"{V1}/generate-share/attempt").status_code == (200 if initialized else 400)
    if initialized:
        assert client.get(f"{V1}/generate-share/attempt").get_json()["started"] is False


def test_the_body_of_a_refused_write_is_never_read(allowing):
    client, folder = allowing
    before = _snapshot(folder)
    for body in (b"{not json", b'{"secret_shares": 3, "pgp_keys": [' + b"1," * 20000 + b"1]}"):
        r = client.put(f"{V1}/init", data=body, headers=EVIL, content_type="application/json")
        assert_error(r, 403, "Origin: https://evil.example")
    assert _snapshot(folder) == before  # a 400 for the body would have been audited


@pytest.mark.parametrize(
    "headers",
    [
        {},  # the CLI, curl, hvac
        {"Origin": ALLOWED},
        {"Origin": "HTTPS://OPS.EXAMPLE.ORG"},
        {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"},
        {"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"},  # allowed: that is what the list is for
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
    ],
    ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "no-headers",
)
@pytest.mark.parametrize("form", [False, True], ids=["text", "form"])
def test_a_write_without_a_foreign_origin_works_as_before(allowing, headers, form):
    client, _ = allowing
    r = _open(client, "PUT", "/init", INIT, headers, form=form)
    assert r.status_code == 200, r.get_json()
    keys = r.get_json()["keys"]
    nonce = _open(client, "POST", "/generate-share/attempt", {}, headers, form=form).get_json()["nonce"]
    for key in keys[:2]:
        last = _open(
            client, "PUT", "/generate-share/update", {"key": key, "nonce": nonce}, headers, form=form
        )
    assert last.get_json()["complete"] is True
    assert _open(client, "DELETE", "/generate-share/attempt", None, headers).status_code == 204


def test_reads_from_a_foreign_page_are_answered_without_cors_headers(client):
    """A read changes nothing, and with no CORS header a browser keeps the reply from the page."""
    assert client.put(f"{V1}/init", json=INIT).status_code == 200
    headers = EVIL | {"Sec-Fetch-Site": "cross-site"}
    for path in ("/init", "/health", "/shares", "/generate-share/attempt", "/adopt/attempt"):
        r = client.get(V1 + path, headers=headers)
        assert r.status_code == 200, path
        assert not any(h.startswith("Access-Control-") for h in r.headers.keys()), path
    assert_error(client.options(f"{V1}/init", headers=EVIL), 405)  # so every CORS preflight fails


def test_without_a_listening_address_no_origin_is_allowed_by_default(client):
    """In process (no socket, so no address of its own) only the settings name a page's origin."""
    for origin in (
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "https://ops.example.org",
        "http://localhost",
    ):
        assert_error(client.put(f"{V1}/init", json=INIT, headers={"Origin": origin}), 403, origin)
    assert client.get(f"{V1}/init").get_json() == {"initialized": False}


def test_the_page_at_the_listening_address_may_write_and_no_other_origin(tmp_path):
    """The service's own page works by default; another port, scheme or name does not, nor rebinding."""
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        port = server.port
        before = _snapshot(server.data_dir)
        refused = [
            {"Origin": f"http://127.0.0.1:{port + 1}"},  # a page on another port of the same host
            {"Origin": f"https://127.0.0.1:{port}"},  # another scheme
            {"Origin": f"http://[::1]:{port}"},  # not the address it listens on
            {"Origin": "http://127.0.0.1"},
            {"Origin": f"http://127.0.0.2:{port}"},
            {"Origin": f"http://sub.localhost:{port}"},
            # DNS rebinding: a name of the attacker's that now points at the service;
            # Host and Origin agree, as a browser would send them.
            {"Origin": f"http://rebound.example:{port}", "Host": f"rebound.example:{port}"},
            {"Origin": f"http://127.0.0.1:{port}.evil.example"},
            {"Origin": ""},
            {"Origin": "null"},
        ]
        for headers in refused:
            r = requests.put(f"{server.url}{V1}/init", json=INIT, headers=headers, timeout=30)
            assert r.status_code == 403, headers
            assert "nothing was changed" in r.json()["errors"][0] and "PUBLIC_URL" in r.json()["errors"][0]
        assert _snapshot(server.data_dir) == before
        page = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
        r = requests.put(f"{server.url}{V1}/init", json=INIT, headers=page, timeout=30)
        assert r.status_code == 200, r.text
        for origin in (f"http://localhost:{port}", f"HTTP://LOCALHOST:{port}"):
            r = requests.put(
                f"{server.url}{V1}/generate-share/attempt", headers={"Origin": origin}, timeout=30
            )
            assert r.status_code in (200, 400), r.text  # past the origin check: started, or already started
            assert "another origin" not in r.text


def test_the_public_url_behind_a_proxy_may_write(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "https://Ceremony.example.org:443/"})
    try:
        assert app.extensions[SETTINGS].public_url == "https://ceremony.example.org"
        client = app.test_client()
        for origin in (
            "http://ceremony.example.org",
            "https://ceremony.example.org:8443",
            "https://example.org",
        ):
            assert_error(client.put(f"{V1}/init", json=INIT, headers={"Origin": origin}), 403, origin)
        r = client.put(f"{V1}/init", json=INIT, headers={"Origin": "https://ceremony.example.org"})
        assert r.status_code == 200
    finally:
        app.extensions["generate_share_store"].close()


@pytest.mark.parametrize(
    "value", ["ceremony.example.org", "https://ceremony.example.org/app", "ftp://x.example", "https://", 42]
)
def test_a_bad_public_url_refuses_to_start_naming_the_variable(tmp_path, value):
    with pytest.raises(StartupError, match="GENERATE_SHARE_PUBLIC_URL must be the address"):
        create_app({"DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": value})
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "value, allowed",
    [
        ("", set()),
        (" , ", set()),
        ("https://OPS.example.org:443", {"https://ops.example.org"}),
        ("http://a.example:80,http://a.example:8080", {"http://a.example", "http://a.example:8080"}),
        ("http://[::1]:8080", {"http://[::1]:8080"}),
        (["https://a.example", "https://b.example"], {"https://a.example", "https://b.example"}),
    ],
)
def test_allowed_origins_are_read_in_the_form_browsers_send(tmp_path, value, allowed):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "ALLOWED_ORIGINS": value})
    try:
        assert app.extensions["generate_share_settings"].allowed_origins == allowed
    finally:
        app.extensions["generate_share_store"].close()


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "null",
        "ops.example.org",
        "https://ops.example.org/",
        "https://ops.example.org/app",
        "https://ops.example.org?x",
        "https://ops.example.org#x",
        "ftp://ops.example.org",
        "https://user@ops.example.org",
        "https://ops.example.org:99999",
        "https://",
        "https://ok.example,https://bad.example/",
        42,
        ["https://ok.example", 1],
    ],
)
def test_a_bad_allowed_origin_refuses_to_start_naming_the_variable(tmp_path, value):
    with pytest.raises(StartupError, match="GENERATE_SHARE_ALLOWED_ORIGINS must be a comma-separated list"):
        create_app({"DATA_DIR": str(tmp_path / "data"), "ALLOWED_ORIGINS": value})
    assert not (tmp_path / "data").exists()  # refused before the data folder is touched


def test_against_gunicorn_curl_and_hvac_work_and_a_foreign_page_does_not(tmp_path):
    env = {"GENERATE_SHARE_ALLOWED_ORIGINS": ALLOWED}
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as server:
        url = server.url + V1
        # A browser form POST from another site: text/plain, the page's Origin.
        before = _snapshot(server.data_dir)
        for headers in (EVIL, {"Sec-Fetch-Site": "cross-site"}):
            r = requests.post(
                f"{url}/init",
                data=json.dumps(INIT),
                headers=headers | {"Content-Type": "text/plain"},
                timeout=30,
            )
            assert r.status_code == 403 and "nothing was changed" in r.json()["errors"][0]
        assert server.get(f"{V1}/init").json() == {"initialized": False}
        assert _snapshot(server.data_dir) == before
        # curl -d: form-urlencoded, no Origin.
        out = subprocess.run(
            ["curl", "-s", "-X", "PUT", f"{url}/init", "-d", json.dumps(INIT)],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        assert len(json.loads(out)["keys"]) == 3
        # hvac: python requests, no Origin.
        status = hvac.Client(url=server.url).adapter.put(f"{V1}/generate-share/attempt")
        assert status["started"] is True
        # The allowed origin's page may write; a read from anywhere is answered.
        r = requests.delete(f"{url}/generate-share/attempt", headers={"Origin": ALLOWED}, timeout=30)
        assert r.status_code == 204
        assert server.get(f"{V1}/health", headers=EVIL).status_code == 200
    assert "Traceback" not in server.output()


def test_gunicorn_refuses_to_start_on_a_bad_allowed_origin(tmp_path):
    env = {"GENERATE_SHARE_ALLOWED_ORIGINS": "https://ops.example.org/app"}
    server = Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env)
    with pytest.raises(RuntimeError, match="GENERATE_SHARE_ALLOWED_ORIGINS must be"):
        server.start()
    server.kill()
