"""GET /v1/sys/metrics: the public numbers after a ceremony, replies by status class, nothing secret."""

import base64

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from gpgtools import Keyring
from helpers import assert_error
from server import Server

V1 = "/v1/sys"
PROMETHEUS = f"{V1}/metrics?format=prometheus"


def scrape(text: str) -> dict:
    """Return {(name, labels as a sorted tuple): value} from Prometheus' text format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gauges(client) -> dict:
    """Return the unlabelled gauges by name, without the prefix."""
    r = client.get(PROMETHEUS)
    assert r.status_code == 200
    return {
        name.removeprefix("generate_share_"): value
        for (name, labels), value in scrape(r.get_data(as_text=True)).items()
        if not labels
    }


def requests_by_class(client) -> dict:
    """Return generate_share_requests_total by class."""
    found = scrape(client.get(PROMETHEUS).get_data(as_text=True))
    return {
        dict(labels)["class"]: v
        for (name, labels), v in found.items()
        if name == "generate_share_requests_total"
    }


def test_after_a_ceremony_the_gauges_say_what_happened(client):
    before = gauges(client)
    assert before["initialized"] == 0 and before["shares_issued"] == 0 and before["audit_lines"] == 0
    init = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3}).get_json()
    keys, lead = init["keys"], {"X-Vault-Token": init["root_token"]}
    nonce = client.put(f"{V1}/generate-share/attempt", headers=lead).get_json()["nonce"]
    client.put(f"{V1}/generate-share/update", json={"key": keys[0], "nonce": nonce})
    during = gauges(client)
    assert during["attempt_in_progress"] == 1 and during["attempt_progress"] == 1
    for key in keys[1:3]:
        client.put(f"{V1}/generate-share/update", json={"key": key, "nonce": nonce})
    after = gauges(client)
    head = client.get(f"{V1}/shares").get_json()["audit_head"]["seq"]
    assert head == 5  # init, attempt_started, two share_accepted, share_issued
    assert after == {
        "initialized": 1,
        "threshold": 3,
        "share_limit": 255,
        "shares_issued": 6,
        "attempt_in_progress": 0,
        "attempt_progress": 0,
        "adoption_in_progress": 0,
        "audit_lines": head,
        "data_writable": 1,
        "low_disk": 0,
        "notify_backlog": 0,
    }
    client.put(
        f"{V1}/adopt/attempt", json={"secret_threshold": 2}, headers=lead
    )  # refused: initialized (one more line)
    assert gauges(client)["audit_lines"] == head + 1


def test_an_adoption_in_progress_shows(client):
    client.put(f"{V1}/adopt/attempt", json={"secret_threshold": 2, "required": 3})
    assert gauges(client)["adoption_in_progress"] == 1


def test_requests_are_counted_by_status_class(client):
    assert requests_by_class(client) == {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    # The first scrape (2xx) is counted once its reply is made: the next one shows it.
    client.get(f"{V1}/health")  # 501: not initialized
    client.get(f"{V1}/no-such-path")  # 404
    client.put(f"{V1}/init", data="{not json")  # 400
    client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})  # 200
    client.head(f"{V1}/health")  # 200
    assert requests_by_class(client) == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 2, "5xx": 1}


def test_each_app_counts_its_own_requests(tmp_path, client):
    other = create_app({"DATA_DIR": str(tmp_path / "other")})
    try:
        for _ in range(3):
            other.test_client().get(f"{V1}/shares")  # 400: not initialized
        assert requests_by_class(client)["4xx"] == 0
        assert requests_by_class(other.test_client())["4xx"] == 3
    finally:
        other.extensions["generate_share_store"].close()


def test_without_a_format_the_metrics_come_in_vaults_json_shape(client):
    client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2})
    r = client.get(f"{V1}/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = r.get_json()
    assert set(body) == {"Timestamp", "Gauges", "Counters", "Samples"}
    gauges_ = {g["Name"]: g["Value"] for g in body["Gauges"]}
    assert gauges_["generate_share_shares_issued"] == 3 and gauges_["generate_share_threshold"] == 2
    counters = {c["Labels"]["class"]: c["Count"] for c in body["Counters"]}
    assert counters["2xx"] == 1 and all(
        c["Name"] == "generate_share_requests_total" for c in body["Counters"]
    )


@pytest.mark.parametrize("form", ["json", "PROMETHEUS", "text", "openmetrics"])
def test_an_unknown_format_is_refused_with_the_formats_that_exist(client, form):
    assert_error(client.get(f"{V1}/metrics?format={form}"), 400, "format must be prometheus")


def test_the_metrics_hold_no_nonce_token_fingerprint_hash_or_address(tmp_path, keyring):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CEREMONY_AUTH": "token"})
    try:
        client = app.test_client()
        init = client.put(f"{V1}/init", json={"secret_shares": 3, "secret_threshold": 2}).get_json()
        lead = {"X-Vault-Token": init["root_token"]}
        pgp = {"pgp_key": base64.b64encode(keyring.public_binary(Keyring.ECC)).decode()}
        started = client.put(f"{V1}/generate-share/attempt", json=pgp, headers=lead).get_json()
        assert started["pgp_fingerprint"] == keyring.fingerprint(Keyring.ECC).lower()
        client.put(f"{V1}/generate-share/update", json={"key": init["keys"][0], "nonce": started["nonce"]})
        head = client.get(f"{V1}/shares").get_json()["audit_head"]["hash"]
        secrets = [
            init["root_token"],
            started["nonce"],
            head,
            "127.0.0.1",
            *init["keys"],
            *init["keys_base64"],
        ]
        secrets += [
            started[k] for k in ("pgp_fingerprint", "pgp_subkey_fingerprint", "otp") if started.get(k)
        ]
        for text in (
            client.get(PROMETHEUS).get_data(as_text=True),
            client.get(f"{V1}/metrics").get_data(as_text=True),
        ):
            for secret in secrets:
                assert secret.lower() not in text.lower()
        assert gauges(client)["attempt_progress"] == 1
    finally:
        app.extensions["generate_share_store"].close()


def test_the_real_gunicorn_serves_prometheus_text(tmp_path):
    with Server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        assert server.put(f"{V1}/init", json={"secret_shares": 4, "secret_threshold": 2}).status_code == 200
        r = server.get(PROMETHEUS)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert r.headers["Cache-Control"] == "no-store"
        found = scrape(r.text)
        assert found[("generate_share_shares_issued", ())] == 4
        assert found[("generate_share_requests_total", (("class", "2xx"),))] == 1  # the init
        assert server.get(f"{V1}/metrics").json()["Gauges"]
    assert "Traceback" not in server.output()
