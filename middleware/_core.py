"""The protocol-neutral middleware protocol: what a core sees and what it returns.

Rules of this file:

* A core never sees ``environ``, ``scope``, ``receive`` or ``send``. It sees a
  :class:`RequestHead`, the response status and headers, body chunks and one
  :class:`Outcome`. The WSGI and ASGI drivers translate; they make no policy decision.
* Cores hold configuration only. Per-request state lives in the :class:`Handler` that
  :meth:`Core.on_request` returns, so one core serves concurrent requests safely.
* Headers are ``(name, value)`` pairs of ``bytes`` with lower-case names, on both sides.
  Request headers are read through :class:`RequestHeaders` so that each driver can
  answer a lookup from its native form without copying every header per request.
* No I/O, no threads, no event loops here.

The per-request conversation, in order (each driver enforces it with a state machine)::

    core.on_request(head) -> None          # leave the request alone entirely
                           | Response      # short-circuit: the app is never called
                           | Handler
    handler.on_response_start(status, headers) -> Head | None   # None: hold the head
    handler.on_body(chunk, more) -> bytes                       # once per chunk, last more=False
    handler.pending_head() -> Head | None   # after on_body while the head is held
    handler.on_opaque_body() -> Head | None # body not visible (pathsend, file wrapper)
    handler.on_complete(outcome)            # exactly once, whatever happened
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeAlias

__all__ = [
    "Core",
    "Handler",
    "Head",
    "HeaderList",
    "Outcome",
    "RequestHead",
    "RequestHeaders",
    "Response",
    "detect_interface",
]

HeaderList: TypeAlias = list[tuple[bytes, bytes]]
"""Response headers as the cores see them: lower-case ``bytes`` names, ``bytes`` values."""

Head: TypeAlias = tuple[int, HeaderList]
"""A response head: status code and headers."""


class Outcome(enum.Enum):
    """How a request ended, reported once to :meth:`Handler.on_complete`."""

    COMPLETED = "completed"
    CLIENT_DISCONNECTED = "client_disconnected"
    APP_EXCEPTION = "app_exception"


class RequestHeaders:
    """Read-only request headers; drivers subclass this over their native form."""

    __slots__ = ()

    def get(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower-case), repeated fields joined by ``", "``."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError


class ListHeaders(RequestHeaders):
    """Request headers held as a list of lower-case ``(name, value)`` pairs (ASGI, tests)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def get(self, name: bytes) -> bytes | None:
        # A linear scan beats building a dict: a request carries about ten headers and a
        # core asks for one or two of them.
        found: bytes | None = None
        for key, value in self._raw:
            if key == name:
                found = value if found is None else found + b", " + value
        return found

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._raw:
            yield bytes(key), bytes(value)


class RequestHead(NamedTuple):
    """What a core knows about a request before the app runs.

    A ``NamedTuple`` rather than a frozen dataclass: it is just as immutable and is built
    several times faster, and one is built per request per middleware.
    """

    method: str
    path: str
    """Decoded URL path (UTF-8), without the query."""
    query: bytes
    headers: RequestHeaders
    scheme: str
    client: tuple[str, int] | None
    http_version: str


class Response(NamedTuple):
    """A complete response a core sends instead of calling the app."""

    status: int
    headers: HeaderList
    body: bytes


class Handler:
    """Per-request state of one core; the defaults leave everything untouched."""

    __slots__ = ()

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        """The app's response head; return the head to send now, or ``None`` to hold it."""
        return status, headers

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        """One body chunk from the app (``more=False`` on the last); return bytes to send."""
        return chunk

    def pending_head(self) -> Head | None:
        """After :meth:`on_body`, the held head once it is decided (always when ``more`` ended)."""
        raise NotImplementedError  # only called after on_response_start returned None

    def on_opaque_body(self) -> Head | None:
        """The body will not pass through Python; return the held head unchanged, if any."""
        return None

    def on_complete(self, outcome: Outcome) -> None:
        """Called exactly once, after the response finished or failed."""


class Core:
    """A middleware's configuration and the factory of its per-request handlers."""

    __slots__ = ()

    def on_request(self, head: RequestHead) -> Handler | Response | None:
        """Return ``None`` to leave the request alone, a :class:`Response`, or a handler."""
        raise NotImplementedError


def _is_coroutine_callable(app: object) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - we need the method itself
    return call is not None and inspect.iscoroutinefunction(call)


def detect_interface(app: object, interface: str | None) -> str:
    """``"asgi"`` or ``"wsgi"``: the explicit choice, else ASGI 3 iff a coroutine callable."""
    if interface is not None:
        if interface not in ("wsgi", "asgi"):
            raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        return interface
    if not callable(app):
        raise TypeError(f"app must be a WSGI or ASGI callable, not {type(app).__name__}")
    return "asgi" if _is_coroutine_callable(app) else "wsgi"
