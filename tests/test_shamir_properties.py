"""Properties, with hypothesis: the Shamir core, the share decoder, and the API's parser.

Every example count is bounded (and deadline=None, since a 2-core machine under
load is slow now and then), so that the file runs in a few seconds.
"""

import base64
import json
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app import create_app
from app.encoding import decode_share
from app.errors import BadRequest
from app.shamir import ShamirError, combine, interpolate, split

V1 = "/v1/sys"
CORE = settings(max_examples=60, deadline=None, database=None)
API = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

secrets_ = st.binary(min_size=1, max_size=64)


@st.composite
def splits(draw, max_parts: int = 20):
    """Draw (secret, threshold, shares) with distinct random x coordinates."""
    secret = draw(secrets_)
    parts = draw(st.integers(2, max_parts))
    threshold = draw(st.integers(2, parts))
    xs = draw(st.lists(st.integers(1, 255), min_size=parts, max_size=parts, unique=True))
    return secret, threshold, split(secret, parts, threshold, xs=xs)


@st.composite
def quorums(draw, max_parts: int = 20):
    """Draw (secret, threshold, all shares, one subset of exactly threshold shares)."""
    secret, threshold, shares = draw(splits(max_parts))
    subset = draw(st.permutations(shares))[:threshold]
    return secret, threshold, shares, subset


# -- the Shamir core ----------------------------------------------------------


@CORE
@given(splits(), st.data())
def test_every_sampled_threshold_subset_combines_to_the_secret(split_, data):
    secret, threshold, shares = split_
    for _ in range(5):  # a few subsets per split, of the threshold or more
        size = data.draw(st.integers(threshold, len(shares)), label="size")
        subset = data.draw(st.permutations(shares), label="order")[:size]
        assert combine(subset) == secret
        assert combine(subset, threshold) == secret


@CORE
@given(quorums())
def test_interpolating_at_an_issued_x_gives_that_share(quorum):
    _secret, _threshold, shares, subset = quorum
    for share in shares:
        assert interpolate(subset, share[-1]) == share


@CORE
@given(quorums(), st.data())
def test_a_new_share_is_as_good_as_an_old_one(quorum, data):
    secret, threshold, shares, subset = quorum
    used = {s[-1] for s in shares}
    x = data.draw(st.integers(1, 255).filter(lambda x: x not in used), label="x")
    new = interpolate(subset, x)
    assert new[-1] == x and len(new) == len(secret) + 1
    assert combine([new, *subset[: threshold - 1]]) == secret


@CORE
@given(quorums(), st.data())
def test_one_flipped_byte_changes_the_result_at_that_byte(quorum, data):
    secret, _threshold, _shares, subset = quorum
    which = data.draw(st.integers(0, len(subset) - 1), label="share")
    where = data.draw(st.integers(0, len(secret) - 1), label="y byte")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(subset[which])
    tampered[where] ^= mask
    result = combine([*subset[:which], bytes(tampered), *subset[which + 1 :]])
    assert result != secret
    # Each Lagrange weight is nonzero, so the error lands on that byte alone.
    assert [i for i in range(len(secret)) if result[i] != secret[i]] == [where]


@CORE
@given(quorums(), st.data())
def test_a_duplicate_x_is_refused(quorum, data):
    _secret, _threshold, _shares, subset = quorum
    original = data.draw(st.sampled_from(subset), label="copied")
    twin = bytearray(data.draw(st.binary(min_size=len(original) - 1, max_size=len(original) - 1)))
    twin.append(original[-1])
    with pytest.raises(ShamirError, match="distinct x"):
        combine([*subset, bytes(twin)])
    with pytest.raises(ShamirError, match="distinct x"):
        interpolate([*subset, bytes(twin)], 1)


@CORE
@given(quorums(), st.integers(-3, 3).filter(bool), st.data())
def test_mixed_lengths_are_refused(quorum, delta, data):
    _secret, _threshold, _shares, subset = quorum
    which = data.draw(st.integers(0, len(subset) - 1), label="share")
    share = subset[which]
    assume(len(share) + delta >= 1)
    other = (share[:-1] + b"\x01" * delta)[: len(share) - 1 + delta] + share[-1:] if delta else share
    assume(len(other) != len(share))
    mixed = [*subset[:which], other, *subset[which + 1 :]]
    with pytest.raises(ShamirError):
        combine(mixed)
    with pytest.raises(ShamirError):
        interpolate(mixed, 1)


# -- the share decoder --------------------------------------------------------

