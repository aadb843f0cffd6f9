"""app.framing agrees with gunicorn's own parser, case by case and on generated heads."""

import pytest
from gunicorn.config import Config
from gunicorn.http import RequestParser, errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.framing import REFUSED, WAIT, WHOLE, Framing, Limits

#: A peer outside forwarded_allow_ips: gunicorn applies no forwarded-scheme policy to it.
PEER = ("203.0.113.7", 40000)
CFG = Config()  # gunicorn's defaults, as gunicorn.conf.py leaves them
#: gunicorn's status for each error its handle_error answers (gunicorn/workers/base.py).
STATUS = [
    (errors.UnsupportedTransferCoding, 501),
    (errors.LimitRequestLine, 414),
    (errors.ExpectationFailed, 417),
    (errors.LimitRequestHeaders, 431),
    (errors.ParseException, 400),
]


class Starved(Exception):
    """gunicorn asked for more bytes than were sent: on a socket, it would wait for them."""


def _then_starve(data: bytes):
    yield data
    raise Starved


def gunicorn_verdict(data: bytes) -> tuple[str, int]:
    """Parse ``data`` with gunicorn, body included: (WAIT, 0), (WHOLE, end) or (REFUSED, status)."""
    parser = RequestParser(CFG, _then_starve(data), PEER)
    try:
        req = next(parser)
        while req.body.read(8192):
            pass
    except Starved:
        return WAIT, 0
    except errors.ParseException as exc:
        return REFUSED, next(status for kind, status in STATUS if isinstance(exc, kind))
    return WHOLE, len(data) - len(parser.unreader.take_buffered())


def framing_verdict(data: bytes, limits: Limits = Limits()) -> tuple[str, int]:  # noqa: B008
    """Feed ``data`` at once; the same shape as gunicorn_verdict."""
    framing = Framing(limits)
    verdict = framing.feed(data)
    return verdict, {WAIT: 0, WHOLE: framing.end, REFUSED: framing.status}[verdict]


