"""The protocol-neutral middleware protocol: what a core sees and what it returns.

Rules of this file:

* A core never sees ``environ``, ``scope``, ``receive`` or ``send``. It sees a
  :class:`RequestHead`, the response status and headers, body chunks and one
  :class:`Outcome`. The WSGI and ASGI drivers translate; they make no policy decision.
* Cores hold configuration only. Per-request state lives in the :class:`Handler` that
  :meth:`Core.on_request` returns, so one core serves concurrent requests safely.
* Headers are ``(name, value)`` pairs of ``bytes`` with lower-case names, on both sides.
  Request headers are looked up with :meth:`RequestHead.header`, which each driver
  answers from its native form without copying every header per request.
* A handler returns the header list it was given only when it left it unchanged; to
  change headers it builds a new list (never edits in place). Drivers rely on this to
  hand the app's own headers through untouched, in the app's spelling.
* A handler that transforms the body must hold the head until it has seen body (so
  an opaque body can still go out unchanged); one that only edits the head says so with
  ``head_only = True`` and the drivers then leave the body path alone.
* No I/O, no threads, no event loops here.

The per-request conversation, in order (each driver enforces it with a state machine)::

    core.on_request(head) -> None          # leave the request alone entirely
                           | Response      # short-circuit: the app is never called
                           | Handler
    handler.on_response_start(status, headers) -> Head | None   # None: hold the head
    handler.on_body(chunk, more) -> bytes                       # once per chunk, last more=False
    handler.pending_head() -> Head | None   # after on_body while the head is held
    handler.on_opaque_body() -> Head | None # body not visible (pathsend, file wrapper)
    handler.on_complete(outcome)            # exactly once (never for head_only ones)

Handlers may be shared between requests when they hold no per-request state (CORS
memoises one per origin); everything per request then lives in the driver's exchange.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import ClassVar, NamedTuple, TypeAlias

from bridge import interface_of

__all__ = [
    "Core",
    "Handler",
    "Head",
    "HeaderList",
    "Outcome",
    "PlainHead",
    "RequestHead",
    "Response",
    "detect_interface",
    "scan_header",
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


class RequestHead:
    """What a core knows about a request before the app runs; read-only.

    Not a frozen dataclass: one is built per request per middleware, and most cores
    read only ``method`` and a header or two. Drivers subclass it over ``scope`` or
    ``environ`` and answer everything else from there when asked (like werkzeug's
    request over ``environ``), so a request costs one small object; :class:`PlainHead`
    holds given values, for tests of a core.
    """

    __slots__ = ("method",)

    method: str

    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower-case), repeated fields joined by ``", "``."""
        raise NotImplementedError

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as ``(lower-case name, value)``; built on demand, so prefer
        :meth:`header` for a lookup."""
        raise NotImplementedError

    @property
    def path(self) -> str:
        """Decoded URL path (UTF-8), without the query."""
        raise NotImplementedError

    @property
    def query(self) -> bytes:
        """The raw query string, without ``?``."""
        raise NotImplementedError

    @property
    def scheme(self) -> str:
        raise NotImplementedError

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)`` when known."""
        raise NotImplementedError

    @property
    def http_version(self) -> str:
        """``"1.1"``, ``"2"``..."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.path}>"


def scan_header(raw: Iterable[Sequence[bytes]], name: bytes) -> bytes | None:
    """``name``'s value in a list of lower-case pairs, repeated fields joined by ``", "``."""
    # A linear scan beats building a dict: a request carries about ten headers and a
    # core asks for one or two of them.
    found: bytes | None = None
    more: list[bytes] | None = None
    for key, value in raw:
        if key == name:
            if found is None:
                found = value
            elif more is None:
                more = [found, value]
            else:
                more.append(value)  # joined once below: linear, not quadratic
    return found if more is None else b", ".join(more)


class PlainHead(RequestHead):
    """A request head from given values."""

    __slots__ = ("_client", "_headers", "_http_version", "_path", "_query", "_scheme")

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        scheme: str = "http",
        client: tuple[str, int] | None = None,
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self._headers = list(headers)
        self._path = path
        self._query = query
        self._scheme = scheme
        self._client = client
        self._http_version = http_version

    def header(self, name: bytes) -> bytes | None:
        return scan_header(self._headers, name)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._headers)

    @property
    def path(self) -> str:
        return self._path

    @property
    def query(self) -> bytes:
        return self._query

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def client(self) -> tuple[str, int] | None:
        return self._client

    @property
    def http_version(self) -> str:
        return self._http_version


class Response(NamedTuple):
    """A complete response a core sends instead of calling the app."""

    status: int
    headers: HeaderList
    body: bytes


class Handler:
    """Per-request state of one core; the defaults leave everything untouched."""

    __slots__ = ()

    head_only: ClassVar[bool] = False
    """True for a handler that only rewrites the head: it never holds it, keeps the
    default body methods and needs no :meth:`on_complete`. The drivers then hand the
    body straight through (WSGI: the app's own iterable), which is most of the cost of
    a middleware such as CORS."""

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


def detect_interface(app: object, interface: str | None) -> str:
    """``"asgi"`` or ``"wsgi"``: the explicit choice, else what ``bridge.interface_of`` says.

    So the marks ``bridge.wsgi_app`` / ``bridge.asgi_app`` work here too. A callable it
    cannot place is treated as WSGI, the interface of plain sync callables.
    """
    if interface is not None:
        if interface not in ("wsgi", "asgi"):
            raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        return interface
    if not callable(app):
        raise TypeError(f"app must be a WSGI or ASGI callable, not {type(app).__name__}")
    try:
        kind = interface_of(app)
    except TypeError:
        return "wsgi"
    if kind == "asgi2":
        raise TypeError(f"{app!r} is an ASGI 2 app: wrap it with bridge.to_asgi() first")
    return "asgi" if kind == "asgi3" else "wsgi"
