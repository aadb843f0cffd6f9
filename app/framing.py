"""Tell, from the bytes of one HTTP/1.x request received so far, whether it is whole.

The worker (app/worker.py) reads every request in its main loop and gives a
thread only a request that has fully arrived, head and body, so that a slow
client holds no thread. It must therefore know where a request ends without
the parser that will read it, and it must agree with that parser (gunicorn's,
``gunicorn/http/message.py`` and ``body.py``) case by case: a request gunicorn
refuses is refused here at once, with gunicorn's status, instead of being
waited for; a request gunicorn accepts ends here where gunicorn says it ends.
gunicorn's parser cannot be asked instead: it pulls bytes from a source with
blocking reads and says nothing until it has them, which is exactly what a
thread must not do. So this module is hand-written, pure (bytes in, a verdict
out, no sockets), and tests/test_framing.py holds it to gunicorn's decisions:
one case per rule below, and a property test against gunicorn's own parser.

``Framing`` reads the request line and the head and finds how the body is
framed; ``_ChunkedBody`` walks a chunked body as far as it has arrived; the
checks both need (header and trailer lines, chunk-size lines, the body
limit) are pure functions at the end.

The rules (gunicorn 27's Python parser, its defaults unless ``Limits`` says):

- At most one empty line (CRLF) before the request line. Every line of the
  head ends with CRLF; a bare LF is refused as soon as it is seen (400).
- The request line: ``METHOD SP target SP HTTP/d.d``, the method an upper-case
  token of 3 to 20 characters, the target printable ASCII in origin, absolute,
  asterisk (OPTIONS only) or authority (CONNECT only) form, the version 1.0 or
  1.1 (400); longer than ``request_line`` bytes: 414.
- Header lines: ``name: value`` with the name a token (no space before the
  colon) and the value free of control characters (400); no obs-fold (400);
  at most ``fields`` of them and ``field_size`` bytes each (431); one Host, one
  Content-Type (400); ``Expect`` only ``100-continue`` (417).
- Framing: one Content-Length, all digits (leading zeros allowed); a
  Transfer-Encoding list of known codings ending with ``chunked`` once (else
  400, or 501 for an unknown coding), never with Content-Length, never in
  HTTP/1.0 (400). Chunk sizes in hex of any length, extensions as RFC 9112
  7.1.1 says, CRLF after every chunk and after the trailers (400).

On top of gunicorn's rules, this service's own bounds: the head at most
``head`` bytes (431), the body at most ``body`` bytes once de-chunked (413),
and a chunked body's framing (sizes, extensions, trailers) at most
``chunk_margin`` bytes plus 5 per byte of data, what one-byte chunks take
(413), so memory per request is bounded.

Not decided here, because they need no more bytes and depend on who the peer
is: gunicorn's forwarded-scheme checks and its header_map for names with an
underscore (counted here as gunicorn's default, ``drop``, counts them: not at
all). The thread's parser refuses those at once from the bytes in memory.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

__all__ = ["Framing", "Limits", "WAIT", "WHOLE", "REFUSED"]

WAIT = "wait"
WHOLE = "whole"
REFUSED = "refused"

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")
_METHOD_BAD = re.compile(rb"[a-z#]")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_TARGET_BAD = re.compile(rb"[^\x21-\x7e]")
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9a-fA-F]+")
_EXT_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT = re.compile(
    rb"(?:[ \t]*;[ \t]*" + _EXT_TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _EXT_TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
_SINGLETONS = frozenset({b"HOST", b"CONTENT-TYPE"})
_NOT_IN_TRAILERS = frozenset(
    {b"HOST", b"CONTENT-LENGTH", b"TRANSFER-ENCODING", b"TRAILER", b"AUTHORIZATION", b"TE"}
)
_COMPRESSIONS = frozenset({b"compress", b"deflate", b"gzip"})
#: The framing of a one-byte chunk ("1" CRLF, then CRLF after its byte): what a client
#: sending a body byte by byte (requests, given a generator of bytes) spends per byte.
_CHUNK_OVERHEAD = 5


@dataclass(frozen=True)
class Limits:
    """The bounds a request must keep: gunicorn's (its defaults) and the service's own."""

    request_line: int = 4094  # gunicorn's limit_request_line
    fields: int = 100  # limit_request_fields
    field_size: int = 8190  # limit_request_field_size
    header_map: str = "drop"  # what gunicorn does with a name holding "_": drop, refuse or dangerous
    head: int = 32 * 1024  # nginx's large_client_header_buffers (4 x 8k)
    body: int = 64 * 1024  # the app's MAX_CONTENT_LENGTH
    chunk_margin: int = 16 * 1024  # chunk-size lines and trailers around a chunked body


class _Refusal(Exception):  # noqa: N818 (a verdict, raised to unwind the parse)
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status
        self.why = why


class Framing:
    """Feed the bytes of a connection; learn when one request is whole, or why it is refused.

    ``verdict`` is WAIT, WHOLE (the request is ``end`` bytes long; what follows
    is the next request) or REFUSED (``status`` and ``why``; close after it).
    """

    def __init__(self, limits: Limits = Limits()):  # noqa: B008 (frozen)
        self.limits = limits
        self.buf = bytearray()
        self.verdict = WAIT
        self.status = 0
        self.why = ""
        self.end = 0
        self.wants_continue = False  # the head asked for 100 Continue and the body is awaited
        self._start: int | None = None  # where the request line starts
        self._line_end: int | None = None  # where the request line's CRLF is
        self._head_end: int | None = None
        self._scan = 0  # where the search for the end of the current part resumes
        self._version = (1, 1)
        self._length: int | None = None  # a Content-Length body's length (0 for none)
        self._chunks: _ChunkedBody | None = None  # a chunked body's walk

    @property
    def body_bytes(self) -> int:
        """Return the body's length after de-chunking: a chunked body's so far, or the Content-Length."""
        return self._chunks.body_bytes if self._chunks is not None else self._length or 0

    def feed(self, data: bytes) -> str:
        """Add received bytes and return the verdict."""
        if self.verdict == WAIT:
            self.buf += data
            try:
                self._advance()
            except _Refusal as refusal:
                self.verdict, self.status, self.why = REFUSED, refusal.status, refusal.why
        return self.verdict

    def _advance(self) -> None:
        buf = self.buf
        if self._start is None:
            if not buf or (buf[:1] == b"\r" and len(buf) < 2):
                return
            self._start = self._scan = 2 if buf[:2] == b"\r\n" else 0
        if self._line_end is None and not self._find_line():
            return
        if self._head_end is None and not self._find_head():
            return
        if self._length is not None:
            if len(buf) >= self._head_end + self._length:
                self._whole(self._head_end + self._length)
            return
        end = self._chunks.walk(buf)
        if end is not None:
            self._whole(end)

    def _find_line(self) -> bool:
        buf, start, limit = self.buf, self._start, self.limits.request_line
        idx = buf.find(b"\r\n", max(self._scan - 1, start))
        if buf.find(b"\n", start, idx if idx >= 0 else len(buf)) >= 0:
            raise _Refusal(400, "every line of the request head must end with CRLF, not a bare LF")
        if idx < 0:
            self._scan = len(buf)
            if len(buf) - start - 2 > limit:
                raise _Refusal(414, f"the request line must fit in {limit} bytes")
            return False
        if idx - start > limit:
            raise _Refusal(414, f"the request line must fit in {limit} bytes")
        self._request_line(bytes(buf[start:idx]))
        self._line_end = idx
        self._scan = idx + 2
        return True

    def _request_line(self, line: bytes) -> None:
        bits = line.split(b" ", 2)
        if len(bits) != 3:
            raise _Refusal(400, "the request line must be: METHOD /path HTTP/1.1")
        method, target, version = bits
        if _METHOD_BAD.search(method) or not 3 <= len(method) <= 20 or not _TOKEN.fullmatch(method):
            raise _Refusal(400, "the method must be an upper-case token such as GET or PUT")
        if not target or _TARGET_BAD.search(target):
            raise _Refusal(400, "the request target must be printable ASCII, percent-encoded past that")
        if target == b"*" and method != b"OPTIONS":
            raise _Refusal(400, "the target * goes with OPTIONS only")
        if method != b"CONNECT" and target != b"*" and not target.startswith(b"/") and b"://" not in target:
            raise _Refusal(400, "the request target must be a path such as /v1/sys/health")
        try:
            text = target.decode("latin-1")
            urllib.parse.urlsplit("." + text if text.startswith("//") else text)
        except ValueError:
            raise _Refusal(400, "the request target is not a valid URI") from None
        match = _VERSION.fullmatch(version)
        if match is None or not (1, 0) <= (int(match[1]), int(match[2])) < (2, 0):
            raise _Refusal(400, "the HTTP version must be HTTP/1.0 or HTTP/1.1")
        self._version = (int(match[1]), int(match[2]))

    def _find_head(self) -> bool:
        buf, limits = self.buf, self.limits
        hstart = self._line_end + 2
        if buf[hstart : hstart + 2] == b"\r\n":
            end, fields = hstart + 2, b""
        else:
            idx = buf.find(b"\r\n\r\n", max(self._scan - 3, hstart))
            if idx < 0:
                if _bare_lf(buf, hstart):
                    raise _Refusal(400, "every line of the request head must end with CRLF, not a bare LF")
                self._scan = len(buf)
                if len(buf) > limits.head:
                    raise _Refusal(431, f"the request line and headers must fit in {limits.head} bytes")
                return False
            end, fields = idx + 4, bytes(buf[hstart:idx])
        if end > limits.head:
            raise _Refusal(431, f"the request line and headers must fit in {limits.head} bytes")
        self._head_end = end
        headers = _header_fields(fields, limits, trailer=False)
        # gunicorn ignores the expectation in HTTP/1.0 (RFC 9110 10.1.1); _header_fields refused any other.
        self.wants_continue = self._version >= (1, 1) and any(name == b"EXPECT" for name, _ in headers)
        self._frame(headers)
        return True

    def _frame(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Find how the body is framed, as gunicorn's set_body_reader does, in its order."""
        length, coded, chunked = None, False, False
        for name, value in headers:
            if name == b"CONTENT-LENGTH":
                if length is not None:
                    raise _Refusal(400, "a request carries one Content-Length header at most")
                length = value
            elif name == b"TRANSFER-ENCODING":
                coded = True
                for coding in (c.strip(b" \t").lower() for c in value.split(b",")):
                    if coding != b"chunked" and coding != b"identity" and coding not in _COMPRESSIONS:
                        raise _Refusal(501, "the only transfer coding understood is chunked")
                    if chunked:
                        raise _Refusal(400, "chunked must be the last transfer coding, and only once")
                    chunked = coding == b"chunked"
        if coded and not chunked:
            raise _Refusal(400, "a Transfer-Encoding must end with chunked")
        if chunked:
            if self._version < (1, 1):
                raise _Refusal(400, "a chunked body needs HTTP/1.1")
            if length is not None:
                raise _Refusal(400, "send Content-Length or Transfer-Encoding, not both")
            self._chunks = _ChunkedBody(self.limits, self._head_end)
            return
        if length is not None:
            try:
                count = int(length.decode("latin-1")) if length.decode("latin-1").isnumeric() else -1
            except ValueError:
                count = -1
            if count < 0:
                raise _Refusal(400, "Content-Length must be a number of bytes, in digits")
            _check_body(count, self.limits)
        self._length = count if length is not None else 0
        if self._length == 0:
            self.wants_continue = False

    def _whole(self, end: int) -> None:
        self.verdict, self.end, self.wants_continue = WHOLE, end, False


