"""The WSGI side of a response: ``start_response`` as a state machine, and ``wsgi.file_wrapper``.

Pure: nothing here sends anything. PEP 3333 decides the rules:

- headers are held back until the app produces its first non-empty body chunk (or
  finishes), so ``start_response(..., exc_info)`` can still replace them until then;
- once they are sent, ``start_response(..., exc_info)`` re-raises the app's exception;
- a second call without ``exc_info`` is an error;
- header names must be tokens and values latin-1 text without CR, LF or NUL, or they
  could split the response on the wire (checked here, when the app calls, so the
  traceback points at the app); hop-by-hop headers are the server's business and are
  dropped.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Final

from bridge._http import HOP_BY_HOP, InvalidResponse, invalid_value_reason, is_token
from bridge._types import OptExcInfo

logger = logging.getLogger("bridge.wsgi_to_asgi")

RawHeaders = list[tuple[bytes, bytes]]
_NAME_CACHE: dict[str, bytes] = {}
_NAME_CACHE_LIMIT: Final = 1024
# Status strings already parsed: apps use a handful, and a lookup beats re-checking.
_STATUS_CACHE: dict[str, int] = {}
_STATUS_CACHE_LIMIT: Final = 256
# Header pairs already validated and encoded, with their Content-Length if they declare
# one: apps send the same few pairs on every response. Bounded in bytes as well as
# entries (only short pairs are kept), since values may come from the request.
_PAIR_CACHE: dict[tuple[str, str], tuple[tuple[bytes, bytes], int | None]] = {}
_PAIR_CACHE_LIMIT: Final = 512
_PAIR_CACHE_VALUE: Final = 128  # characters of name and value together


class Phase(enum.Enum):
    AWAITING_START = "start_response not called yet"
    HEADERS_PENDING = "headers set, not yet sent"
    HEADERS_SENT = "headers sent"


# The members as plain module constants for the per-request code: on CPython 3.11 each
# ``Phase.X`` runs enum's Python-level descriptor (~0.3 µs), and a request reads a dozen.
AWAITING_START: Final = Phase.AWAITING_START
HEADERS_PENDING: Final = Phase.HEADERS_PENDING
HEADERS_SENT: Final = Phase.HEADERS_SENT

_ALLOWED: Final = {
    Phase.AWAITING_START: frozenset({Phase.HEADERS_PENDING}),
    Phase.HEADERS_PENDING: frozenset({Phase.HEADERS_PENDING, Phase.HEADERS_SENT}),
    Phase.HEADERS_SENT: frozenset(),
}


def _encode_name(name: object) -> bytes:
    encoded = _NAME_CACHE.get(name) if isinstance(name, str) else None
    if encoded is not None:
        return encoded
    if not isinstance(name, str) or not is_token(name):
        raise InvalidResponse(f"invalid response header name {name!r}")
    encoded = name.lower().encode("ascii")
    if len(_NAME_CACHE) < _NAME_CACHE_LIMIT:
        _NAME_CACHE[name] = encoded
    return encoded


def parse_status(status: object) -> int:
    """The code of a WSGI status string such as ``"200 OK"``."""
    if type(status) is str:
        cached = _STATUS_CACHE.get(status)
        if cached is not None:
            return cached
    if not isinstance(status, str):
        raise InvalidResponse(f"status must be a str, not {type(status).__name__}")
    code = status[:3]
    if not (code.isdigit() and code.isascii() and status[3:4] in ("", " ")):
        raise InvalidResponse(f"status {status!r} does not start with a 3-digit code")
    if invalid_value_reason(status) is not None:
        raise InvalidResponse(f"status {status!r} holds a control character")
    value = int(code)
    if value < 200:
        raise InvalidResponse(f"status {status!r}: a WSGI app cannot send an interim response")
    # Only short strings: the app chooses them, and memory stays bounded in bytes.
    if type(status) is str and len(status) <= 64 and len(_STATUS_CACHE) < _STATUS_CACHE_LIMIT:
        _STATUS_CACHE[status] = value
    return value


def encode_headers(headers: Iterable[Any]) -> tuple[RawHeaders, int | None]:
    """Validated ASGI headers (lower-case names) and the declared Content-Length, if any."""
    # Exact-type tests first: the usual list of tuples of str never reaches isinstance(),
    # whose ABC check (Iterable) alone cost about as much as a header.
    if type(headers) is not list and (
        isinstance(headers, (str, bytes)) or not isinstance(headers, Iterable)
    ):
        raise InvalidResponse(f"headers must be a list of (name, value), not {headers!r}")
    encoded: RawHeaders = []
    content_length: int | None = None
    for header in headers:
        if type(header) is tuple:
            try:
                cached = _PAIR_CACHE.get(header)
            except TypeError:  # an unhashable part: refused below
                cached = None
            if cached is not None:
                pair, length = cached
                if length is not None:
                    if content_length is not None and length != content_length:
                        raise InvalidResponse("conflicting Content-Length headers")
                    content_length = length
                encoded.append(pair)
                continue
        # PEP 3333 says tuples; lists are accepted as gunicorn, asgiref and a2wsgi do.
        if (type(header) is not tuple and not isinstance(header, (tuple, list))) or len(
            header
        ) != 2:
            raise InvalidResponse(f"response header {header!r} is not a (name, value) pair")
        name, value = header
        raw_name = _NAME_CACHE.get(name) if type(name) is str else None
        if raw_name is None:
            raw_name = _encode_name(name)
        if not isinstance(value, str):
            raise InvalidResponse(f"value of header {name!r} must be a str, not {value!r}")
        # Printable ASCII (the common case) is checked in C without a call.
        if not (value.isascii() and value.isprintable()):
            reason = invalid_value_reason(value)
            if reason is not None:
                raise InvalidResponse(f"value of header {name!r} has a {reason}: {value!r}")
        if raw_name in HOP_BY_HOP_BYTES:
            logger.debug("dropped hop-by-hop response header %r (PEP 3333)", name)
            continue
        declared: int | None = None
        if raw_name == b"content-length":
            text = value.strip()
            if not text.isdigit() or not text.isascii():
                raise InvalidResponse(f"Content-Length {value!r} is not a whole number")
            declared = int(text)
            if content_length is not None and declared != content_length:
                raise InvalidResponse("conflicting Content-Length headers")
            content_length = declared
        pair = (raw_name, value.encode("latin-1"))
        encoded.append(pair)
        if (
            type(header) is tuple
            and type(name) is str
            and type(value) is str
            and len(name) + len(value) <= _PAIR_CACHE_VALUE
            and len(_PAIR_CACHE) < _PAIR_CACHE_LIMIT
        ):
            _PAIR_CACHE[header] = (pair, declared)
    return encoded, content_length


HOP_BY_HOP_BYTES: Final = frozenset(name.encode("ascii") for name in HOP_BY_HOP)


class StartResponse:
    """What the app said in ``start_response``, and whether it has gone out yet.

    The state machine without storage for ``write``: a subclass supplies ``write``
    (the callable ``start_response`` returns) and calls :meth:`_reset_head` first.
    ``WSGIToASGI``'s per-request exchange is one, so a request makes no separate
    head object (and no bound method held in it, a reference cycle to break).
    """

    __slots__ = ("content_length", "headers", "phase", "status")

    write: Callable[[bytes], None]

    def _reset_head(self) -> None:
        self.phase = AWAITING_START
        self.status = 500
        self.headers: RawHeaders = []
        self.content_length: int | None = None

    def _enter(self, phase: Phase) -> None:
        # The moves of _ALLOWED, as identity tests: an Enum's hash runs Python code.
        current = self.phase
        if not (
            (current is HEADERS_PENDING and phase is not AWAITING_START)
            or (current is AWAITING_START and phase is HEADERS_PENDING)
        ):
            raise RuntimeError(f"response cannot go from {current.value!r} to {phase.value!r}")
        self.phase = phase

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """The ``start_response`` callable handed to the app (PEP 3333); ``exc_info`` may
        also be passed by keyword, as every server accepts."""
        if exc_info is not None and exc_info[1] is not None:
            if self.phase is HEADERS_SENT:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.phase is not AWAITING_START:
            raise RuntimeError(
                "start_response() was called a second time without exc_info (PEP 3333)"
            )
        code = parse_status(status)
        raw_headers, length = encode_headers(headers)
        if self.phase is AWAITING_START:
            self.phase = HEADERS_PENDING  # the usual first call: _enter()'s move, inline
        else:
            self._enter(HEADERS_PENDING)
        self.status, self.headers, self.content_length = code, raw_headers, length
        return self.write

    def mark_sent(self) -> None:
        """Record that the head has gone to the server; from now on it is final."""
        if self.phase is AWAITING_START:
            raise RuntimeError("the app produced a response body before calling start_response()")
        self._enter(HEADERS_SENT)


class ResponseHead(StartResponse):
    """A :class:`StartResponse` whose ``write`` is the callable it is given."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._reset_head()
        self.write = write


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks, or let the server send it by path."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while data := read(self.blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self, content_length: int | None) -> str | None:
        """The file's absolute path when the server may send it whole by path instead.

        Only for a regular file opened by absolute path, not yet read from, still the
        file at that path, and (when declared) exactly ``content_length`` bytes long.
        """
        name = getattr(self.filelike, "name", None)
        fileno = getattr(self.filelike, "fileno", None)
        tell = getattr(self.filelike, "tell", None)
        if not isinstance(name, str) or not os.path.isabs(name) or fileno is None or tell is None:
            return None
        try:
            opened = os.fstat(fileno())
            on_disk = os.stat(name)
            position = tell()
        except (OSError, ValueError):
            return None
        same_file = (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)
        if not same_file or position != 0 or not os.path.isfile(name):
            return None
        if content_length is not None and content_length != opened.st_size:
            return None
        return name


def close_app_iterable(iterable: object, environ: dict[str, Any]) -> None:
    """End a WSGI call (PEP 3333): the iterable's ``close()`` once, and ``wsgi.errors`` flushed.

    A ``close()`` that raises is logged, not raised: the response is already settled.
    """
    close = getattr(iterable, "close", None)
    if close is not None:
        try:
            close()
        except BaseException:
            logger.exception("close() of the WSGI app's iterable raised")
    errors = environ.get("wsgi.errors")
    if errors is not None:
        errors.flush()
