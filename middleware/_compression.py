"""The compression core shared by :class:`GZip` and :class:`Compress`.

What it must leave alone, and why (RFC 9110 unless said otherwise):

* HEAD requests, 1xx, 204, 304 (no content), 206 and any ``Content-Range`` (ranges
  address the stored representation, 14.4), responses with a ``Content-Encoding``
  already, ``Cache-Control: no-transform`` (RFC 9111 5.2.2.6), excluded media types
  (Server-Sent Events, already-compressed formats), and bodies that never pass through
  Python (``http.response.pathsend``, ``wsgi.file_wrapper``): headers unchanged.
* ``Vary: Accept-Encoding`` goes on every response whose coding could have differed:
  every eligible response except one whose ``Content-Length`` proves it too small.
* Any ``Content-Encoding`` set by the app, ``identity`` included, means "leave this body
  alone": it is the documented opt-out (BREACH), and ``identity, gzip`` is never sent.
* No chunk is ever held back. The head waits only for the first non-empty chunk;
  ``minimum_size`` decides only when the body's length is known then (a
  ``Content-Length``, or a first chunk that is the whole body). A streamed body of
  unknown length is compressed from its first chunk and every chunk is sync-flushed
  as it arrives, so a slow stream reaches the client line by line.
* ``Content-Length`` is set when the whole body was compressed at once, else dropped;
  a strong ``ETag`` becomes weak (``W/``): the bytes are no longer the same (8.8.1).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence

from middleware._encodings import Compressor, EncoderSpec, negotiate, parse_accept_encoding
from middleware._headers import add_vary
from middleware.api import Core, Handler, Head, HeaderList, RequestHead

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "CompressionCore"]

DEFAULT_EXCLUDED_CONTENT_TYPES: tuple[str, ...] = (
    "text/event-stream",  # Server-Sent Events: latency matters more than size
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip-compressed",
    "application/zstd",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/x-brotli",
    "application/octet-stream",  # opaque bytes: downloads are mostly archives already
    "audio/*",
    "video/*",
    "image/*",  # not image/svg+xml: a wildcard never covers a +xml or +json type
    "font/woff",
    "font/woff2",
)
"""Media types never compressed by default.

