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
* Hooks are synchronous and do no I/O. One core runs on WSGI worker threads and on an
  ASGI event loop: a hook that blocked would stall every request on the loop, and one
  that awaited could not run on a thread. Anything slow belongs in the app, or in a
  logging handler that does its own queueing.
* No I/O, no threads, no event loops here.

The per-request conversation, in order (the neutral state machine of
:mod:`middleware._conversation` enforces it for both drivers)::

    core.on_request(head) -> None          # leave the request alone entirely
                           | Response      # short-circuit: the app is never called
                           | AddHeaders    # add response headers, nothing else
                           | Handler
    handler.on_response_start(status, headers) -> Head | None   # None: hold the head
    handler.on_body(chunk, more) -> bytes                       # once per chunk, last more=False
    handler.pending_head() -> Head | None   # after on_body while the head is held
    handler.on_opaque_body() -> Head | None # body not visible (pathsend, file wrapper)
    handler.on_complete(outcome)            # exactly once (never for head_only ones)
    handler.on_request_body(chunk, more)    # as the app reads the body, if overridden

In ``on_request`` a core may also change the request the app sees and hand it values
(:class:`middleware.RequestHead`'s ``set_*`` methods and ``state``).

Handlers may be shared between requests when they hold no per-request state (CORS
memoises one per origin); everything per request then lives in the driver's exchange.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar, NamedTuple, TypeAlias

from bridge import interface_of
from middleware._headers import add_vary
from middleware._request import PlainHead, RequestHead, scan_header

__all__ = [
    "AddHeaders",
    "AddPlan",
    "Core",
    "Handler",
    "Head",
    "HeaderList",
    "Outcome",
    "PlainHead",
    "ProtocolError",
    "RequestHead",
    "Response",
    "detect_interface",
    "handshake_headers",
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


class Response(NamedTuple):
    """A response a core sends instead of calling the app (the app is never called).

    ``body`` is bytes, or an iterable of bytes that is streamed chunk by chunk (its
    ``close()`` is called at the end, as PEP 3333 asks). ``path`` sends a file instead:
    by ``http.response.pathsend`` when the ASGI server offers it, by
    ``wsgi.file_wrapper`` (``sendfile``) on WSGI, else read in 64 KiB chunks.
    ``offset`` and ``length`` send only part of that file (a 206 for a Range request):
    ``length`` bytes from ``offset`` (``None``: to the end). Neither pathsend nor every
    server's ``sendfile`` can send part of a file, so a part is read in 64 KiB chunks
    (on WSGI through ``wsgi.file_wrapper`` without a ``fileno``) and never more than
    ``length`` bytes go out.
    """

    status: int
    headers: HeaderList
    body: bytes | Iterable[bytes] = b""
    path: str | None = None
    offset: int = 0
    length: int | None = None


class AddHeaders:
    """An answer from :meth:`Core.on_request`: add ``headers`` to the app's response
    head and touch nothing else (no handler, no body path, no :meth:`Handler.on_complete`).

    By default a header the app set itself wins (its name is left out of what is
    added); ``replace=True`` removes the app's headers of those names first. ``remove``
    names app headers to drop whatever is added; ``vary`` holds tokens to add to
    ``Vary`` (merged into the app's first ``Vary`` line unless listed there or ``*``).
    Names are lower-case ``bytes`` and compare case-insensitively with the app's. The
    drivers apply it in their own ``send``/``start_response`` wrapper, so a core that
    adds a fixed set (built once and returned every time) costs about what a
    do-nothing core does when the app's head has none of these names.
    """

    __slots__ = ("_plan", "_tail", "_wsgi", "headers")

    def __init__(
        self,
        headers: HeaderList,
        *,
        replace: bool = False,
        remove: Iterable[bytes] = (),
        vary: Iterable[bytes] = (),
    ) -> None:
        self.headers = headers
        """The pairs to add, in order; never changed by the drivers."""
        # AddPlan.__init__, inlined: a core may still build one of these per request.
        plan = self._plan = _new_plan(AddPlan)
        plan.replace = replace
        plan.remove = tuple(remove)
        plan.vary = vary = tuple(vary)
        plan._headers = headers
        plan.single = headers[0][0] if len(headers) == 1 else None
        plan._names = None
        plan.asgi = plan.wsgi = plan.wsgi_names = None
        if vary:
            plan.vary_pair = vary_pair = (b"vary", b", ".join(vary))
            # What follows the app's headers when it set none of ``names``.
            self._tail = [*headers, vary_pair]
        else:
            plan.vary_pair = None
            self._tail = headers
        self._wsgi: list[tuple[str, str]] | None = None  # _tail as WSGI pairs

    @property
    def replace(self) -> bool:
        """Whether the app's headers of these names are dropped first."""
        return self._plan.replace

    @property
    def remove(self) -> tuple[bytes, ...]:
        """App header names dropped whatever is added."""
        return self._plan.remove

    @property
    def vary(self) -> tuple[bytes, ...]:
        """Tokens merged into the app's ``Vary``."""
        return self._plan.vary

    @property
    def names(self) -> frozenset[bytes]:
        """Every app header name that makes a difference: those added, removed, and
        ``vary`` when tokens are to be added."""
        return self._plan.names

    def with_values(self, *values: bytes) -> AddHeaders:
        """These additions with other values: one per header of :attr:`headers`, in
        order, under the same names and options.

        For a core whose values change per request (a request id): build one
        ``AddHeaders`` when the core is made and return ``template.with_values(v)`` per
        request. It costs a fraction of what the constructor does, and what the drivers
        learnt about the app's header names is shared with the template.
        """
        plan = self._plan
        extra = self.headers
        if len(values) != len(extra):
            raise ValueError(f"with_values: {len(extra)} values expected, got {len(values)}")
        new = _new_add_headers(AddHeaders)
        if len(values) == 1:
            headers = [(extra[0][0], values[0])]
        else:
            headers = [(pair[0], value) for pair, value in zip(extra, values, strict=True)]
        new.headers = headers
        vary_pair = plan.vary_pair
        new._tail = headers if vary_pair is None else [*headers, vary_pair]
        new._wsgi = None
        new._plan = plan
        return new

    def with_value(self, value: bytes, /) -> AddHeaders:
        """:meth:`with_values` for a template of one header (a request id's echo): the
        same result at about two thirds of the cost, since a call with a fixed number
        of arguments is one the interpreter specialises."""
        plan = self._plan
        name = plan.single
        if name is None:
            raise ValueError(f"with_value: the template has {len(self.headers)} headers, not 1")
        new = _new_add_headers(AddHeaders)
        new.headers = headers = [(name, value)]
        new._plan = plan
        vary_pair = plan.vary_pair
        new._tail = headers if vary_pair is None else [*headers, vary_pair]
        new._wsgi = None
        return new

    def __repr__(self) -> str:
        return (
            f"AddHeaders({self.headers!r}, replace={self.replace!r}, "
            f"remove={list(self.remove)!r}, vary={list(self.vary)!r})"
        )

    def merged(self, headers: HeaderList) -> HeaderList:
        """``headers`` (lower-case names) with these applied: what the drivers send."""
        drop = {*self.remove, *(pair[0] for pair in self.headers)} if self.replace else None
        if drop is None:
            drop = set(self.remove)
        out = [pair for pair in headers if pair[0] not in drop]
        present = {pair[0] for pair in out}
        out += [pair for pair in self.headers if pair[0] not in present]
        for token in self.vary:
            add_vary(out, token, token.lower())
        return out


_new_add_headers = object.__new__  # with_values fills every slot itself
_new_plan = object.__new__  # AddHeaders.__init__ fills every slot itself


class AddPlan:
    """What an :class:`AddHeaders` and its :meth:`AddHeaders.with_values` copies share:
    the options, the names that make a difference, and what the drivers learnt about
    apps' response-header names (those seen to need no merge, in the app's spelling:
    lower case on ASGI, none of the names added), so the next head is checked in one
    pass over its names. The drivers bound the learnt sets."""

    __slots__ = (
        "_headers",
        "_names",
        "asgi",
        "remove",
        "replace",
        "single",
        "vary",
        "vary_pair",
        "wsgi",
        "wsgi_names",
    )

    # Filled in by AddHeaders.__init__ (no __init__ frame here).
    replace: bool
    remove: tuple[bytes, ...]
    vary: tuple[bytes, ...]
    vary_pair: tuple[bytes, bytes] | None  # the Vary line to add when none is there
    _headers: HeaderList  # the template's: its names are every copy's
    _names: frozenset[bytes] | None  # made on first use
    single: bytes | None  # the name, for a template of one header (with_value)
    asgi: set[bytes] | None  # the learnt names, made by the drivers on first use
    wsgi: set[str] | None
    wsgi_names: frozenset[str] | None  # names, as str

    @property
    def names(self) -> frozenset[bytes]:
        """See :attr:`AddHeaders.names`."""
        names = self._names
        if names is None:
            found = {pair[0] for pair in self._headers}
            found.update(self.remove)
            if self.vary:
                found.add(b"vary")
            names = self._names = frozenset(found)
        return names


class ProtocolError(RuntimeError):
    """A handler broke the per-request conversation (a bug in the middleware, not in
    the app or the client): raised in every run, never an ``assert`` that ``-O`` strips."""


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

    def on_request_body(self, chunk: bytes, more: bool) -> bytes:
        """One request-body chunk as the app reads it (``more=False`` on the last, which
        may be empty); return the bytes the app gets. Only called when overridden, so
        the body is never buffered here. Raising stops the app's read with that error."""
        return chunk


class Core:
    """A middleware's configuration and the factory of its per-request handlers."""

    __slots__ = ()

    websocket_handshakes: ClassVar[bool] = False
    """True: :meth:`on_request` also sees each WebSocket handshake, as a ``GET`` whose
    scheme is ``http``/``https`` (``ws``/``wss`` on the wire). It may change the request
    and hand the app state as for HTTP, or answer with a :class:`Response`, which
    refuses the connection before accept: the client gets that response where the ASGI
    server offers the ``websocket.http.response`` extension (a ``Location`` in
    ``ws``/``wss`` form), else a ``websocket.close`` that servers answer with 403. A
    handler returned for a handshake is not used (there is no HTTP response to follow).
    False (the default): handshakes pass the middleware untouched."""

    def on_request(self, head: RequestHead) -> Handler | Response | AddHeaders | None:
        """Return ``None`` to leave the request alone, a :class:`Response`, a handler, or
        :class:`AddHeaders` (response headers to add, with no handler at all)."""
        raise NotImplementedError


def handshake_headers(headers: HeaderList) -> HeaderList:
    """A refusal's headers for a WebSocket client: a ``Location`` in ``ws``/``wss`` form."""
    out: HeaderList = []
    for name, value in headers:
        if name == b"location" and value.startswith(b"https://"):
            out.append((name, b"wss://" + value[8:]))
        elif name == b"location" and value.startswith(b"http://"):
            out.append((name, b"ws://" + value[7:]))
        else:
            out.append((name, value))
    return out


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
