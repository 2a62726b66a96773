"""One HTTP contract, implemented by every framework of the compatibility matrix.

``tests/e2e/test_matrix.py`` serves ``tests.apps.matrix_apps:application`` with each
server; environment variables say which app that is, so a server process imports only
the framework it runs. Every app answers, below its prefix:

=============  ==================================================================
``GET /hello``   ``200 hello`` (FastAPI and Starlette read it from lifespan state)
``GET /links``   ``{"hello": <the URL of /hello, built by the framework>}``
``POST /form``   the urlencoded fields as a JSON object
``POST /json``   the JSON body, echoed
``POST /upload`` ``{"length", "sha256"}`` of the raw body (sent chunked by the tests)
``GET /stream``  three large lines, ``PAUSE`` seconds apart
``GET /boom``    the view raises: the framework's (or the adapter's) 500
anything else    404
=============  ==================================================================

The environment:

* ``BRIDGE_MATRIX_APP``: ``flask``, ``django-wsgi``, ``pep3333`` (WSGI apps),
  ``django-asgi``, ``fastapi``, ``starlette`` (ASGI apps), ``flask-in-fastapi`` (the
  contract under ``/legacy``), ``fastapi-in-flask`` (the contract under ``/api``);
* ``BRIDGE_MATRIX_SERVE``: ``asgi`` or ``wsgi``, the server's interface; an app of the
  other interface is adapted with ``WSGIToASGI`` / ``ASGIToWSGI``;
* ``BRIDGE_MATRIX_LOOP``: ``ASGIToWSGI``'s ``loop_mode`` (default ``thread``);
* ``BRIDGE_MATRIX_STACK=1``: wrap the app, on its own interface, in
  ``Stack([AccessLog, CORS, GZip])``; ``BRIDGE_MATRIX_ACCESS_LOG`` names the file the
  access lines go to;
* ``BRIDGE_MATRIX_MOUNT``: a prefix to mount the served app under with werkzeug's
  ``DispatcherMiddleware`` (for WSGI servers that have no prefix option).

No ``from __future__ import annotations`` here: FastAPI reads the annotations of
handlers defined inside the builder functions, where their names are local.
"""

import asyncio
import base64
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, quote

#: Seconds between the lines of ``/stream``.
PAUSE = 0.4
#: Where the contract lives inside the mounting apps.
MOUNTS = {"flask-in-fastapi": "/legacy", "fastapi-in-flask": "/api"}
#: The origin the stacked apps' CORS layer allows.
ALLOWED_ORIGIN = "https://app.example.test"


def stream_chunk(index: int) -> bytes:
    """Line ``index`` of ``/stream``: 32 KiB of text that gzip cannot shrink much.

    Large and incompressible so that no layer can hold it back for want of data
    (waitress sends once 18,000 bytes are buffered; gzip would shrink padding to nothing).
    """
    noise = base64.b64encode(random.Random(index).randbytes(24 * 1024))
    return b"line %d " % index + noise + b"\n"


# --- WSGI apps --------------------------------------------------------------------------


def _flask() -> Any:
    from flask import Flask, Response, jsonify, request, url_for

    app = Flask("matrix_flask")
    # A failing view gets Flask's own 500 page rather than an exception in the server.
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/hello")
    def hello() -> Response:
        return Response("hello", mimetype="text/plain")

    @app.get("/links")
    def links() -> Response:
        return jsonify(hello=url_for("hello"))

    @app.post("/form")
    def form() -> Response:
        return jsonify(request.form.to_dict())

    @app.post("/json")
    def json_echo() -> Response:
        return jsonify(request.get_json())

    @app.post("/upload")
    def upload() -> Response:
        data = request.get_data()
        return jsonify(length=len(data), sha256=hashlib.sha256(data).hexdigest())

    @app.get("/stream")
    def stream() -> Response:
        return Response(_sync_stream(), mimetype="text/plain")

    @app.get("/boom")
    def boom() -> Response:
        raise RuntimeError("deliberate failure in a Flask view")

    return app


def _sync_stream() -> Iterator[bytes]:
    for index in range(3):
        if index:
            time.sleep(PAUSE)
        yield stream_chunk(index)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body, per PEP 3333 and the ``wsgi.input_terminated`` convention."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


