"""ASGI apps served through ``ASGIToWSGI`` by real WSGI servers in ``tests/e2e``.

``application`` (per-thread loops) and ``application_shared`` (one loop thread) mount,
with werkzeug's ``DispatcherMiddleware`` as users do:

* ``/`` a raw ASGI app (hello, echo, streaming, slow, background, client-gone markers),
* ``/starlette`` Starlette (streaming, BackgroundTask, FileResponse via pathsend),
* ``/fastapi`` FastAPI with a lifespan that stores state,
* ``/django`` Django's ``get_asgi_application()`` with settings configured here.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI, Request  # module level: FastAPI resolves annotations here
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import Receive, Scope, Send

# --- raw ASGI ---------------------------------------------------------------------------


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _respond(send: Send, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _lifespan_log(event: str) -> None:
    # Tests that stop the server read this file to see shutdown ran in the worker.
    log = os.environ.get("ASGI_APPS_LIFESPAN_LOG")
    if log:
        with open(log, "a") as file:
            file.write(f"{event} {os.getpid()}\n")


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _lifespan_log("startup")
                await send({"type": "lifespan.startup.complete"})
            else:
                _lifespan_log("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/hello":
        await _respond(send, b"Hello, world!")
    elif path.startswith("/scope"):
        info = {
            key: scope[key]
            for key in ("http_version", "method", "scheme", "path", "root_path", "client", "server")
        }
        info["raw_path"] = scope["raw_path"].decode("latin-1")
        info["query_string"] = scope["query_string"].decode("latin-1")
        info["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        await _respond(send, json.dumps(info).encode(), b"application/json")
    elif path == "/echo":
        body = bytearray()
        messages = 0
        while True:
            message = await receive()
            messages += 1
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"x-messages", str(messages).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": bytes(body)})
    elif path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": f"chunk{i}\n".encode(), "more_body": True}
            )
            await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b"end\n"})
    elif path == "/slow":
        await asyncio.sleep(0.5)
        await _respond(send, b"slow")
    elif path == "/forever":
        marker = Path(_query(scope)["marker"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            marker.write_text("cancelled")
            raise
        except OSError:
            marker.write_text("disconnected")
    elif path == "/background":
        marker = Path(_query(scope)["marker"])
        await _respond(send, b"queued")
        await asyncio.sleep(0.3)
        marker.write_text("done")
    elif path == "/error":
        raise RuntimeError("deliberate failure before the response")
    else:
        body = b"not found"
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --- Starlette ----------------------------------------------------------------------------


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import FileResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i}\n".encode()
                await asyncio.sleep(0.2)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def write_marker(marker: str) -> None:
        await asyncio.sleep(0.3)
        Path(marker).write_text("done")

    async def background(request: Request) -> PlainTextResponse:
        marker = request.query_params["marker"]
        return PlainTextResponse("queued", background=BackgroundTask(write_marker, marker))

    async def file(request: Request) -> FileResponse:
        return FileResponse(request.query_params["path"], media_type="application/octet-stream")

    def sync(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"sync {request.url.path} root={request.scope['root_path']}")

    return Starlette(
        routes=[
            Route("/stream", stream),
            Route("/background", background),
            Route("/file", file),
            Route("/sync", sync),
        ]
    )


# --- FastAPI ------------------------------------------------------------------------------


def _fastapi() -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello from lifespan", "pid": os.getpid()}

    app = FastAPI(lifespan=lifespan)

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"greeting": request.state.greeting, "pid": request.state.pid}

    @app.post("/items")
    async def items(item: dict[str, Any]) -> dict[str, Any]:
        return {"received": item}

    @app.get("/sync")
    def sync() -> dict[str, bool]:
        return {"sync": True}

    return app


# --- Django -------------------------------------------------------------------------------


async def _django_view(request: Any) -> Any:
    from django.http import JsonResponse

    return JsonResponse(
        {
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
            "method": request.method,
            "body": request.body.decode(),
        }
    )


def _django() -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only-not-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def __getattr__(name: str) -> Any:
    # Django resolves ROOT_URLCONF lazily; build the patterns only when it asks.
    if name == "urlpatterns":
        from django.urls import path

        return [path("info/", _django_view)]
    raise AttributeError(name)


def _mount(loop_mode: Literal["thread", "shared"]) -> DispatcherMiddleware:
    return DispatcherMiddleware(
        ASGIToWSGI(raw_app, loop_mode=loop_mode),
        {
            "/starlette": ASGIToWSGI(_starlette(), loop_mode=loop_mode),
            "/fastapi": ASGIToWSGI(_fastapi(), loop_mode=loop_mode),
            "/django": ASGIToWSGI(_django(), loop_mode=loop_mode),
        },
    )


application = _mount("thread")
application_shared = _mount("shared")
