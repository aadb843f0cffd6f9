"""The service object: it refuses on its own state before any PGP work, and names the subkey.

These tests build the service with a stand-in for ``app.pgp`` that records
each call: they check the order of the service's steps, not PGP (the real gpg
runs in test_pgp.py and test_pgp_ceremony.py).
"""

import json
from dataclasses import dataclass

import pytest

from app.errors import BadRequest, Conflict, NotInitialized
from app.records import Store
from app.service import GenerateShareService

PRIMARY = "aa" * 20
SUBKEY = "bb" * 20


@dataclass
class StandInKey:
    fingerprint: str
    subkey_fingerprint: str
    closed: bool = False

    def close(self) -> None:
        self.closed = True


class StandInPGP:
    """Records every call the service makes to its PGP face."""

    class PGPError(Exception):
        pass

    def __init__(self):
        self.calls: list[str] = []
        self.keys: list[StandInKey] = []
        self.while_loading = None  # runs inside load_public_key, as if another request ran meanwhile

    def load_public_key(self, data: bytes) -> StandInKey:
        self.calls.append("load_public_key")
        if self.while_loading is not None:
            self.while_loading()
        key = StandInKey(PRIMARY, SUBKEY)
        self.keys.append(key)
        return key

    def encrypt(self, plaintext: bytes, key: StandInKey) -> bytes:
        self.calls.append("encrypt")
        return b"sealed to " + key.subkey_fingerprint.encode()


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def pgp():
    return StandInPGP()


@pytest.fixture
def service(store, pgp):
    return GenerateShareService(store=store, pgp=pgp)


def trail(store) -> list[dict]:
    return [json.loads(line) for line in (store.path / "audit.log").read_bytes().splitlines()]


def messages(caught) -> str:
    return " ".join(caught.value.messages)


# -- state before PGP ---------------------------------------------------------


def test_start_with_an_attempt_in_progress_runs_no_pgp(service, pgp):
    service.initialize(5, 3)
    service.start()
    with pytest.raises(Conflict) as caught:
        service.start(pgp_key=b"\xa3 a bogus or very expensive key")
    assert "already in progress" in messages(caught)
    assert pgp.calls == []


def test_start_on_an_uninitialized_service_runs_no_pgp(service, pgp):
    with pytest.raises(NotInitialized):
        service.start(pgp_key=b"any key")
    assert pgp.calls == []


def test_start_past_the_share_limit_runs_no_pgp(service, pgp):
    service.initialize(3, 2, share_limit=3)
    with pytest.raises(Conflict) as caught:
        service.start(pgp_key=b"any key")
    assert "share limit of 3 was reached" in messages(caught)
    assert pgp.calls == []


def test_initialize_an_initialized_service_runs_no_pgp(service, pgp):
    service.initialize(3, 2)
    with pytest.raises(Conflict, match="already initialized"):
        service.initialize(2, 2, pgp_keys=[b"one", b"two"])
    assert pgp.calls == []


def test_initialize_during_an_adoption_runs_no_pgp(service, pgp):
    service.start_adoption(2)
    with pytest.raises(Conflict, match="an adoption is in progress"):
        service.initialize(2, 2, pgp_keys=[b"one", b"two"])
    assert pgp.calls == []


def test_initialize_with_the_wrong_number_of_keys_runs_no_pgp(service, pgp):
    with pytest.raises(BadRequest, match="pgp_keys has 2 entries"):
        service.initialize(3, 2, pgp_keys=[b"one", b"two"])
    assert pgp.calls == []


def test_start_checks_again_after_loading_the_key(service, pgp):
    service.initialize(5, 3)
    # Another start wins while gpg reads this one's key.
    pgp.while_loading = service.start
    with pytest.raises(Conflict, match="already in progress"):
        service.start(pgp_key=b"a key")
    assert service.status().pgp_fingerprint == ""  # the winner's attempt stands
    assert [k.closed for k in pgp.keys] == [True]  # the loser's key keeps no GnuPG home


def test_initialize_checks_again_after_loading_the_keys(service, pgp, store):
    # Another init wins while gpg reads the first of this one's keys.
    pgp.while_loading = lambda: store.state is None and service.initialize(3, 2)
    with pytest.raises(Conflict, match="already initialized"):
        service.initialize(2, 2, pgp_keys=[b"one", b"two"])
    assert len(store.state.shares) == 3  # the winner's init stands
    assert pgp.keys and all(k.closed for k in pgp.keys)


# -- the encryption subkey is named next to the primary key -------------------


def test_the_subkey_is_named_in_every_reply_and_trail_line_of_an_attempt(service, pgp, store):
    shares = [k.hex() for k in service.initialize(5, 3).keys]
    started = service.start(pgp_key=b"a key")
    assert (started.pgp_fingerprint, started.pgp_subkey_fingerprint) == (PRIMARY, SUBKEY)
    assert service.status().pgp_subkey_fingerprint == SUBKEY
    for share in shares[:3]:
        done = service.update(share, started.nonce)
    assert done.complete and (done.pgp_fingerprint, done.pgp_subkey_fingerprint) == (PRIMARY, SUBKEY)
    assert done.key == b"sealed to " + SUBKEY.encode()
    lines = {line["event"]: line for line in trail(store)}
    for event in ("attempt_started", "share_issued"):
        assert (lines[event]["pgp_fingerprint"], lines[event]["pgp_subkey_fingerprint"]) == (PRIMARY, SUBKEY)


def test_without_a_key_the_subkey_is_empty(service, store):
    shares = [k.hex() for k in service.initialize(5, 3).keys]
    started = service.start()
    assert started.pgp_subkey_fingerprint == ""
    for share in shares[:3]:
        done = service.update(share, started.nonce)
    assert done.complete and done.pgp_subkey_fingerprint == ""
    lines = {line["event"]: line for line in trail(store)}
    assert lines["attempt_started"]["pgp_subkey_fingerprint"] == ""
    assert lines["share_issued"]["pgp_subkey_fingerprint"] == ""