def pep3333_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The contract as a bare PEP 3333 callable: no framework at all."""
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]

    def send(status: str, body: bytes, content_type: str) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def send_json(value: object) -> list[bytes]:
        return send("200 OK", json.dumps(value).encode(), "application/json")

    if (method, path) == ("GET", "/hello"):
        return send("200 OK", b"hello", "text/plain")
    if (method, path) == ("GET", "/links"):
        # PEP 3333's URL reconstruction: SCRIPT_NAME is where this app is mounted.
        return send_json({"hello": quote(environ["SCRIPT_NAME"].encode("latin-1")) + "/hello"})
    if (method, path) == ("POST", "/form"):
        return send_json(dict(parse_qsl(_read_body(environ).decode(), keep_blank_values=True)))
    if (method, path) == ("POST", "/json"):
        return send_json(json.loads(_read_body(environ)))
    if (method, path) == ("POST", "/upload"):
        data = _read_body(environ)
        return send_json({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if (method, path) == ("GET", "/stream"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _sync_stream()
    if (method, path) == ("GET", "/boom"):
        raise RuntimeError("deliberate failure in a bare WSGI app")
    return send("404 Not Found", b"not found", "text/plain")


def _django_wsgi() -> Any:
    from tests.apps.djproject.wsgi import application

    return application


# --- ASGI apps --------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[dict[str, str]]:
    # The greeting /hello answers with: proof that lifespan state reached the handler.
    yield {"greeting": "hello"}


async def _async_stream() -> AsyncIterator[bytes]:
    for index in range(3):
        if index:
            await asyncio.sleep(PAUSE)
        yield stream_chunk(index)


def _fastapi() -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, StreamingResponse

    app = FastAPI(lifespan=_lifespan)

    @app.get("/hello", response_class=PlainTextResponse)
    async def hello(request: Request) -> str:
        return str(request.state.greeting)

    @app.get("/links")
    async def links(request: Request) -> dict[str, str]:
        return {"hello": str(request.url_for("hello"))}

    @app.post("/form")
    async def form(request: Request) -> dict[str, str]:
        # Parsed by hand: FastAPI's Form() needs python-multipart, urlencoded or not.
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))

    @app.post("/json")
    async def json_echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest, length = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            length += len(chunk)
        return {"length": length, "sha256": digest.hexdigest()}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(_async_stream(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("deliberate failure in a FastAPI endpoint")

    return app


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    async def links(request: Request) -> JSONResponse:
        return JSONResponse({"hello": str(request.url_for("hello"))})

    async def form(request: Request) -> JSONResponse:
        return JSONResponse(
            dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        )

    async def json_echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    async def upload(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_async_stream(), media_type="text/plain")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("deliberate failure in a Starlette endpoint")

    return Starlette(
        routes=[
            Route("/hello", hello, name="hello"),
            Route("/links", links),
            Route("/form", form, methods=["POST"]),
            Route("/json", json_echo, methods=["POST"]),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/boom", boom),
        ],
        lifespan=_lifespan,
    )


def _django_asgi() -> Any:
    from tests.apps.djproject.asgi import application

    return application


# --- mounting both ways -----------------------------------------------------------------


def _flask_in_fastapi() -> Any:
    from fastapi import FastAPI

    from bridge import WSGIToASGI

    app = FastAPI()

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"legacy": "/legacy/"}

    app.mount(MOUNTS["flask-in-fastapi"], WSGIToASGI(_flask()))
    return app


def _fastapi_in_flask() -> Any:
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from bridge import ASGIToWSGI

    app = Flask("matrix_outer")

    @app.get("/")
    def home() -> dict[str, str]:
        return {"api": "/api/"}

    loop_mode = os.environ.get("BRIDGE_MATRIX_LOOP", "thread")
    inner = ASGIToWSGI(_fastapi(), loop_mode=loop_mode)  # type: ignore[arg-type]
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {MOUNTS["fastapi-in-flask"]: inner}
    )
    return app


# --- what a server runs -----------------------------------------------------------------

_APPS: dict[str, tuple[str, Callable[[], Any]]] = {
    "flask": ("wsgi", _flask),
    "django-wsgi": ("wsgi", _django_wsgi),
    "pep3333": ("wsgi", lambda: pep3333_app),
    "django-asgi": ("asgi", _django_asgi),
    "fastapi": ("asgi", _fastapi),
    "starlette": ("asgi", _starlette),
    "flask-in-fastapi": ("asgi", _flask_in_fastapi),
    "fastapi-in-flask": ("wsgi", _fastapi_in_flask),
}


def _stack(app: Any) -> Any:
    from middleware import CORS, AccessLog, GZip, Middleware, Stack

    log_path = os.environ.get("BRIDGE_MATRIX_ACCESS_LOG")
    if log_path:
        logger = logging.getLogger("matrix.access")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(logging.FileHandler(log_path))
    stack = Stack(
        [
            Middleware(AccessLog, logger="matrix.access"),
            Middleware(
                CORS,
                allow_origins=[ALLOWED_ORIGIN],
                allow_methods=["GET", "POST"],
                allow_headers=["content-type"],
            ),
            Middleware(GZip),
        ]
    )
    return stack(app)


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


def build(
    name: str,
    serve: str,
    *,
    stack: bool = False,
    loop_mode: str = "thread",
    mount: str = "",
) -> Any:
    """The app ``name`` for a server speaking ``serve`` (``"asgi"`` or ``"wsgi"``)."""
    from bridge import ASGIToWSGI, WSGIToASGI

    interface, factory = _APPS[name]
    app = factory()
    if stack:
        app = _stack(app)
    if interface != serve:
        app = WSGIToASGI(app) if serve == "asgi" else ASGIToWSGI(app, loop_mode=loop_mode)  # type: ignore[arg-type]
    if mount:
        if serve != "wsgi":
            raise ValueError("BRIDGE_MATRIX_MOUNT is for WSGI servers without a prefix option")
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app = DispatcherMiddleware(_not_found, {mount: app})
    return app


def _from_environment() -> Any:
    return build(
        os.environ["BRIDGE_MATRIX_APP"],
        os.environ["BRIDGE_MATRIX_SERVE"],
        stack=os.environ.get("BRIDGE_MATRIX_STACK") == "1",
        loop_mode=os.environ.get("BRIDGE_MATRIX_LOOP", "thread"),
        mount=os.environ.get("BRIDGE_MATRIX_MOUNT", ""),
    )


if "BRIDGE_MATRIX_APP" in os.environ:
    application = _from_environment()
