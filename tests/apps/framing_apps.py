"""ASGI apps that frame their responses badly, served through ``ASGIToWSGI`` by real WSGI
servers in ``tests/e2e/test_asgi_to_wsgi_framing_servers.py``.

``application`` uses per-thread loops, ``application_shared`` the shared loop. Routes:

* ``/echo?q=...`` Starlette's ``PlainTextResponse`` echoing ``q`` (which sends its body
  for ``HEAD`` too, relying on the server to drop it);
* ``/status/204`` and ``/status/304`` with a body;
* ``/length/<declared>/<chunk>,<chunk>...``: a Content-Length header as given, then
  the chunks, streamed (each one after the server has taken the previous);
* ``/int-body``: ``{"body": 50_000_000}``;
* ``/hang``: never answers; ``/hang-receive``: reads the body, then waits on receive();
  ``/hang-after-head``: sends the head and part of the body, then hangs;
* ``/ok``: a plain 200.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import Receive, Scope, Send


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.query_params.get("q", ""))


_starlette = Starlette(routes=[Route("/echo", _echo, methods=["GET", "HEAD"])])


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: unsupported
    path: str = scope["path"]
    if path == "/echo":
        await _starlette(scope, receive, send)
    elif path == "/ok":
        await _start(send, 200, [(b"content-type", b"text/plain"), (b"content-length", b"2")])
        await send({"type": "http.response.body", "body": b"ok"})
    elif path.startswith("/status/"):
        await _start(send, int(path.removeprefix("/status/")), [(b"x-framing", b"test")])
        await send({"type": "http.response.body", "body": b"HTTP/1.1 200 OK\r\n\r\nSMUGGLED"})
    elif path.startswith("/length/"):
        declared, _, chunks = path.removeprefix("/length/").partition("/")
        await _start(send, 200, [(b"content-length", unquote(declared).encode("latin-1"))])
        parts = chunks.split(",")
        for index, part in enumerate(parts):
            more = index < len(parts) - 1
            await send({"type": "http.response.body", "body": part.encode(), "more_body": more})
            await asyncio.sleep(0.05)  # let the server write the head and this chunk
    elif path == "/int-body":
        await _start(send, 200, [])
        await send({"type": "http.response.body", "body": 50_000_000})
    elif path == "/hang":
        await asyncio.Event().wait()
    elif path == "/hang-receive":
        while (await receive())["type"] == "http.request":
            pass
    elif path == "/hang-after-head":
        await _start(send, 200, [(b"content-length", b"100")])
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.Event().wait()
    elif path == "/pid":
        await _start(send, 200, [(b"content-type", b"text/plain")])
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
    else:
        await _start(send, 404, [(b"content-length", b"0")])
        await send({"type": "http.response.body", "body": b""})


_timeout = float(os.environ.get("FRAMING_APPS_REQUEST_TIMEOUT", "0")) or None
application = ASGIToWSGI(app, request_timeout=_timeout)
application_shared = ASGIToWSGI(app, loop_mode="shared", request_timeout=_timeout)
