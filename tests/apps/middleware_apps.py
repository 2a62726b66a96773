"""Apps served by real servers in tests/middleware/test_real_servers.py.

Each streams Server-Sent Events (or plain text) with a one-second pause between events,
through GZip configured to compress event streams too, so the tests can prove that the
first event is flushed to the client before the app produces the second one. The
``lines`` apps write five short lines 0.3 s apart through GZip's defaults (issue #11).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from middleware import GZip

PAUSE = 1.0
# Bigger than GZip's default minimum_size, so the first event alone starts compression.
PADDING = "x" * 600


def event(index: int) -> bytes:
    return f"id: {index}\ndata: event {index} {PADDING}\n\n".encode()


def _headers(kind: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", kind), (b"cache-control", b"no-cache")]


def _asgi_stream(kind: bytes) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": _headers(kind)})
        for index in range(3):
            if index:
                await asyncio.sleep(PAUSE)
            await send({"type": "http.response.body", "body": event(index), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _wsgi_stream(kind: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [(k.decode(), v.decode()) for k, v in _headers(kind)])
        for index in range(3):
            if index:
                time.sleep(PAUSE)
            yield event(index)

    return app


asgi_sse = GZip(_asgi_stream(b"text/event-stream"), exclude_content_types=())
asgi_stream = GZip(_asgi_stream(b"text/plain; charset=utf-8"))
wsgi_sse = GZip(_wsgi_stream(b"text/event-stream"), exclude_content_types=())
wsgi_stream = GZip(_wsgi_stream(b"text/plain; charset=utf-8"))
asgi_sse_default = GZip(_asgi_stream(b"text/event-stream"))
wsgi_sse_default = GZip(_wsgi_stream(b"text/event-stream"))


LINE_PAUSE = 0.3
LINES = tuple(f"line {index}\n".encode() for index in range(5))


def _asgi_lines() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = _headers(b"text/plain; charset=utf-8")
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, line in enumerate(LINES):
            if index:
                await asyncio.sleep(LINE_PAUSE)
            await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _wsgi_lines() -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        for index, line in enumerate(LINES):
            if index:
                time.sleep(LINE_PAUSE)
            yield line

    return app


asgi_lines = GZip(_asgi_lines())
wsgi_lines = GZip(_wsgi_lines())