``type/*`` covers a whole top-level type except structured-syntax ``+xml`` and
``+json`` subtypes (RFC 6839), which are text: ``image/*`` leaves ``image/svg+xml``
compressible; list such a type explicitly to exclude it.
"""

# RFC 6839 structured syntax suffixes: text, whatever the top-level type says.
_TEXT_SUFFIXES = (b"+xml", b"+json")

_CACHE_SIZE = 256
# The memos are keyed by header values (Accept-Encoding from the client, Content-Type
# from the app). Browsers send short ones ("gzip, deflate, br, zstd" is 23 bytes); a
# longer value is parsed again each time (linear in its size) and never stored, so each
# memo holds at most _CACHE_SIZE * _MAX_CACHED_KEY bytes of keys (32 KiB).
_MAX_CACHED_KEY = 128
_UNCHANGED_STATUSES = frozenset({204, 206, 304})


class _Eligibility(enum.Enum):
    NEVER = enum.auto()  # leave the response exactly as it is
    SMALL = enum.auto()  # Content-Length below minimum_size: same for every client
    MAYBE = enum.auto()  # compress if the client accepts and the body is big enough


_NEVER = _Eligibility.NEVER
_SMALL = _Eligibility.SMALL
_MAYBE = _Eligibility.MAYBE


class _Phase(enum.Enum):
    HOLDING = enum.auto()  # head held until the first non-empty chunk decides
    PASSING = enum.auto()  # body untouched
    COMPRESSING = enum.auto()  # head sent with Content-Encoding, chunks compressed
    DONE = enum.auto()  # the whole body went out compressed: nothing more may follow


_HOLDING = _Phase.HOLDING
_PASSING = _Phase.PASSING
_COMPRESSING = _Phase.COMPRESSING
_DONE = _Phase.DONE


def _compressed_headers(headers: HeaderList, coding: bytes, length: bytes | None) -> HeaderList:
    """The head of a compressed response, built in one pass over the app's headers."""
    out: HeaderList = []
    has_vary = False
    for pair in headers:
        key = pair[0]
        if key == b"content-length":
            continue
        if key == b"etag" and pair[1].startswith(b'"'):
            # A strong validator promises identical bytes; these are not (RFC 9110 8.8.1).
            out.append((key, b"W/" + pair[1]))
            continue
        if key == b"vary":
            has_vary = True
        out.append(pair)
    if length is not None:
        out.append((b"content-length", length))
    out.append((b"content-encoding", coding))
    if has_vary:
        add_vary(out, b"Accept-Encoding", b"accept-encoding")
    else:
        out.append((b"vary", b"Accept-Encoding"))
    return out


class _VaryHandler(Handler):
    """The client accepts no offered coding: only ``Vary`` may change. Stateless, shared."""

    __slots__ = ("_core",)
    head_only = True

    def __init__(self, core: CompressionCore) -> None:
        self._core = core

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        if self._core.eligibility(status, headers)[0] is _MAYBE:
            headers = [*headers]  # a new list: see the rules of _core
            add_vary(headers, b"Accept-Encoding", b"accept-encoding")
        return status, headers


class _CompressHandler(Handler):
    """One response to a client that accepts ``spec``: HOLDING, then PASSING,
    COMPRESSING or DONE."""

    __slots__ = (
        "_compressor",
        "_core",
        "_declared",
        "_expected",
        "_head",
        "_phase",
        "_plain",
        "_ready",
        "_spec",
    )

    def __init__(self, core: CompressionCore, spec: EncoderSpec) -> None:
        self._core = core
        self._spec = spec
        self._phase = _PASSING
        self._head: Head | None = None
        self._ready: Head | None = None
        self._expected = -1
        self._declared: bytes | None = None
        self._plain = True
        self._compressor: Compressor | None = None

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        # May run twice (a WSGI app's start_response with exc_info): start over.
        # CompressionCore.eligibility, inlined: this and on_body are the whole per-response
        # cost beside zlib's, and a call frame is a measurable share of it (issue 15).
        if status < 200 or status in _UNCHANGED_STATUSES:
            self._phase = _PASSING
            self._head = None
            return status, headers
        core = self._core
        length = -1
        declared = None  # the Content-Length value, its pair replaced in the coded head
        plain = True  # no ETag, Vary or second Content-Length: the head's fast rewrite
        for key, value in headers:
            if key == b"content-type":
                excluded = core._types.get(value)
                if excluded is None:
                    excluded = core.excluded_type(value)
                if excluded:
                    break
            elif key == b"content-length":
                if value.isdigit():
                    length = int(value)
                if declared is not None:
                    plain = False
                declared = value
            elif key == b"content-encoding":
                break  # any coding, identity included: the app's opt-out (module docs)
            elif key == b"content-range" or (
                key == b"cache-control" and b"no-transform" in value.lower()
            ):
                break
            elif key in {b"etag", b"vary"}:
                plain = False
        else:
            if length < 0 or length >= core.minimum_size:
                # With a declared length the end of the body is known before the server
                # says so (a WSGI iterable only ends with StopIteration), so a first chunk
                # of that length is the whole body: compressed at once, with an exact
                # Content-Length.
                self._expected = length
                self._declared = declared
                self._plain = plain
                self._phase = _HOLDING
                self._head = (status, headers)
                self._ready = None
                return None
        self._phase = _PASSING
        self._head = None
        return status, headers

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        phase = self._phase
        if phase is _HOLDING:
            head = self._head
            assert head is not None
            size = len(chunk)
            if not more or size == self._expected:
                # The whole body at once: the usual response, and the one worth the
                # shortest path (one zlib call, the head built in the same frame).
                self._head = None
                if size < self._core.minimum_size:
                    # Small: sent as is, but it could have been compressed.
                    headers = [*head[1]]  # a new list: see the rules of _core
                    add_vary(headers, b"Accept-Encoding", b"accept-encoding")
                    self._ready = (head[0], headers)
                    self._phase = _PASSING
                    return chunk
                spec = self._spec
                body = spec.one_shot(chunk)
                length = (b"content-length", b"%d" % len(body))
                if self._plain:
                    # _compressed_headers for a head the scan found no ETag or Vary in:
                    # the app's list less its Content-Length, then the coded ones.
                    headers = [*head[1]]
                    declared = self._declared
                    if declared is not None:
                        headers.remove((b"content-length", declared))
                    headers.append(length)
                    headers += spec.coded_tail
                else:
                    headers = _compressed_headers(head[1], spec.token, length[1])
                self._ready = (head[0], headers)
                self._phase = _DONE
                return body
            if not chunk:
                return b""  # nothing to decide on yet, and nothing held back
            # A stream (or the first part of a body already known to be big enough):
            # compress from here on, flushing each chunk so none is held back.
            self._head = None
            self._ready = (head[0], _compressed_headers(head[1], self._spec.token, None))
            self._phase = _COMPRESSING
            started = self._compressor = self._spec.streaming()
            return started.compress(chunk)
        if phase is _COMPRESSING:
            compressor = self._compressor
            assert compressor is not None
            if not more:
                self._phase = _DONE
                return compressor.flush(chunk)
            return compressor.compress(chunk)
        if phase is _PASSING:
            return chunk
        # _DONE: bytes past a declared Content-Length that went out compressed: the
        # app's bug, and appending them raw would corrupt the coded body.
        return b""

    def pending_head(self) -> Head | None:
        ready, self._ready = self._ready, None
        return ready

    def on_opaque_body(self) -> Head | None:
        head, self._head = self._head, None
        self._phase = _PASSING
        return head


class _NewCompressHandler(_CompressHandler):
    """A :class:`_CompressHandler` made without an ``__init__`` frame (see ``on_request``)."""

    __slots__ = ()
    __init__ = object.__init__


class CompressionCore(Core):
    """Negotiates a coding per request and compresses eligible responses."""

    __slots__ = (
        "_excluded",
        "_negotiated",
        "_offered",
        "_specs",
        "_types",
        "_vary",
        "minimum_size",
    )

    def __init__(
        self,
        specs: Sequence[EncoderSpec],
        minimum_size: int,
        exclude_content_types: Collection[str],
    ) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._offered = tuple(spec.name for spec in specs)
        self.minimum_size = minimum_size
        excluded = {item.partition(";")[0].strip().lower() for item in exclude_content_types}
        self._excluded = frozenset(item.encode("latin-1") for item in excluded)
        # Memoised per configuration: clients send a handful of distinct values.
        self._negotiated: dict[bytes, EncoderSpec | None] = {}
        self._types: dict[bytes, bool] = {}
        self._vary = _VaryHandler(self)

    def on_request(self, head: RequestHead) -> Handler | None:
        if head.method == "HEAD":
            return None  # no body to compress
        accept = head.header(b"accept-encoding")
        if accept is None:
            return self._vary
        try:
            spec = self._negotiated[accept]
        except KeyError:
            spec = self._negotiate(accept)
        if spec is None:
            return self._vary
        # _CompressHandler(self, spec), inlined: one Python frame less per response.
        # Only what on_response_start does not set on every path is set here; the rest
        # is set where it starts to matter (a slot read unset would raise, not mislead).
        handler: _CompressHandler = _NewCompressHandler()
        handler._core = self
        handler._spec = spec
        handler._phase = _PASSING
        handler._head = None
        return handler

    def _negotiate(self, accept: bytes) -> EncoderSpec | None:
        name = negotiate(parse_accept_encoding(accept.decode("latin-1")), self._offered)
        spec = None if name is None else self._specs[name]
        if len(accept) <= _MAX_CACHED_KEY:
            if len(self._negotiated) >= _CACHE_SIZE:
                self._negotiated.clear()
            self._negotiated[accept] = spec
        return spec

    def excluded_type(self, content_type: bytes) -> bool:
        """Whether a ``Content-Type`` value names an excluded media type."""
        excluded = self._types.get(content_type)
        if excluded is None:
            media = content_type.partition(b";")[0].strip().lower()
            major = media.partition(b"/")[0]
            excluded = (
                media in self._excluded
                or (major + b"/*" in self._excluded and not media.endswith(_TEXT_SUFFIXES))
                or (media.startswith(b"application/grpc") and b"application/grpc" in self._excluded)
            )
            if len(content_type) <= _MAX_CACHED_KEY:
                if len(self._types) >= _CACHE_SIZE:
                    self._types.clear()
                self._types[content_type] = excluded
        return excluded

    def eligibility(self, status: int, headers: HeaderList) -> tuple[_Eligibility, int]:
        """Whether a response may be compressed, and its declared length (-1: none)."""
        if status < 200 or status in _UNCHANGED_STATUSES:
            return _NEVER, -1
        length = -1
        for key, value in headers:
            if key == b"content-type":
                excluded = self._types.get(value)
                if excluded is None:
                    excluded = self.excluded_type(value)
                if excluded:
                    return _NEVER, -1
            elif key == b"content-length":
                if value.isdigit():
                    length = int(value)
            elif key == b"content-encoding":
                # Any coding, identity included: the app's opt-out (see module docs).
                return _NEVER, -1
            elif key == b"content-range" or (
                key == b"cache-control" and b"no-transform" in value.lower()
            ):
                return _NEVER, -1
        return (_SMALL if 0 <= length < self.minimum_size else _MAYBE), length


def check_size(minimum_size: object) -> int:
    if not isinstance(minimum_size, int) or isinstance(minimum_size, bool) or minimum_size < 0:
        raise ValueError(f"minimum_size must be a non-negative int, not {minimum_size!r}")
    return minimum_size


def check_types(exclude_content_types: object) -> tuple[str, ...]:
    if isinstance(exclude_content_types, (str, bytes)) or not isinstance(
        exclude_content_types, Collection
    ):
        raise TypeError("exclude_content_types must be a collection of media type strings")
    for item in exclude_content_types:
        if not isinstance(item, str) or "/" not in item:
            raise ValueError(f"exclude_content_types: {item!r} is not a media type")
    return tuple(exclude_content_types)
