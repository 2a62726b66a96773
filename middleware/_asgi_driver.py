"""The ASGI 3 driver: runs any core over ``scope`` / ``receive`` / ``send``.

It translates ASGI messages into the neutral protocol of :mod:`middleware._core` and
back, and makes no policy decision of its own. It starts no threads and never blocks.

Anything a core does not handle passes through untouched: non-HTTP scopes (lifespan,
websocket), informational responses (``http.response.informational``, early hints),
``http.response.trailers`` and unknown messages. ``http.response.pathsend`` (and the
``zerocopysend`` extension) carry no body in Python, so the core is told the body is
opaque and the held head goes out unchanged.

When the app raises before its response went out, the client gets a 500 sent through
the core (so CORS headers are on it and the access log sees it) and the exception goes
on to the server unchanged; a cancelled app (the client went away) gets no 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import Any

from bridge._types import ASGIApp, Message, Receive, Scope, Send
from middleware._core import (
    Core,
    Handler,
    HeaderList,
    Outcome,
    RequestHead,
    Response,
    scan_header,
)

__all__ = ["ASGIDriver"]


class _State(enum.Enum):
    """Where the response is, seen from this middleware's side of ``send``."""

    AWAITING_START = enum.auto()  # nothing sent yet
    HEAD_HELD = enum.auto()  # the app started; the core holds the head until it decides
    STREAMING = enum.auto()  # the head went out; body chunks follow
    COMPLETE = enum.auto()  # the last body chunk (or an opaque body) went out


_AWAITING_START = _State.AWAITING_START
_HEAD_HELD = _State.HEAD_HELD
_STREAMING = _State.STREAMING
_COMPLETE = _State.COMPLETE

# Body messages whose bytes never pass through Python (ASGI "HTTP path send" extension).
_OPAQUE_BODIES = frozenset({"http.response.pathsend", "http.response.zerocopysend"})

_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS: HeaderList = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_ERROR_BODY)).encode()),
]