class _ChunkedBody:
    """Walk a chunked body as far as it has arrived, as gunicorn's ChunkedReader would read it."""

    def __init__(self, limits: Limits, start: int):
        self.limits = limits
        self.start = start  # where the body starts: the end of the head
        self.body_bytes = 0  # the data of the chunks received whole
        self._at = start  # where the next chunk-size line, or the trailers, start
        self._scan = start  # where the search for the end of the current line resumes
        self._in_trailers = False

    def walk(self, buf: bytearray) -> int | None:
        """Return where the request ends once the body is whole, or None to wait for more."""
        at, partial = self._at, 0
        while not self._in_trailers:
            idx = buf.find(b"\r\n", max(self._scan - 1, at))
            if idx < 0:
                if len(buf) - at > self.limits.field_size:
                    raise _Refusal(400, f"a chunk-size line must fit in {self.limits.field_size} bytes")
                self._scan = len(buf)
                break
            size = _chunk_size(bytes(buf[at:idx]))
            if size == 0:
                self._in_trailers, at = True, idx + 2
                self._scan = at
                break
            _check_body(self.body_bytes + size, self.limits)
            if len(buf) < idx + 2 + size + 2:
                partial = min(size, len(buf) - idx - 2)
                break
            if buf[idx + 2 + size : idx + 4 + size] != b"\r\n":
                raise _Refusal(400, "every chunk's data must end with CRLF")
            self.body_bytes += size
            at = self._scan = idx + 4 + size
        if self._in_trailers:
            end = self._trailers(buf, at)
            if end is not None:
                return end
        self._at = at
        data = self.body_bytes + partial
        if len(buf) - self.start - data > self.limits.chunk_margin + _CHUNK_OVERHEAD * data:
            raise _Refusal(413, f"a chunked body's framing may take at most {self.limits.chunk_margin} bytes")
        return None

    def _trailers(self, buf: bytearray, at: int) -> int | None:
        """Return where the trailers starting at ``at`` end, once they have arrived, or None."""
        if buf[at : at + 2] == b"\r\n":
            return at + 2
        idx = buf.find(b"\r\n\r\n", max(self._scan - 3, at))
        if idx < 0:
            if _bare_lf(buf, at):
                raise _Refusal(400, "every trailer line must end with CRLF, not a bare LF")
            self._scan = len(buf)
            return None
        _header_fields(bytes(buf[at:idx]), self.limits, trailer=True)
        return idx + 4