H = b"GET / HTTP/1.1\r\nHost: x\r\n"
P = b"PUT /v1/sys/init HTTP/1.1\r\nHost: x\r\n"
CASES = {
    "whole GET": H + b"\r\n",
    "a GET and the next one": H + b"\r\n" + H,
    "one empty line first": b"\r\n" + H + b"\r\n",
    "two empty lines first": b"\r\n\r\n" + H + b"\r\n",
    "no headers": b"GET / HTTP/1.1\r\n\r\n",
    "head unfinished": H,
    "request line unfinished": b"GET /v1/sys/hea",
    "bare LF everywhere": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare LF after the request line": b"GET / HTTP/1.1\r\nHost: x\n\n",
    "bare LF in a header, head unfinished": H + b"X: a\nb",
    "bare LF first": b"\nGET / HTTP/1.1\r\n",
    "bare CR in a value": H + b"X: a\rb\r\n\r\n",
    "request line past its limit": b"GET /" + b"a" * 5000,
    "request line past its limit, whole": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n",
    "lower-case method": b"get / HTTP/1.1\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\n\r\n",
    "HTTP/0.9": b"GET / HTTP/0.9\r\n\r\n",
    "HTTP/1.0": b"GET / HTTP/1.0\r\n\r\n",
    "two spaces": b"GET  / HTTP/1.1\r\n\r\n",
    "no version": b"GET /\r\n\r\n",
    "target not printable": b"GET /\x7f HTTP/1.1\r\n\r\n",
    "asterisk with GET": b"GET * HTTP/1.1\r\n\r\n",
    "asterisk with OPTIONS": b"OPTIONS * HTTP/1.1\r\n\r\n",
    "authority form with GET": b"GET example.org:80 HTTP/1.1\r\n\r\n",
    "absolute form": b"GET http://x/v1/sys/health HTTP/1.1\r\n\r\n",
    "bad IPv6 host": b"GET http://[::1/ HTTP/1.1\r\n\r\n",
    "Content-Length with leading zeros": P + b"Content-Length: " + b"0" * 21 + b"2\r\n\r\n{}",
    "Content-Length waiting": P + b"Content-Length: 5\r\n\r\n{}",
    "Content-Length twice, equal": P + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "Content-Length listed": P + b"Content-Length: 2, 2\r\n\r\n{}",
    "Content-Length negative": P + b"Content-Length: -2\r\n\r\n{}",
    "Content-Length superscript": P + b"Content-Length: \xb2\r\n\r\n{}",
    "Content-Length empty": P + b"Content-Length: \r\n\r\n",
    "Content-Length with Transfer-Encoding": P + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
    "Transfer-Encoding then Content-Length": P + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
    "chunked HTTP/1.0": b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked twice": P + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "chunked in two headers": P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "gzip after chunked": P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "gzip, chunked": P + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "identity only": P + b"Transfer-Encoding: identity\r\n\r\n",
    "unknown coding": P + b"Transfer-Encoding: foo\r\n\r\n",
    "unknown coding after chunked": P + b"Transfer-Encoding: chunked, foo\r\n\r\n",
    "Content-Length twice, then unknown coding": P
    + b"Content-Length: 1\r\nContent-Length: 1\r\nTransfer-Encoding: foo\r\n\r\n",
    "chunked whole": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "chunked whole, and the next request": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + H,
    "chunked with trailers": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n",
    "chunked, forbidden trailer": P + b"Transfer-Encoding: chunked\r\n\r\n0\r\nHost: y\r\n\r\n",
    "chunked, bare LF in trailers": P + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n",
    "chunked unfinished": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{",
    "chunked, last chunk but no end": P + b"Transfer-Encoding: chunked\r\n\r\n0\r\n",
    "chunk size with 17 digits": P
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"0" * 16
    + b"2\r\n{}\r\n0\r\n\r\n",
    "chunk size not hex": P + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk size empty": P + b"Transfer-Encoding: chunked\r\n\r\n\r\n",
    "chunk size with a space": P + b"Transfer-Encoding: chunked\r\n\r\n2 \r\n{}\r\n0\r\n\r\n",
    "chunk extension": P + b"Transfer-Encoding: chunked\r\n\r\n2 ;a=b\r\n{}\r\n0\r\n\r\n",
    "chunk extension bad": P + b"Transfer-Encoding: chunked\r\n\r\n2;=\r\n{}\r\n0\r\n\r\n",
    "chunk extension with CR": P + b"Transfer-Encoding: chunked\r\n\r\n2;a\rb\r\n{}\r\n0\r\n\r\n",
    "chunk data without CRLF": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XY0\r\n\r\n",
    "chunk data with LF only": P + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\n0\r\n\r\n",
    "chunk-size line past its limit": P + b"Transfer-Encoding: chunked\r\n\r\n" + b"1;a" * 3000,
    "obs-fold": H + b"X-A: 1\r\n 2\r\n\r\n",
    "obs-fold with a tab": H + b"X-A: 1\r\n\t2\r\n\r\n",
    "space before the colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "no colon": H + b"X-A\r\n\r\n",
    "empty name": H + b": 1\r\n\r\n",
    "Host twice": H + b"Host: y\r\n\r\n",
    "Expect 100-continue": P + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    "Expect other": H + b"Expect: 200-ok\r\n\r\n",
    "Expect other, then a bad name": H + b"Expect: x\r\nBad Name: y\r\n\r\n",
    "underscore in a name": H + b"X_A: 1\r\n\r\n",
    "101 headers": H + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",
    "100 headers and underscores": b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-%d: 1\r\nY_%d: 2\r\n" % (i, i) for i in range(100))
    + b"\r\n",
    "a header line past its limit": H + b"X-A: " + b"a" * 8200 + b"\r\n\r\n",
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_each_case_is_decided_as_gunicorn_decides_it(data):
    assert framing_verdict(data) == gunicorn_verdict(data)


def test_the_cases_cover_every_verdict_and_status():
    seen = {
        framing_verdict(data)[1] if framing_verdict(data)[0] == REFUSED else framing_verdict(data)[0]
        for data in CASES.values()
    }
    assert seen == {WAIT, WHOLE, 400, 414, 417, 431, 501}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_a_request_fed_a_byte_at_a_time_ends_where_it_ends_whole(data):
    framing, verdict = Framing(), WAIT
    for i in range(len(data)):
        verdict = framing.feed(data[i : i + 1])
        if verdict != WAIT:
            break
    whole = framing_verdict(data)
    if whole[0] == REFUSED:
        # gunicorn refuses a bare LF as soon as it reads one, before a later error: the same here.
        assert verdict == REFUSED
    else:
        assert (verdict, framing.end if verdict == WHOLE else 0) == whole


# The service's own bounds, on top of gunicorn's


def test_a_head_past_its_limit_is_refused_431_before_it_ends():
    framing = Framing(Limits(head=1024))
    assert framing.feed(H + b"X-A: " + b"a" * 2000) == REFUSED
    assert framing.status == 431


def test_a_content_length_past_the_body_limit_is_refused_413_at_once():
    data = P + b"Content-Length: " + b"0" * 10 + b"65537\r\n\r\n"
    assert framing_verdict(data) == (REFUSED, 413)
    assert gunicorn_verdict(data) == (WAIT, 0)  # gunicorn would wait for it; the app would answer 413


def test_a_chunk_size_past_the_body_limit_is_refused_413_at_once():
    data = P + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\n{"
    assert framing_verdict(data) == (REFUSED, 413)
    assert gunicorn_verdict(data) == (WAIT, 0)


def test_chunks_count_their_data_against_the_body_limit():
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    framing = Framing(Limits(body=4096))
    assert framing.feed(P + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 4) == WAIT
    assert framing.body_bytes == 4096
    assert framing.feed(b"1\r\n") == REFUSED and framing.status == 413


def test_one_byte_chunks_are_whole_up_to_the_body_limit():
    framing = Framing(Limits(body=4096, chunk_margin=1024))
    assert framing.feed(P + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 4096) == WAIT
    assert framing.feed(b"0\r\n\r\n") == WHOLE and framing.body_bytes == 4096


def test_chunk_extensions_past_the_framing_margin_are_refused_413():
    framing = Framing(Limits(chunk_margin=1024))
    assert framing.feed(P + b"Transfer-Encoding: chunked\r\n\r\n" + b"1;a=bbbbbbbbbb\r\nx\r\n" * 60) == WAIT
    assert framing.feed(b"1;a=bbbbbbbbbb\r\nx\r\n" * 60) == REFUSED and framing.status == 413


def test_a_chunk_in_flight_counts_as_data_not_framing():
    framing = Framing(Limits(chunk_margin=1024))
    assert framing.feed(P + b"Transfer-Encoding: chunked\r\n\r\n8000\r\n" + b" " * 30000) == WAIT


def test_100_continue_is_wanted_while_the_body_is_awaited_only():
    framing = Framing()
    framing.feed(P + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert framing.wants_continue
    assert framing.feed(b"{}") == WHOLE and not framing.wants_continue
    old = Framing()
    old.feed(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert not old.wants_continue  # HTTP/1.0 ignores the expectation (RFC 9110 10.1.1)


# Generated heads against gunicorn's parser

_NAMES = st.sampled_from(
    [b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"X-A", b"X_A", b"Content-Type",
     b"Host ", b" X", b"X:Y", b"", b"Tr\xe4nsfer", b"TE", b"content-length"]
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        [b"x", b"0", b"2", b"002", b"1,1", b" 2 ", b"-1", b"chunked", b"gzip, chunked", b"chunked, gzip",
         b"identity", b"foo", b"100-continue", b"100-Continue", b"", b"\xb2", b"a\x00b", b"\tv\t"]
    ),
    st.binary(max_size=6),
)  # fmt: skip
_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\n "])
_LINES = st.sampled_from(
    [b"GET / HTTP/1.1", b"PUT /v1/sys/init HTTP/1.1", b"PUT / HTTP/1.0", b"get / HTTP/1.1", b"GET / HTTP/1.2",
     b"GET /a b HTTP/1.1", b"OPTIONS * HTTP/1.1", b"CONNECT x:1 HTTP/1.1", b"GET x HTTP/1.1",
     b"GE / HTTP/1.1", b"GET /\xff HTTP/1.1", b"GET http://[x/ HTTP/1.1", b"GET / HTTP/1.1 "]
)  # fmt: skip


@st.composite
def heads(draw):
    """A request head built from plausible and hostile pieces, and maybe some body bytes."""
    out = draw(st.sampled_from([b"", b"", b"\r\n", b"\n"])) + draw(_LINES) + draw(_ENDS)
    for _ in range(draw(st.integers(0, 5))):
        out += draw(_NAMES) + draw(st.sampled_from([b":", b": ", b" :", b""])) + draw(_VALUES) + draw(_ENDS)
    out += draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
    body = draw(st.sampled_from([b"", b"{}", b"2\r\n{}\r\n0\r\n\r\n", b"0\r\n\r\n", b"zz\r\n", b"1\r\nx\n"]))
    return out + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads())
def test_generated_heads_are_decided_as_gunicorn_decides_them(data):
    assert framing_verdict(data) == gunicorn_verdict(data), data