class ScopeHead(RequestHead):
    """The neutral request head over an HTTP ``scope``."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope) -> None:
        self.method = scope["method"]
        self._scope = scope

    def header(self, name: bytes) -> bytes | None:
        return scan_header(self._scope["headers"], name)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(key), bytes(value)) for key, value in self._scope["headers"]]

    @property
    def path(self) -> str:
        path: str = self._scope["path"]
        return path

    @property
    def query(self) -> bytes:
        query: bytes = self._scope.get("query_string", b"")
        return query

    @property
    def scheme(self) -> str:
        scheme: str = self._scope.get("scheme", "http")
        return scheme

    @property
    def client(self) -> tuple[str, int] | None:
        client = self._scope.get("client")
        return None if client is None else (client[0], client[1])

    @property
    def http_version(self) -> str:
        version: str = self._scope.get("http_version", "1.1")
        return version


async def _send_response(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


class _Exchange:
    """One request's trip through a core: wraps ``receive`` and ``send``."""

    __slots__ = ("_held", "_receive", "_send", "disconnected", "handler", "send_failed", "state")

    def __init__(self, handler: Handler, receive: Receive, send: Send) -> None:
        self.handler = handler
        self._receive = receive
        self._send = send
        self.state = _AWAITING_START
        self._held: Message | None = None
        self.disconnected = False
        self.send_failed = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
            state = self.state
            if kind == "http.response.body" and (state is _STREAMING or state is _HEAD_HELD):
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                out = self.handler.on_body(chunk, more)
                if state is _HEAD_HELD:
                    head = self.handler.pending_head()
                    if head is None:
                        return  # still buffering (the core must decide when more is False)
                    start = self._held
                    assert start is not None
                    self._held = None
                    self.state = _STREAMING
                    await self._send({**start, "status": head[0], "headers": head[1]})
                if not more:
                    self.state = _COMPLETE
                elif not out:
                    return  # nothing to send yet; an empty non-final message says nothing
                if out is chunk:
                    await self._send(message)
                else:
                    await self._send({"type": "http.response.body", "body": out, "more_body": more})
            elif kind == "http.response.start" and state is _AWAITING_START:
                raw = message.get("headers", ())
                headers: HeaderList = [(name.lower(), value) for name, value in raw]
                result = self.handler.on_response_start(message["status"], headers)
                if result is None:
                    self.state = _HEAD_HELD
                    self._held = message
                elif result[1] is headers and result[0] == message["status"]:
                    # The same list back means unchanged (a rule of _core): forward the
                    # app's own message.
                    self.state = _STREAMING
                    await self._send(message)
                else:
                    self.state = _STREAMING
                    await self._send({**message, "status": result[0], "headers": result[1]})
            elif kind in _OPAQUE_BODIES and (state is _STREAMING or state is _HEAD_HELD):
                head = self.handler.on_opaque_body()
                if state is _HEAD_HELD:
                    start = self._held
                    assert start is not None
                    self._held = None
                    if head is None:
                        head = (start["status"], list(start.get("headers", ())))
                    self.state = _STREAMING
                    await self._send({**start, "status": head[0], "headers": head[1]})
                self.state = _COMPLETE
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
        self.state = _AWAITING_START
        self._held = None
        await self.send(
            {"type": "http.response.start", "status": 500, "headers": list(_ERROR_HEADERS)}
        )
        await self.send({"type": "http.response.body", "body": _ERROR_BODY, "more_body": False})

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        outcome = Outcome.COMPLETED
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            if self.send_failed or self.disconnected:
                outcome = Outcome.CLIENT_DISCONNECTED
            else:
                outcome = Outcome.APP_EXCEPTION
                if self.state is _AWAITING_START or self.state is _HEAD_HELD:
                    # The core (CORS, access log) should see the 500 the client gets;
                    # the exception still propagates unchanged to the server.
                    with contextlib.suppress(Exception):  # the app's error matters more
                        await self._send_error()
            raise
        except asyncio.CancelledError:
            # Servers cancel the app when the client goes away (or on shutdown): no 500.
            outcome = Outcome.CLIENT_DISCONNECTED
            raise
        except BaseException:
            outcome = Outcome.APP_EXCEPTION
            raise
        else:
            if self.state is not _COMPLETE and self.disconnected:
                outcome = Outcome.CLIENT_DISCONNECTED
        finally:
            self.handler.on_complete(outcome)


class _HeadExchange:
    """The exchange for a ``head_only`` handler: rewrite the start, forward the rest."""

    __slots__ = ("_send", "handler", "started")

    def __init__(self, handler: Handler, send: Send) -> None:
        self.handler = handler
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.started:
            self.started = True
            raw = message.get("headers", ())
            headers: HeaderList = [(name.lower(), value) for name, value in raw]
            head = self.handler.on_response_start(message["status"], headers)
            assert head is not None, "a head_only handler never holds the head"
            message = {**message, "status": head[0], "headers": head[1]}
        await self._send(message)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        try:
            await app(scope, receive, self.send)
        except Exception:
            if not self.started:
                # As in _Exchange.run: the 500 goes through the core (CORS headers on it).
                with contextlib.suppress(Exception):
                    await self.send(
                        {"type": "http.response.start", "status": 500, "headers": _ERROR_HEADERS}
                    )
                    await self._send(
                        {"type": "http.response.body", "body": _ERROR_BODY, "more_body": False}
                    )
            raise


class ASGIDriver:
    """Mixin giving a middleware an ASGI 3 ``__call__`` that runs its core."""

    __slots__ = ()
    app: Any
    _core: Core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = self._core.on_request(ScopeHead(scope))
        if handler is None:
            await self.app(scope, receive, send)
        elif isinstance(handler, Response):
            await _send_response(send, handler)
        elif handler.head_only:
            await _HeadExchange(handler, send).run(self.app, scope, receive)
        else:
            await _Exchange(handler, receive, send).run(self.app, scope)