def _header_fields(data: bytes, limits: Limits, *, trailer: bool) -> list[tuple[bytes, bytes]]:
    """Check header lines as gunicorn's parse_headers does, in its order; return (NAME, value)."""
    kept, seen = [], set()
    lines = data.split(b"\r\n") if data else []
    i = 0
    while i < len(lines):
        if len(kept) >= limits.fields:
            raise _Refusal(431, f"a request may carry at most {limits.fields} header fields")
        line = lines[i]
        i += 1
        size = len(line) + 2
        if line.find(b":") <= 0:
            raise _Refusal(400, "every header line must be name: value")
        name, value = line.split(b":", 1)
        if not _TOKEN.fullmatch(name):
            raise _Refusal(400, "a header name must be a token, with no space before the colon")
        name = name.upper()
        if trailer and name in _NOT_IN_TRAILERS:
            raise _Refusal(400, "that header may not be sent in a trailer")
        if i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            raise _Refusal(400, "header values may not be folded onto a second line (obs-fold)")
        value = value.strip(b" \t")
        if _VALUE_BAD.search(value):
            raise _Refusal(400, "a header value may not hold control characters")
        if size > limits.field_size:
            raise _Refusal(431, f"each header line must fit in {limits.field_size} bytes")
        if name in _SINGLETONS:
            if name in seen:
                raise _Refusal(400, f"a request carries one {name.decode()} header at most")
            seen.add(name)
        if name == b"EXPECT" and not trailer and value.lower() != b"100-continue":
            raise _Refusal(417, "the only expectation understood is 100-continue")
        if b"_" in name and limits.header_map != "dangerous":
            if limits.header_map == "refuse":
                raise _Refusal(400, "a header name may not hold an underscore")
            continue
        kept.append((name, value))
    return kept


def _chunk_size(line: bytes) -> int:
    """Return the size a chunk-size line gives, checking its extensions as RFC 9112 7.1.1 says."""
    size, semicolon, ext = line.partition(b";")
    if semicolon:
        if b"\r" in ext:
            raise _Refusal(400, "a chunk extension may not hold a bare CR")
        size = size.rstrip(b" \t")
    if not _HEX.fullmatch(size):
        raise _Refusal(400, "a chunk size must be hexadecimal digits")
    if semicolon and not _CHUNK_EXT.fullmatch(b";" + ext):
        raise _Refusal(400, "a chunk extension must be ;name or ;name=value")
    return int(size, 16)


def _check_body(count: int, limits: Limits) -> None:
    """Refuse a body of ``count`` bytes past the limit (413)."""
    if count > limits.body:
        raise _Refusal(413, f"the request body is larger than the limit of {limits.body} bytes")


def _bare_lf(buf: bytearray, start: int) -> bool:
    """Tell whether ``buf[start:]`` holds an LF that is not the end of a CRLF (gunicorn's count test)."""
    part = bytes(buf[start:])
    return part.count(b"\n") != part.count(b"\r\n")
