"""BodyLimit: the most request-body bytes one request may send, on WSGI and ASGI.

Two cases, decided from the request head:

* **Declared** (``Content-Length``): over the limit, the client gets 413 and the app is
  never called (on ``BodyLimit(WSGIToASGI(app))`` no worker thread is taken either).
  Within the limit nothing is watched: the server frames the body by that length, so
  the app cannot read more than it declared.
* **Not declared** (chunked, or HTTP/2 without ``Content-Length``): the body is counted
  as the app reads it. The read that would take the app past the limit raises
  :class:`RequestBodyTooLarge` instead of returning bytes (``wsgi.input.read()`` and
  friends on WSGI, ``await receive()`` on ASGI), so the app never holds a byte past the
  limit. If the response has not gone out yet the client gets 413, whatever the app
  did with the error (let it propagate, answered 500 as Flask does, 400 as FastAPI
  does); if it has, the error goes on to the server, which aborts the response.

An HTTP/1 request with neither ``Content-Length`` nor ``Transfer-Encoding`` has no body
(RFC 9112 section 6.3) and is left alone, so a GET costs two header lookups. On WSGI an
unbounded ``read()`` or ``readline()`` of a body of unknown length is done in 64 KiB
pieces, so the server never buffers much more than the limit for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, RequestHead, Response

__all__ = ["BodyLimit", "RequestBodyTooLarge"]

DEFAULT_MAX_BODY_SIZE = 1 << 20
_PIECE = 65536
_BODY = b"Request body too large"
_HEADERS: HeaderList = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode("ascii")),
]
# ASGI on HTTP/1 only: on HTTP/2 and 3 Connection is a forbidden field, and PEP 3333
# forbids hop-by-hop headers from WSGI apps (wsgiref refuses them, gunicorn drops them).
# Closing spares the server reading a body nobody wants.
_HEADERS_CLOSE: HeaderList = [*_HEADERS, (b"connection", b"close")]
_HTTP1 = frozenset({"1.0", "1.1"})
_WSGI_HTTP1 = frozenset({"HTTP/1.0", "HTTP/1.1"})
_STATUS_LINE = "413 Content Too Large"
_MAX_DIGITS = 18  # any longer Content-Length is over every limit (and int() stays cheap)


class RequestBodyTooLarge(Exception):
    """Raised by the app's read of a request body that goes past ``BodyLimit``'s limit.

    The read that raises returns no bytes; later reads raise again. ``BodyLimit``
    turns it into a 413 when the response has not gone out yet.
    """

    def __init__(self, limit: int, handler: _Counting | None = None) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit
        self.handler = handler


class _Counting(Handler):
    """Counts the body the app reads; after the limit hit, answers 413 if it still can."""

    __slots__ = ("_closing", "_head", "_left", "_limit", "answered", "released", "tripped")

    def __init__(self, limit: int, closing: bool) -> None:
        self._limit = limit
        self._left = limit
        self._closing = closing
        self._head: Head | None = None
        self.tripped = False  # the app's read went past the limit
        self.released = False  # a response head went out
        self.answered = False  # that head was our 413 and its body went out in full

    def on_request_body(self, chunk: bytes, more: bool) -> bytes:
        size = len(chunk)
        if size and (self.tripped or size > self._left):
            self.tripped = True
            raise RequestBodyTooLarge(self._limit, self)
        self._left -= size
        return chunk

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        # Held until the first body chunk, so a 413 can still replace it when the limit
        # hits after the app started its response (or the app answers an error for it).
        self._head = (status, headers)
        return None

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        if self.released:
            return b"" if self.answered else chunk
        self.released = True
        if self.tripped:
            self.answered = True
            self._head = (413, _HEADERS_CLOSE if self._closing else _HEADERS)
            return _BODY
        return chunk

    def pending_head(self) -> Head | None:
        return self._head

    def on_opaque_body(self) -> Head | None:
        head, self._head = self._head, None
        self.released = True
        return head


class _BodyLimitCore(Core):
    __slots__ = ("_limit", "_too_large", "_too_large_close", "closing")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._too_large = Response(413, _HEADERS, _BODY)
        self._too_large_close = Response(413, _HEADERS_CLOSE, _BODY)
        self.closing = False  # may the 413 say Connection: close (ASGI)

    def on_request(self, head: RequestHead) -> Handler | Response | None:
        declared = head.header(b"content-length")
        if declared:
            if declared.isdigit():
                digits = declared.lstrip(b"0")
                if len(digits) <= _MAX_DIGITS and int(digits or b"0") <= self._limit:
                    return None
                close = self.closing and head.http_version in _HTTP1
                return self._too_large_close if close else self._too_large
            # Repeated or malformed: the server framed the body somehow; count it.
        elif head.http_version in _HTTP1 and not head.header(b"transfer-encoding"):
            return None
        return _Counting(self._limit, self.closing and head.http_version in _HTTP1)


def _answerable(error: RequestBodyTooLarge) -> bool:
    handler = error.handler
    return handler is not None and not handler.released


def _in_pieces(read: Callable[[int], bytes], size: int | None, *, line: bool) -> bytes:
    """``read(size)`` of a stream, an unbounded (or large) size asked for in 64 KiB
    pieces so that each piece is counted before the next is pulled; a line ends at
    its newline."""
    if size is not None and 0 <= size <= _PIECE:
        return read(size)
    want = -1 if size is None else size
    parts: list[bytes] = []
    while want:
        data = read(_PIECE if want < 0 else min(want, _PIECE))
        if not data:
            break
        parts.append(data)
        if line and data.endswith(b"\n"):
            break
        if want > 0:
            want -= len(data)
    return b"".join(parts)


class _BoundedInput:
    """``wsgi.input`` whose unbounded reads go in 64 KiB pieces, each one counted."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        return _in_pieces(self._stream.read, size, line=False)

    def readline(self, size: int | None = -1) -> bytes:
        return _in_pieces(self._stream.readline, size, line=True)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def _guarded_body(result: Iterable[bytes], start_response: Any) -> Iterator[bytes]:
    """The app's body; a limit hit before its first chunk answers 413 instead."""
    try:
        yield from result
    except RequestBodyTooLarge as error:
        if not _answerable(error):
            raise
        start_response(_STATUS_LINE, [], sys.exc_info())
        yield _BODY  # the handler puts its own 413 head on it
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class _WSGIGuard:
    """Inside the driver: a limit hit the app did not handle becomes a 413."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # The core's decision, read from the environ: no counting, nothing to guard.
        declared = environ.get("CONTENT_LENGTH")
        if (
            declared.isdigit()
            if declared
            else (
                environ.get("SERVER_PROTOCOL", "HTTP/1.1").upper() in _WSGI_HTTP1
                and not environ.get("HTTP_TRANSFER_ENCODING")
            )
        ):
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        environ["wsgi.input"] = _BoundedInput(environ["wsgi.input"])
        try:
            result = self.app(environ, start_response)
        except RequestBodyTooLarge as error:
            if not _answerable(error):
                raise
            start_response(_STATUS_LINE, [], sys.exc_info())
            return [_BODY]
        return _guarded_body(result, start_response)

    def __repr__(self) -> str:
        return repr(self.app)


class _ASGIGuard:
    """Inside the driver: a limit hit the app did not handle becomes a 413."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except RequestBodyTooLarge as error:
            handler = error.handler
            if handler is not None and handler.answered:
                return  # the app answered an error for it, which went out as our 413
            if handler is None or handler._head is not None or handler.released:
                raise  # the app started its response: the driver's 500 becomes the 413
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": _BODY, "more_body": False})

    def __repr__(self) -> str:
        return repr(self.app)


class BodyLimit(CoreMiddleware):
    """Answer 413 before the app reads more than ``max_body_size`` request-body bytes.

    A declared ``Content-Length`` over the limit is refused before the app is called;
    a body of unknown length is counted as the app reads it, and the read that would go
    past the limit raises :class:`RequestBodyTooLarge` (see the module docstring).
    """

    def __init__(
        self, app: Any, *, max_body_size: int = DEFAULT_MAX_BODY_SIZE, interface: str | None = None
    ) -> None:
        if type(max_body_size) is not int:
            raise TypeError(f"BodyLimit(max_body_size={max_body_size!r}): expected an int of bytes")
        if max_body_size < 0:
            raise ValueError(f"BodyLimit(max_body_size={max_body_size!r}): must be >= 0")
        core = _BodyLimitCore(max_body_size)
        super().__init__(app, core, interface=interface)
        core.closing = self.interface == "asgi"
        self.max_body_size = max_body_size
        self.app = _ASGIGuard(app) if self.interface == "asgi" else _WSGIGuard(app)
