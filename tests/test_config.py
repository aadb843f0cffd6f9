"""app/config.py: one checked, frozen settings object; bad values refuse the start in one sentence."""

import dataclasses
import re
from pathlib import Path

import pytest

from app import config
from app.config import SettingError, Settings
from app.notify import EVENTS
from server import ROOT, Server

# -- against the real gunicorn ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "takes"),
    [
        ("GENERATE_SHARE_REQUEST_DEADLINE", "abc", "a number of seconds, above 0 and at most 3600"),
        ("GENERATE_SHARE_REQUEST_DEADLINE", "-3", "a number of seconds, above 0 and at most 3600"),
        ("GENERATE_SHARE_THREADS", "abc", "a whole number of threads, 1 to 1024"),
        ("GENERATE_SHARE_MAX_CONTENT_LENGTH", "10", "a whole number of bytes, at least 1024"),
        ("GENERATE_SHARE_TRUSTED_PROXIES", "11", "a whole number of proxy hops, 0 to 10"),
    ],
)
def test_a_bad_value_stops_gunicorn_in_one_sentence_naming_the_variable(tmp_path, variable, value, takes):
    server = Server(tmp_path / "data", tmp_path / "g.log", env={variable: value})
    server.spawn()
    try:
        status = server.wait()
    finally:
        server.kill()  # a server that wrongly started must not outlive the test
    assert status == 4  # gunicorn.conf.py's REFUSED, which the unit does not restart on
    assert server.output() == f"generate-share: refusing to start: {variable} must be {takes}\n"
    assert not (tmp_path / "data").exists()  # refused before anything listened or touched the folder


def test_the_server_reads_the_environment_in_one_module():
    readers = re.compile(r"\bos\.environb?\b|\bgetenv\b|from_prefixed_env|from os import")
    server = [p for p in (ROOT / "app").rglob("*.py") if "cli" not in p.relative_to(ROOT / "app").parts]
    server += [ROOT / "gunicorn.conf.py", ROOT / "wsgi.py"]
    found = sorted(str(p.relative_to(ROOT)) for p in server if readers.search(p.read_text()))
    assert found == ["app/config.py"]


# -- parsing ---------------------------------------------------------------------------


def test_the_defaults_need_no_environment():
    settings = config.from_environ({})
    assert settings == Settings()
    assert settings.ceremony_auth == "token" and settings.rate_limit == "20/second"
    assert settings.request_deadline == 10.0 and settings.threads == 8 and settings.notify_events == EVENTS


def test_each_kind_of_value_is_read_from_its_text():
    settings = config.from_environ(
        {
            "GENERATE_SHARE_REQUEST_DEADLINE": "2.5",
            "GENERATE_SHARE_THREADS": " 16 ",
            "GENERATE_SHARE_REQUIRE_NONCE": "TRUE",
            "GENERATE_SHARE_CEREMONY_AUTH": "Open",
            "GENERATE_SHARE_RATE_LIMIT": "off",
            "GENERATE_SHARE_LOG_LEVEL": "debug",
            "GENERATE_SHARE_ALLOWED_ORIGINS": "https://OPS.example.org:443,http://a.example:8080",
            "GENERATE_SHARE_NOTIFY_EVENTS": "init, refused",
            "GENERATE_SHARE_TOKEN": "gs.not-a-server-setting",  # the CLI's: ignored here
        }
    )
    assert settings.request_deadline == 2.5 and settings.threads == 16 and settings.require_nonce is True
    assert settings.ceremony_auth == "open" and settings.rate_limit is None and settings.log_level == "DEBUG"
    assert settings.allowed_origins == {"https://ops.example.org", "http://a.example:8080"}
    assert settings.notify_events == {"init", "refused"}


def test_settings_are_frozen_and_never_show_the_notify_secret():
    secret = "a-long-webhook-secret-0123456789"
    settings = config.from_mapping({"NOTIFY_URL": "https://hooks.example/x", "NOTIFY_SECRET": secret})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threads = 1  # type: ignore[misc]
    assert secret not in repr(settings)


@pytest.mark.parametrize(
    ("mapping", "sentence"),
    [
        ({"REQUIRE_NONCE": "maybe"}, "GENERATE_SHARE_REQUIRE_NONCE must be true or false"),
        ({"THREADS": 0}, "GENERATE_SHARE_THREADS must be a whole number of threads, 1 to 1024"),
        ({"THREADS": True}, "GENERATE_SHARE_THREADS must be a whole number of threads, 1 to 1024"),
        ({"REQUEST_DEADLINE": "nan"}, "GENERATE_SHARE_REQUEST_DEADLINE must be a number of seconds"),
        ({"REQUEST_DEADLINE": "inf"}, "GENERATE_SHARE_REQUEST_DEADLINE must be a number of seconds"),
        ({"RATE_LIMIT": "lots"}, "GENERATE_SHARE_RATE_LIMIT must be a rate such as 20/second"),
        (
            {"TLS_CERT_FILE": "/etc/hostname"},
            "GENERATE_SHARE_TLS_CERT_FILE and GENERATE_SHARE_TLS_KEY_FILE go",
        ),
        ({"BIND": " "}, "GENERATE_SHARE_BIND must be an address"),
        ({"THREAD": 4}, "GENERATE_SHARE_THREAD is not a setting of the server"),
    ],
)
def test_a_bad_value_is_refused_in_one_sentence(mapping, sentence):
    with pytest.raises(SettingError) as refused:
        config.from_mapping(mapping)
    assert str(refused.value).startswith(sentence) and "\n" not in str(refused.value)


def test_a_bad_value_in_the_environment_names_its_variable():
    with pytest.raises(SettingError, match="^GENERATE_SHARE_THREADS must be a whole number"):
        config.from_environ({"GENERATE_SHARE_THREADS": "abc"})


# -- the deployment guide ------------------------------------------------------------------------


def test_the_deployment_guides_settings_table_is_the_one_config_prints():
    guide = (Path(ROOT) / "docs" / "deployment.md").read_text()
    assert config.markdown_table() in guide, (
        "paste the output of `python -m app.config` into docs/deployment.md"
    )
    documented = set(re.findall(r"`(GENERATE_SHARE_[A-Z_]+)`", config.markdown_table()))
    assert documented == {config.PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
