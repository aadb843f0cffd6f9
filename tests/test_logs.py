"""No share, key or new share ever reaches a log record, at any level."""

import base64
import contextlib
import io
import json
import logging
import re
import threading

import pytest

V1 = "/v1/sys"


@pytest.fixture
def every_record(caplog):
    """Capture every record of every logger at DEBUG, the service's own included."""
    app_logger = logging.getLogger("app")
    app_logger.addHandler(caplog.handler)
    level = app_logger.level
    app_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    app_logger.removeHandler(caplog.handler)
    app_logger.setLevel(level)


def test_a_whole_ceremony_with_errors_logs_no_key_material(client, keyring, every_record):
    init = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).get_json()
    keys, lead = init["keys"], {"X-Vault-Token": init["root_token"]}
    pgp_key = base64.b64encode(keyring.public_binary(keyring.RSA)).decode()
    start = client.put(f"{V1}/generate-share/attempt", json={"pgp_key": pgp_key}, headers=lead)
    nonce = start.get_json()["nonce"]
    wrong = bytearray.fromhex(keys[2])
    wrong[3] ^= 1
    # A duplicate, a short share, then a failed reconstruction.
    for key in (keys[0], keys[0], keys[1][:-2], keys[1], wrong.hex()):
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    client.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": "wrong"})
    for key in keys[:3]:
        last = client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce}).get_json()
    assert last["complete"] is True
    new = keyring.decrypt(base64.b64decode(last["key_base64"]))
    for key in (keys[0], new.hex(), wrong.hex()):
        client.put(f"{V1}/shares/verify", json={"key": key})
    text = every_record.text + "".join(str(r.__dict__) for r in every_record.records)
    assert "request" in text  # the access log was captured
    for secret in [*keys, new.hex(), wrong.hex()]:
        raw = bytes.fromhex(secret)
        for form in (secret, secret[:-2], secret.upper(), base64.b64encode(raw).decode(), repr(raw)[2:-1]):
            assert form not in text
    assert init["root_token"] not in text and nonce not in text


@contextlib.contextmanager
def service_only():
    """Make the service's own log handler the only one, writing to a string buffer; yield the buffer."""
    from app import logs

    logs.configure("INFO")
    app_logger = logging.getLogger("app")
    (handler,) = [h for h in app_logger.handlers if getattr(h, "_generate_share", False)]
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    # pytest's capture handlers listen on "app" during a test: the service alone, as in production.
    others = app_logger.handlers[:]
    app_logger.handlers[:] = [handler]
    try:
        yield buffer
    finally:
        app_logger.handlers[:] = others
        handler.setStream(old)


FIELDS = {"method": "GET", "path": "/v1/sys/health", "status": 200, "duration_ms": 0.5, "request_id": "r1"}


def test_the_access_line_skips_the_log_record_but_not_a_byte(monkeypatch):
    from app import logs

    access = logging.getLogger("app.access")
    expected = json.loads(
        logs.JsonFormatter().format(
            logging.makeLogRecord(
                {"name": "app.access", "levelno": 20, "levelname": "INFO", "msg": "request", **FIELDS}
            )
        )
    )

    def no_record(*args, **kwargs):
        raise AssertionError("the access line built a LogRecord")

    monkeypatch.setattr(logging.Logger, "makeRecord", no_record)
    with service_only() as stream:
        logs.access(access, "request", FIELDS)
    (line,) = stream.getvalue().splitlines()
    written = json.loads(line)
    assert written | {"time": ""} == expected | {"time": ""}
    assert list(written) == list(expected)  # the same keys in the same order
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", written["time"])


def test_access_lines_from_many_threads_stay_whole_and_in_order():
    from app import logs

    access = logging.getLogger("app.access")

    def write(thread: int) -> None:
        for n in range(200):
            logs.access(access, "request", {"thread": thread, "n": n, "path": "/" + "x" * 500})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    with service_only() as stream:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 8 * 200
    for thread in range(8):
        assert [line["n"] for line in lines if line["thread"] == thread] == list(range(200))


def test_another_listener_still_gets_a_record(caplog):
    from app import logs

    access = logging.getLogger("app.access")
    with service_only() as stream:
        logging.getLogger("app").addHandler(caplog.handler)
        logs.access(access, "request", FIELDS)
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    assert record.path == "/v1/sys/health" and record.status == 200
    assert json.loads(stream.getvalue())["request_id"] == "r1"  # and the line is still written
