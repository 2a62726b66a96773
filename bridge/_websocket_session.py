"""Serve ASGI ``websocket`` scopes with a WSGI app: the event-loop half of each connection.

For each connection (ASGI spec, "WebSocket"):

- the handshake becomes a WSGI ``GET`` request built by ``_environ`` (so the app's
  routing, sessions and authentication apply), whose environ carries the connection's
  :class:`~bridge._websocket.WebSocket` under ``"bridge.websocket"``;
- the app runs on its own bounded pool, apart from the HTTP pool, so long-lived
  connections never starve plain requests; a full pool refuses the connection;
- a reader task hands ``websocket.receive`` messages to the app while it keeps up,
  and a pump sends what the app posts;
- an app that returns without accepting refuses the connection: with the
  ``websocket.http.response`` extension its own HTTP response is the denial, else the
  server answers 403 to our ``websocket.close``;
- ``shutdown`` (lifespan shutdown) closes every open connection with 1001.

The WebSocket state machine and the queues between threads live in ``_websocket``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterable
from typing import Final

from bridge._environ import RequestRejected, build_environ
from bridge._http import reason_phrase
from bridge._input import BodyStream
from bridge._pool import ThreadPool
from bridge._response import Phase, ResponseHead, close_app_iterable
from bridge._types import Environ, Message, Receive, Scope, Send, WSGIApp
from bridge._websocket import END, INTERNAL_ERROR, End, WebSocket, WebSocketClosed, WebSocketState

logger = logging.getLogger("bridge.wsgi_to_asgi")

#: The environ key under which the app finds its connection.
ENVIRON_KEY: Final = "bridge.websocket"
_DENIAL: Final = "websocket.http.response"
#: The most bytes of a refusing app's response body sent as the denial response.
_DENIAL_BODY_LIMIT: Final = 1 << 16
#: How long lifespan shutdown waits for close frames to go out.
_SHUTDOWN_TIMEOUT: Final = 5.0

_GOING_AWAY: Final = {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}

_default: ThreadPool | None = None
_default_lock = threading.Lock()


def default_websocket_pool() -> ThreadPool:
    """The pool WebSocket connections share unless given one: 100 threads, no queue.

    A connection holds its thread for its whole life, so waiting for a thread could
    mean waiting for minutes: a full pool refuses at once instead.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ThreadPool(100, max_queue=0, name="bridge-websocket")
    return _default


def _denial(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> list[Message]:
    kept = [(name, value) for name, value in headers if name != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode("ascii")))
    return [
        {"type": "websocket.http.response.start", "status": status, "headers": kept},
        {"type": "websocket.http.response.body", "body": body, "more_body": False},
    ]


def _plain_denial(
    status: int, text: str, extra: Iterable[tuple[bytes, bytes]] = ()
) -> list[Message]:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *extra]
    return _denial(status, headers, text.encode("utf-8"))


