"""The server side of the ``websocket`` scenario: one uvicorn app, two echo endpoints.

``/native`` is an echo written as a native ASGI WebSocket endpoint; ``/wsgi`` is the
same echo written against ``environ["bridge.websocket"]`` and served by ``WSGIToASGI``
(on a pool big enough for the 100-connection point). Plain ``GET /`` answers 200 so the
harness can tell the server is up. Both endpoints live in one process, so they are
measured on the same server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bridge import ThreadPool, WebSocket, WSGIToASGI


def _wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    ws: WebSocket = environ["bridge.websocket"]
    ws.accept()
    for message in ws:
        ws.send(message)
    return []


_bridged = WSGIToASGI(_wsgi_echo, websocket_pool=ThreadPool(128, max_queue=0))


async def _native_echo(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        if scope["path"] == "/native":
            await _native_echo(receive, send)
        else:
            await _bridged(scope, receive, send)
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "lifespan":
        await _bridged(scope, receive, send)