# Characters that have broken parsers before: lone surrogates (no UTF-8 for
# them), NUL, non-ASCII digits and spaces that str.strip() or int() accept.
TRICKY = ["\ud800", "\udfff", "\x00", "\u0660", "\u2003", "\u00e9", "\ufeff", "="]
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=120),  # surrogates included, though rare
    st.tuples(st.text(max_size=40), st.sampled_from(TRICKY), st.text(max_size=40)).map("".join),
)
hexish = st.text(string.hexdigits + " \n\t", max_size=100)
b64ish = st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
lengths = st.integers(1, 65).flatmap(lambda lo: st.integers(lo, lo + 2).map(lambda hi: range(lo, hi + 1)))


@CORE
@given(any_text | hexish | b64ish | b64ish.map(lambda s: s.rstrip("=")), lengths)
def test_the_decoder_returns_an_accepted_length_or_a_bad_request(text, accepted):
    try:
        share = decode_share(text, accepted)
    except BadRequest as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        assert "key" in exc.messages[0]
        return
    assert len(share) in accepted
    compact = "".join(text.split())  # whitespace anywhere is dropped; 0x marks hex; padding is optional
    digits = compact[2:] if compact[:2] in ("0x", "0X") else compact
    if len(digits) % 2 == 0 and len(digits) // 2 in accepted and all(c in string.hexdigits for c in digits):
        assert share == bytes.fromhex(digits)
    else:
        assert share == base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)


@CORE
@given(
    st.binary(min_size=1, max_size=64),
    st.sampled_from(["hex", "HEX", "b64"]),
    st.sampled_from(["", " ", "\n"]),
)
def test_the_decoder_reads_what_holders_paste(raw, form, pad):
    text = {"hex": raw.hex(), "HEX": raw.hex().upper(), "b64": base64.b64encode(raw).decode()}[form]
    assert decode_share(pad + text + pad, range(len(raw), len(raw) + 1)) == raw


# -- through the API ----------------------------------------------------------

json_scalars = st.one_of(
    any_text,
    hexish,
    b64ish,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**60), 10**60),
    st.floats(),
)
json_values = json_scalars | st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An app holding a 3-of-5 key; its test client and the shares as hex."""
    config = {"DATA_DIR": str(tmp_path_factory.mktemp("properties") / "data"), "CEREMONY_AUTH": "open"}
    app = create_app({**config, "RATE_LIMIT": "off"})
    client = app.test_client()
    r = client.put(f"{V1}/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 200
    yield client, r.get_json()["keys"]
    app.extensions["generate_share_store"].close()


def _put(client, path: str, body) -> object:
    """PUT ``body`` as JSON text (NaN and lone surrogates included) and check the error shape."""
    r = client.put(path, data=json.dumps(body), content_type="application/json")
    assert r.status_code in (200, 400), (r.status_code, r.get_data(as_text=True))
    assert r.headers["Content-Type"] == "application/json"
    if r.status_code == 400:
        errors = r.get_json()["errors"]
        assert errors and all(isinstance(e, str) and e for e in errors)
    return r


def _fresh_attempt(client) -> str:
    """Cancel the attempt (if any), start another, and return its nonce."""
    client.delete(f"{V1}/generate-share/attempt")
    return client.put(f"{V1}/generate-share/attempt").get_json()["nonce"]


@API
@given(json_values | st.sampled_from(["SHARE"]), st.booleans())
def test_any_json_value_as_key_gives_200_or_400(api, key, with_nonce):
    client, keys = api
    nonce = _fresh_attempt(client)
    key = keys[0] if key == "SHARE" else key
    _put(client, f"{V1}/generate-share/update", {"key": key, "nonce": nonce} if with_nonce else {"key": key})


@API
@given(json_values)
def test_any_json_value_as_nonce_gives_200_or_400(api, nonce):
    client, keys = api
    _fresh_attempt(client)
    _put(client, f"{V1}/generate-share/update", {"key": keys[0], "nonce": nonce})


@API
@given(json_values)
def test_any_json_value_as_the_whole_body_gives_200_or_400(api, body):
    client, _keys = api
    _fresh_attempt(client)
    _put(client, f"{V1}/generate-share/update", body)


@API
@given(json_values, json_values)
def test_any_json_value_in_an_attempt_or_init_gives_200_or_400(api, pgp_key, shares):
    client, _keys = api
    client.delete(f"{V1}/generate-share/attempt")
    _put(client, f"{V1}/generate-share/attempt", {"pgp_key": pgp_key})
    _put(client, f"{V1}/init", {"secret_shares": shares, "secret_threshold": 2, "pgp_keys": pgp_key})