async def _refuse(
    send: Send, can_deny: bool, status: int, text: str, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Refuse a connection before accept: an HTTP response when possible, else a 403."""
    if can_deny:
        for message in _plain_denial(status, text, extra):
            await send(message)
    else:
        await send({"type": "websocket.close", "code": 1000, "reason": ""})


class _Worker:
    """Runs the app for one connection in a pool thread, then closes or refuses it."""

    __slots__ = ("_body", "_can_deny", "_response", "_ws")

    def __init__(self, ws: WebSocket, can_deny: bool) -> None:
        self._ws = ws
        self._can_deny = can_deny
        self._body = bytearray()  # a refusing app's response body
        self._response = ResponseHead(self._write)

    def _write(self, data: bytes) -> None:
        # Once accepted, the app's response is meaningless and dropped (the rule).
        if self._ws.state is WebSocketState.CONNECTING and len(self._body) < _DENIAL_BODY_LIMIT:
            self._body += data[: _DENIAL_BODY_LIMIT - len(self._body)]

    def run(self, app: WSGIApp, environ: Environ) -> None:
        ws = self._ws
        iterable: Iterable[bytes] | None = None
        error: BaseException | None = None
        try:
            iterable = app(environ, self._response.start_response)
            if ws.state is WebSocketState.CONNECTING:
                for chunk in iterable:  # the refusal's body
                    self._write(chunk)
        except WebSocketClosed as closed:
            logger.debug("WebSocket app stopped after the connection closed: %s", closed)
        except BaseException as exc:
            error = exc
        finally:
            close_app_iterable(iterable, environ)
            del iterable
            self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        ws = self._ws
        response = self._response
        started = response.phase is not Phase.AWAITING_START
        if error is not None:
            logger.error("Exception in WebSocket app", exc_info=error)
        try:
            if ws.state is WebSocketState.CONNECTING:
                if error is None:
                    logger.info(
                        "WebSocket app did not accept the connection (answered %s)",
                        response.status if started else "nothing",
                    )
                if self._can_deny and (started or error is not None):
                    if error is None:
                        messages = _denial(response.status, response.headers, bytes(self._body))
                    else:
                        messages = _plain_denial(500, reason_phrase(500))
                    ws.refuse(messages)
                else:
                    ws.close()
            elif ws.state is WebSocketState.OPEN:
                failed = error is not None or (started and response.status >= 500)
                ws.close(INTERNAL_ERROR if failed else 1000)
        finally:
            ws.post(END)


async def _read(ws: WebSocket, receive: Receive) -> None:
    """The only caller of ``receive()``: hand messages to the app while it keeps up."""
    while True:
        room = ws.wait_for_room()
        if room is not None:
            await room  # the app is behind: leave the client to the server's flow control
            continue
        try:
            message = await receive()
        except Exception as exc:  # the server cannot tell us more: treat it as gone
            logger.debug("WebSocket receive() failed: %r", exc)
            ws.disconnected(1006, "the connection was lost")
            return
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            ws.deliver(text if text is not None else (message.get("bytes") or b""))
        elif kind == "websocket.disconnect":
            ws.disconnected(int(message.get("code", 1005)), message.get("reason") or "")
            return


async def _pump(ws: WebSocket, send: Send, closed: asyncio.Event) -> None:
    """Send what the app posts until it posts the end; ``closed`` is set at the close."""
    try:
        while True:
            batch, waiter = ws.take()
            if waiter is not None:
                await waiter
                continue
            count = size = 0
            for message in batch:
                if isinstance(message, End):
                    return
                kind = message["type"]
                if not closed.is_set():
                    await send(message)
                if kind == "websocket.send":
                    count += 1
                    size += len(message.get("text") or message.get("bytes") or "")
                elif kind in ("websocket.close", "websocket.http.response.body"):
                    closed.set()  # RFC 6455 5.5.1: nothing may follow a close frame
            if count:
                ws.sent(count, size)
    except Exception as exc:
        # The server refused a message: the client has gone. Tell the app and stop
        # here; the worker finds out at its next call and finishes on its own.
        logger.debug("WebSocket send failed; the client is gone: %r", exc)
        ws.disconnected(1006, "the connection was lost")
    except BaseException:
        # Cancelled: the server is stopping. Tell the app, and the client if we still can.
        ws.disconnected(1001, "server shutting down")
        if not closed.is_set():
            closed.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(send(_GOING_AWAY), _SHUTDOWN_TIMEOUT)
        raise
    finally:
        closed.set()


class WebSocketServer:
    """What a ``WSGIToASGI`` needs to serve WebSocket scopes (see the module docstring)."""

    def __init__(
        self, *, pool: ThreadPool | None = None, queue: int = 16, queue_bytes: int = 1 << 20
    ) -> None:
        if queue < 1:
            raise ValueError("websocket_queue must be at least 1")
        if queue_bytes < 1:
            raise ValueError("websocket_queue_bytes must be at least 1")
        self._pool = pool
        self._queue = queue
        self._queue_bytes = queue_bytes
        self._live: dict[WebSocket, asyncio.Event] = {}
        self._stopping = False

    @property
    def pool(self) -> ThreadPool:
        if self._pool is None:
            self._pool = default_websocket_pool()
        return self._pool

    async def serve(
        self,
        app: WSGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        max_header_repeats: int,
    ) -> None:
        """Serve one ``websocket`` scope with the WSGI app ``app``."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # websocket.disconnect: the client left before the handshake
        extensions = scope.get("extensions") or {}
        can_deny = _DENIAL in extensions
        try:
            environ = build_environ(
                {**scope, "method": "GET"},
                BodyStream(b"", False, None),
                max_header_repeats=max_header_repeats,
            )
        except RequestRejected as rejected:
            logger.warning("refused a WebSocket connection: %s", rejected.reason)
            await _refuse(send, can_deny, rejected.status, rejected.reason)
            return
        environ["asgi.scope"] = scope
        loop = asyncio.get_running_loop()
        ws = WebSocket(
            loop,
            scope.get("subprotocols") or (),
            queue=self._queue,
            queue_bytes=self._queue_bytes,
        )
        environ[ENVIRON_KEY] = ws
        pool = self.pool
        worker = _Worker(ws, can_deny)
        try:
            submitted = not self._stopping and pool.submit(
                contextvars.copy_context().run, worker.run, app, environ
            )
        except RuntimeError:  # the pool is shut down
            submitted = False
        if not submitted:
            logger.warning(
                "refused a WebSocket connection: all %d WebSocket threads are busy "
                "or the server is stopping",
                pool.max_workers,
            )
            retry = (b"retry-after", str(pool.retry_after).encode("ascii"))
            await _refuse(send, can_deny, 503, reason_phrase(503), (retry,))
            return
        closed = asyncio.Event()
        self._live[ws] = closed
        reader = loop.create_task(_read(ws, receive))
        try:
            await _pump(ws, send, closed)
        finally:
            reader.cancel()
            del self._live[ws]

    async def shutdown(self, code: int = 1001) -> None:
        """Refuse new connections and close every open one with ``code`` (going away)."""
        self._stopping = True
        live = list(self._live.items())
        for ws, _ in live:
            ws.going_away(code)
        if live:
            waits = [asyncio.ensure_future(closed.wait()) for _, closed in live]
            _, pending = await asyncio.wait(waits, timeout=_SHUTDOWN_TIMEOUT)
            for task in pending:
                task.cancel()
            logger.info("closed %d WebSocket connection(s) for shutdown", len(live))
