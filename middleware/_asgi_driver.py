"""The ASGI 3 driver: runs any core over ``scope`` / ``receive`` / ``send``.

It translates ASGI messages into the neutral protocol of :mod:`middleware._core` and
back, and makes no policy decision of its own. It starts no threads and never blocks.

Anything a core does not handle passes through untouched: non-HTTP scopes (lifespan,
and websocket unless the core set ``websocket_handshakes``), informational responses
(``http.response.informational``, early hints), ``http.response.trailers`` and
unknown messages. ``http.response.pathsend`` (and the
``zerocopysend`` extension) carry no body in Python, so the core is told the body is
opaque and the held head goes out unchanged.

When the app raises before its response went out, the client gets a 500 sent through
the core (so CORS headers are on it and the access log sees it) and the exception goes
on to the server unchanged; a cancelled app (the client went away) gets no 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from bridge._types import ASGIApp, Message, Receive, Scope, Send
from middleware._conversation import (
    AWAITING_START,
    COMPLETE,
    FINISHED,
    HEAD_HELD,
    STREAMING,
    Conversation,
    held_head_error,
    leaked_body_error,
    still_held_error,
)
from middleware._core import (
    AddHeaders,
    Core,
    Handler,
    Head,
    HeaderList,
    Outcome,
    ProtocolError,
    RequestHead,
    Response,
    handshake_headers,
)
from middleware._headers import all_known
from middleware._request import (
    check_header,
    check_root_path,
    check_scheme,
    request_state,
    scan_header,
)

__all__ = ["ASGIDriver"]


# Body messages whose bytes never pass through Python (ASGI "HTTP path send" extension).
_OPAQUE_BODIES = frozenset({"http.response.pathsend", "http.response.zerocopysend"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TO_HTTP = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_TO_WS = {"http": "ws", "https": "wss"}
_FILE_CHUNK = 65536

_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS: HeaderList = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_ERROR_BODY)).encode()),
]


class ScopeHead(RequestHead):
    """The neutral request head over an HTTP ``scope``; changes go into the scope."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope) -> None:
        self.method = scope["method"]
        self._scope = scope
        self._state = None

    def header(self, name: bytes) -> bytes | None:
        # scan_header, inlined for the usual field that occurs at most once.
        found = None
        for key, value in self._scope["headers"]:
            if key == name:
                if found is not None:
                    return scan_header(self._scope["headers"], name)  # repeated: join
                found = value
        return found

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(key), bytes(value)) for key, value in self._scope["headers"]]

    @property
    def path(self) -> str:
        path: str = self._scope["path"]
        return path

    @property
    def root_path(self) -> str:
        root_path: str = self._scope.get("root_path", "")
        return root_path

    @property
    def query(self) -> bytes:
        query: bytes = self._scope.get("query_string", b"")
        return query

    @property
    def scheme(self) -> str:
        scheme: str = self._scope.get("scheme", "http")
        return scheme

    @property
    def client(self) -> tuple[str, int | None] | None:
        client = self._scope.get("client")
        return None if client is None else (client[0], client[1])

    @property
    def server(self) -> tuple[str, int | None] | None:
        server = self._scope.get("server")
        return None if server is None else (server[0], server[1])

    @property
    def http_version(self) -> str:
        version: str = self._scope.get("http_version", "1.1")
        return version

    @property
    def state(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            # Starlette's request.state reads scope["state"]; the server may have put
            # the lifespan state there (a per-request copy), which we add to.
            scope = self._scope
            state = scope.get("state")
            if state is None:  # no dict made per request only to be dropped
                state = scope["state"] = {}
            self._state = state
        return state

    def set_client(self, host: str, port: int | None = None) -> None:
        self._scope["client"] = (host, port)

    def set_scheme(self, scheme: str) -> None:
        self._scope["scheme"] = check_scheme(scheme)

    def set_server(self, host: str, port: int | None = None) -> None:
        if port is None:
            port = _DEFAULT_PORTS[self.scheme]
        self._scope["server"] = (host, port)

    def set_root_path(self, root_path: str) -> None:
        root_path = check_root_path(root_path)
        scope = self._scope
        old_root = self.root_path
        path = self.path
        rest = path[len(old_root) :] if path.startswith(old_root) else path
        scope["root_path"] = root_path
        scope["path"] = root_path + rest
        raw = scope.get("raw_path")
        if raw is not None:
            old_raw = quote(old_root).encode("ascii")
            if raw.startswith(old_raw):
                scope["raw_path"] = quote(root_path).encode("ascii") + raw[len(old_raw) :]
            else:
                del scope["raw_path"]  # optional in the spec; a wrong one would mislead

    def set_header(self, name: bytes, value: bytes) -> None:
        scope = self._scope
        old = scope["headers"]
        scope["headers"] = [pair for pair in old if pair[0] != name]  # a new list
        try:
            self.add_header(name, value)
        except Exception:
            scope["headers"] = old  # a refused header changes nothing
            raise

    def add_header(self, name: bytes, value: bytes) -> None:
        check_header(name, value)
        scope = self._scope
        scope["headers"] = [*scope["headers"], (name, value)]

    def remove_header(self, name: bytes) -> None:
        check_header(name)
        self._scope["headers"] = [pair for pair in self._scope["headers"] if pair[0] != name]


class WebSocketHead(ScopeHead):
    """A :class:`ScopeHead` over a ``websocket`` scope: a ``GET`` whose scheme reads
    ``http``/``https`` (the scheme a core knows) and is written back as ``ws``/``wss``."""

    __slots__ = ()

    def __init__(self, scope: Scope) -> None:
        self.method = "GET"
        self._scope = scope
        self._state = None

    @property
    def scheme(self) -> str:
        return _TO_HTTP.get(self._scope.get("scheme", "ws"), "http")

    def set_scheme(self, scheme: str) -> None:
        self._scope["scheme"] = _TO_WS[check_scheme(scheme)]


class _NewScopeHead(ScopeHead):
    """A :class:`ScopeHead` made without an ``__init__`` frame (the driver fills it in):
    ``type()`` then runs only C code, a fifth of what a do-nothing middleware costs."""

    __slots__ = ()
    __init__ = object.__init__


async def _send_response(scope: Scope, send: Send, response: Response) -> None:
    """Send a core's own response: bytes, a streamed iterable, or a file by path."""
    start = {"type": "http.response.start", "status": response.status, "headers": response.headers}
    body = response.body
    if response.path is not None:
        await send(start)
        whole = response.offset == 0 and response.length is None
        if whole and "http.response.pathsend" in (scope.get("extensions") or {}):
            await send({"type": "http.response.pathsend", "path": response.path})
            return
        # No pathsend (or only part of the file, which pathsend cannot say): read it
        # here. Local file reads are what Starlette's FileResponse does without a
        # thread for small chunks; the chunk size bounds each stall.
        left = response.length
        # Unbuffered: reads are 64 KiB anyway, a buffer would only copy them.
        with open(response.path, "rb", buffering=0) as file:
            if response.offset:
                file.seek(response.offset)
            while left is None or left > 0:
                chunk = file.read(_FILE_CHUNK if left is None else min(left, _FILE_CHUNK))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send(start)
    if isinstance(body, bytes):
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    try:
        for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _response_bytes(response: Response) -> bytes:
    """A core's response body in one piece (a handshake refusal has no streaming)."""
    if response.path is not None:
        with open(response.path, "rb") as file:
            file.seek(response.offset)
            return file.read(-1 if response.length is None else response.length)
    body = response.body
    if isinstance(body, bytes):
        return body
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


async def _handshake(core: Core, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket handshake through a core that asked to see them
    (:attr:`Core.websocket_handshakes`): the head may change, a response refuses."""
    head = WebSocketHead(scope)
    answer = core.on_request(head)
    if isinstance(answer, Response):
        if "websocket.http.response" in (scope.get("extensions") or {}):
            headers = handshake_headers(answer.headers)
            start = {"type": "websocket.http.response.start", "status": answer.status}
            await send({**start, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": _response_bytes(answer)})
        else:
            # Closing before accept refuses the connection; servers answer it with 403.
            await send({"type": "websocket.close", "code": 1008})
        return
    state = head._state
    if state is None:
        await app(scope, receive, send)
        return
    token = request_state.set(state)
    try:
        await app(scope, receive, send)
    finally:
        request_state.reset(token)


def _reading(handler: Handler, receive: Receive) -> Receive:
    """``receive`` with each request-body chunk run through ``handler.on_request_body``."""

    async def receive_through() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            out = handler.on_request_body(body, message.get("more_body", False))
            if out is not body:
                message = {**message, "body": out}
        return message

    return receive_through


_DEFAULT_ON_REQUEST_BODY = Handler.on_request_body
_DEFAULT_ON_COMPLETE = Handler.on_complete
_COMPLETED = Outcome.COMPLETED
_DISCONNECTED = Outcome.CLIENT_DISCONNECTED
_APP_EXCEPTION = Outcome.APP_EXCEPTION


class _Exchange(Conversation):
    """One request's trip through a core: wraps ``receive`` and ``send``, translating
    messages into the neutral :class:`Conversation` and back.

    It is its own conversation (a subclass, not a second object): one object less per
    request, and the phase is one attribute away on every message."""

    __slots__ = ("_held", "_receive", "_send", "disconnected", "send_failed")

    def __init__(self, handler: Handler, receive: Receive, send: Send) -> None:
        self.handler = handler  # Conversation.__init__, inlined
        self.phase = AWAITING_START
        self._receive = receive
        self._send = send
        self._held: Message | None = None  # the app's start message while the head is held
        self.disconnected = False
        self.send_failed = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def _send_head(self, head: Head) -> None:
        start, self._held = self._held, None
        if start is None:  # pragma: no cover - the conversation only releases a held head
            raise ProtocolError("a head was released but none was held")
        await self._send({**start, "status": head[0], "headers": head[1]})

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
            phase = self.phase
            if kind == "http.response.body" and (phase is STREAMING or phase is HEAD_HELD):
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                handler = self.handler
                # Conversation.body, inlined: GZip's whole body comes through here.
                out = handler.on_body(chunk, more)
                if phase is STREAMING:
                    if not more:
                        self.phase = COMPLETE
                else:
                    head = handler.pending_head()
                    if head is None:
                        if not more:
                            raise still_held_error(handler)
                        if out:
                            raise leaked_body_error(handler)
                        return  # still buffering (the core must decide when more is False)
                    self.phase = STREAMING if more else COMPLETE
                    start, self._held = self._held, None  # _send_head, inlined
                    if start is None:  # pragma: no cover - only a held head is released
                        raise ProtocolError("a head was released but none was held")
                    await self._send({**start, "status": head[0], "headers": head[1]})
                if more and not out:
                    return  # nothing to send yet; an empty non-final message says nothing
                if out is chunk:
                    await self._send(message)
                else:
                    await self._send({"type": "http.response.body", "body": out, "more_body": more})
            elif kind == "http.response.start" and phase is AWAITING_START:
                headers = _neutral_headers(message.get("headers", ()))
                # Conversation.start, inlined (the phase was checked above).
                result = self.handler.on_response_start(message["status"], headers)
                self.phase = HEAD_HELD if result is None else STREAMING
                if result is None:
                    self._held = message
                elif result[1] is headers and result[0] == message["status"]:
                    # The same list back means unchanged (a rule of _core): forward the
                    # app's own message.
                    await self._send(message)
                else:
                    await self._send({**message, "status": result[0], "headers": result[1]})
            elif kind in _OPAQUE_BODIES and (phase is STREAMING or phase is HEAD_HELD):
                head = self.opaque()
                if head is not None:
                    await self._send_head(head)
                await self._send(message)
            else:
                # Informational responses, trailers, unknown messages, and messages out of
                # order (which the server will reject better than we could).
                await self._send(message)
        except OSError:
            # ASGI: send raises OSError once the client is gone (cores do no I/O, so an
            # OSError here comes from the server's send).
            self.send_failed = True
            raise

    async def _send_error(self) -> None:
        """The app raised before its response went out: answer 500 through the core."""
        self._held = None
        await self.send(
            {"type": "http.response.start", "status": 500, "headers": list(_ERROR_HEADERS)}
        )
        await self.send({"type": "http.response.body", "body": _ERROR_BODY, "more_body": False})

    async def failed(self) -> Outcome:
        """The app raised: how the request ended, after a 500 through the core when its
        response had not gone out (the exception still propagates unchanged)."""
        if self.send_failed or self.disconnected:
            return _DISCONNECTED
        if self.restart():
            # The core (CORS, access log) should see the 500 the client gets.
            with contextlib.suppress(Exception):  # the app's error matters more
                await self._send_error()
        return _APP_EXCEPTION


class _NewExchange(_Exchange):
    """An :class:`_Exchange` made without an ``__init__`` frame (the driver fills it in)."""

    __slots__ = ()
    __init__ = object.__init__


# Handler classes seen to be neither head_only nor reading the request body (GZip,
# AccessLog): the driver takes the shortest way to an exchange for them. Bounded by the
# classes a program has.
_PLAIN_FULL: set[type[Handler]] = set()


# Response header pairs repeat from response to response, and apps send them in lower
# case as ASGI asks: one dict lookup per pair replaces a lower() and a new tuple.
# Bounded in bytes (only short pairs are kept, the memo is cleared when full), since an
# app may echo what a client sent.
_LOWER: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
_LOWER_CACHE_SIZE = 1024
_MAX_CACHED_PAIR = 256


def _lower_pair(pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    name, value = pair
    lowered = (name.lower(), value)
    if len(name) + len(value) <= _MAX_CACHED_PAIR:
        if len(_LOWER) >= _LOWER_CACHE_SIZE:
            _LOWER.clear()
        _LOWER[pair] = lowered
    return lowered


def _neutral_headers(raw: Any) -> HeaderList:
    """An app's response headers as neutral pairs (lower-case names, tuples)."""
    if type(raw) is not list:
        raw = list(raw)  # any iterable, once: the fallback below walks it again
    try:
        return [_LOWER.get(pair) or _lower_pair(pair) for pair in raw]
    except TypeError:  # pairs given as lists (unhashable): convert each, keep nothing
        return [(name.lower(), value) for name, value in raw]


def _head_send(handler: Handler, send: Send) -> tuple[Send, list[bool]]:
    """``send`` for a ``head_only`` handler, which rewrites the start message only, and
    a flag set once the start went out.

    A plain function returning the server's own awaitable: for a head-only middleware
    such as CORS this is the whole per-request cost, and it adds no coroutine per message.
    """
    started = [False]

    def send_through(message: Message) -> Awaitable[None]:
        if not started[0] and message["type"] == "http.response.start":
            started[0] = True
            code = message["status"]
            headers = _neutral_headers(message.get("headers", ()))
            head = handler.on_response_start(code, headers)
            if head is None:
                raise held_head_error(handler)
            message = {**message, "status": head[0], "headers": head[1]}
        return send(message)

    return send_through, started


# Bounds what one AddHeaders learns about an app's header names (app-chosen, and an
# app may echo a client's): at most this many names of at most _MAX_CLEAN_NAME bytes.
_CLEAN_SIZE = 64
_MAX_CLEAN_NAME = 64


def _learn_clean(add: AddHeaders, raw: list[Any]) -> bool:
    """Whether ``raw`` (an app's response headers) needs no merge with ``add``: every
    name in lower case (as ASGI requires) and none of ``add``'s. Names that pass are
    remembered on ``add``, so the next response checks them in one short pass."""
    plan = add._plan
    clean = plan.asgi
    if clean is None:
        clean = plan.asgi = set()
    names = plan.names
    passed = True
    for pair in raw:
        name = pair[0]
        if type(name) is not bytes or name != name.lower() or name in names:
            passed = False
        elif len(clean) < _CLEAN_SIZE and len(name) <= _MAX_CLEAN_NAME:
            clean.add(name)
    return passed


class _Adding:
    """One request's ``send`` that applies an :class:`AddHeaders` to the start message.

    A slotted object made without an ``__init__`` frame (the driver fills it in), whose
    bound :meth:`send_through` the app calls: cheaper per request than a closure with a
    flag list, and the app's ``await send(...)`` stays specialised, since every
    request's bound method wraps the same function (each new closure would not).
    """

    __slots__ = ("add", "clean", "send", "started")

    __init__ = object.__init__

    add: AddHeaders
    clean: set[bytes]  # add._plan.asgi: names seen to need no merge
    send: Send
    started: bool  # the start message went out (a 500 can no longer be sent)

    def send_through(self, message: Message) -> Awaitable[None]:
        if self.started or message["type"] != "http.response.start":
            return self.send(message)
        self.started = True
        raw = message.get("headers", ())
        if type(raw) is not list:
            raw = list(raw)  # any iterable, once
        add = self.add
        if all_known(raw, self.clean) or _learn_clean(add, raw):
            headers = raw + add._tail  # the usual case: nothing to drop or merge
        else:
            # One of ours, or a name not in lower case (ASGI requires it; be lenient).
            headers = add.merged([(bytes(name).lower(), value) for name, value in raw])
        # The app's message stays as it was; copy() is the cheapest copy of a dict.
        message = message.copy() if type(message) is dict else dict(message)
        message["headers"] = headers
        return self.send(message)


_new_adding = _Adding  # type() of a class whose __init__ is object's: C code only


async def _call_rewriting(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, wrapped: tuple[Send, list[bool]]
) -> None:
    """Call ``app`` with ``wrapped``'s start-rewriting ``send``; an app that raises before
    its response started gets a 500 through the same rewriting, then the error goes on."""
    send_through, started = wrapped
    try:
        await app(scope, receive, send_through)
    except Exception:
        if not started[0]:
            await _head_error(send_through, send)
        raise


async def _head_error(send_through: Send, send: Send) -> None:
    """The app raised before its response started: a 500, its head through the core
    (CORS headers on it, as in :meth:`_Exchange.run`)."""
    with contextlib.suppress(Exception):  # the app's error matters more
        await send_through(
            {"type": "http.response.start", "status": 500, "headers": list(_ERROR_HEADERS)}
        )
        await send({"type": "http.response.body", "body": _ERROR_BODY, "more_body": False})


class ASGIDriver:
    """Mixin giving a middleware an ASGI 3 ``__call__`` that runs its core."""

    __slots__ = ()
    app: Any
    _core: Core
    _on_request: Callable[[RequestHead], Handler | Response | AddHeaders | None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self._core.websocket_handshakes:
                await _handshake(self._core, self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        head = _NewScopeHead()
        head.method = scope["method"]
        head._scope = scope
        head._state = None
        handler = self._on_request(head)
        state = head._state
        if state is None:
            if handler is None:
                await self.app(scope, receive, send)  # the do-nothing path, kept shortest
                return
            if type(handler) is Response:  # StaticFiles and other answers, inlined
                await _send_response(scope, send, handler)
                return
        token = None if state is None else request_state.set(state)
        try:
            if isinstance(handler, AddHeaders):  # SecurityHeaders, CORS, RequestID's echo
                # _adding and _call_rewriting, inlined: no frame of their own per request.
                plan = handler._plan
                clean = plan.asgi
                if clean is None:
                    clean = plan.asgi = set()
                adding = _new_adding()
                adding.add = handler
                adding.clean = clean
                adding.send = send
                adding.started = False
                try:
                    await self.app(scope, receive, adding.send_through)
                except Exception:
                    if not adding.started:
                        await _head_error(adding.send_through, send)
                    raise
            elif handler is None:
                await self.app(scope, receive, send)
            elif isinstance(handler, Response):
                await _send_response(scope, send, handler)
            else:
                if type(handler) not in _PLAIN_FULL or handler.head_only:
                    # The first request of its class, or a handler that reads the body
                    # or rewrites only the head; later plain ones (GZip, AccessLog) skip this.
                    if type(handler).on_request_body is not _DEFAULT_ON_REQUEST_BODY:
                        receive = _reading(handler, receive)
                    elif not type(handler).head_only and not handler.head_only:
                        _PLAIN_FULL.add(type(handler))
                    if handler.head_only:
                        head_send = _head_send(handler, send)
                        await _call_rewriting(self.app, scope, receive, send, head_send)
                        return
                # An _Exchange made and run inline: no __init__ or
                # coroutine frame of its own per request.
                exchange = _NewExchange()
                exchange.handler = handler
                exchange.phase = AWAITING_START
                exchange._receive = receive
                exchange._send = send
                exchange._held = None
                exchange.disconnected = False
                exchange.send_failed = False
                outcome = _COMPLETED
                try:
                    await self.app(scope, exchange.receive, exchange.send)
                except Exception:
                    outcome = await exchange.failed()
                    raise
                except asyncio.CancelledError:
                    outcome = _DISCONNECTED  # the client went away: no 500
                    raise
                except BaseException:
                    outcome = _APP_EXCEPTION
                    raise
                else:
                    if exchange.phase is not COMPLETE and exchange.disconnected:
                        outcome = _DISCONNECTED
                finally:
                    if exchange.phase is not FINISHED:  # Conversation.finish, inlined
                        exchange.phase = FINISHED
                        if type(handler).on_complete is not _DEFAULT_ON_COMPLETE:
                            handler.on_complete(outcome)
        finally:
            if token is not None:
                request_state.reset(token)
