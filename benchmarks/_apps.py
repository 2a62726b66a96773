"""The applications every benchmark serves, and the adapters they are served through.

One raw WSGI app and one raw ASGI app answer the same routes the same way, so that a
contender differs from its baseline by the adapter only:

* ``/``: ``Hello, world!`` (13 bytes, with Content-Length);
* ``/echo``: the request body back (read whole);
* ``/download?size=N``: N zero bytes in 64 KiB chunks, with Content-Length;
* ``/upload``: reads the request body 64 KiB at a time, answers the byte count;
* ``/sleep``: blocks (WSGI ``time.sleep``) or waits (ASGI ``asyncio.sleep``) 50 ms,
  then says hello.

Framework apps (Flask for WSGI, Starlette for ASGI) serve ``/`` only. Contenders are
named ``"<adapter>:<app>"``; :func:`build` makes one. Adapters are built lazily, in the
process that serves them (a2wsgi's ``ASGIMiddleware`` starts a thread when built).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

HELLO = b"Hello, world!"
CHUNK = 64 * 1024
SLEEP = 0.05
_ZEROS = bytes(CHUNK)
_HELLO_HEADERS_WSGI = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_HELLO_HEADERS_ASGI = [(b"content-type", b"text/plain"), (b"content-length", b"13")]

# --- raw WSGI ----------------------------------------------------------------------------


def _query_size(query: str) -> int:
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "size":
            return int(value)
    return CHUNK


def _zeros(size: int) -> Iterator[bytes]:
    full, rest = divmod(size, CHUNK)
    for _ in range(full):
        yield _ZEROS
    if rest:
        yield _ZEROS[:rest]


def wsgi_raw(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The raw WSGI app (see the module docstring for its routes)."""
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        start_response("200 OK", list(_HELLO_HEADERS_WSGI))
        return [HELLO]
    if path == "/sleep":
        time.sleep(SLEEP)
        start_response("200 OK", list(_HELLO_HEADERS_WSGI))
        return [HELLO]
    if path == "/download":
        size = _query_size(environ.get("QUERY_STRING", ""))
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        return _zeros(size)
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if path == "/echo":
        body = stream.read(length) if length else b""
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if path == "/upload":
        count = 0
        while count < length:
            chunk = stream.read(min(CHUNK, length - count))
            if not chunk:
                break
            count += len(chunk)
        text = str(count).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
        )
        return [text]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


# --- raw ASGI ----------------------------------------------------------------------------


async def _read_all(receive: Callable[[], Any]) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _send_whole(send: Callable[[Any], Any], body: bytes, kind: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def asgi_raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The raw ASGI app (see the module docstring for its routes)."""
    if scope["type"] != "http":
        return  # lifespan: returning without a message means "not supported"
    path = scope["path"]
    if path in ("/", "/sleep"):
        if path == "/sleep":
            await asyncio.sleep(SLEEP)
        await send(
            {"type": "http.response.start", "status": 200, "headers": list(_HELLO_HEADERS_ASGI)}
        )
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/download":
        size = _query_size(scope["query_string"].decode("latin-1"))
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in _zeros(size):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        await _send_whole(send, await _read_all(receive), b"application/octet-stream")
    elif path == "/upload":
        count = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            count += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await _send_whole(send, str(count).encode(), b"text/plain")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# --- framework apps ----------------------------------------------------------------------


def wsgi_flask() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get("/")
    def hello() -> tuple[bytes, int, dict[str, str]]:
        return HELLO, 200, {"Content-Type": "text/plain"}

    return app


def asgi_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(HELLO)

    return Starlette(routes=[Route("/", hello)])


def wsgi_realistic() -> Any:
    from benchmarks._realistic import flask_app  # templates, session, sqlite: see there

    return flask_app()


WSGI_APPS: dict[str, Callable[[], Any]] = {
    "raw": lambda: wsgi_raw,
    "flask": wsgi_flask,
    "realistic": wsgi_realistic,
}
ASGI_APPS: dict[str, Callable[[], Any]] = {"raw": lambda: asgi_raw, "starlette": asgi_starlette}

# --- adapters ----------------------------------------------------------------------------


def _bridge_w2a(app: Any) -> Any:
    from bridge import WSGIToASGI

    return WSGIToASGI(app)


def _a2wsgi_w2a(app: Any) -> Any:
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(app)


def _asgiref_w2a(app: Any) -> Any:
    from asgiref.wsgi import WsgiToAsgi

    return WsgiToAsgi(app)


def _starlette_w2a(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated since Starlette 0.x; that is the point
        from starlette.middleware.wsgi import WSGIMiddleware
    return WSGIMiddleware(app)


def _bridge_a2w(mode: str) -> Callable[[Any], Any]:
    def make(app: Any) -> Any:
        from bridge import ASGIToWSGI

        return ASGIToWSGI(app, loop_mode=mode)  # type: ignore[arg-type]

    return make


def _a2wsgi_a2w(app: Any) -> Any:
    from a2wsgi import ASGIMiddleware

    return ASGIMiddleware(app)


# adapter name -> (interface it takes, interface it gives, wrap)
ADAPTERS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "native WSGI": ("wsgi", "wsgi", lambda app: app),
    "native ASGI": ("asgi", "asgi", lambda app: app),
    "WSGIToASGI": ("wsgi", "asgi", _bridge_w2a),
    "a2wsgi WSGIMiddleware": ("wsgi", "asgi", _a2wsgi_w2a),
    "asgiref WsgiToAsgi": ("wsgi", "asgi", _asgiref_w2a),
    "Starlette WSGIMiddleware": ("wsgi", "asgi", _starlette_w2a),
    "ASGIToWSGI thread": ("asgi", "wsgi", _bridge_a2w("thread")),
    "ASGIToWSGI shared": ("asgi", "wsgi", _bridge_a2w("shared")),
    "a2wsgi ASGIMiddleware": ("asgi", "wsgi", _a2wsgi_a2w),
}


def starlette_wsgi_available() -> str | None:
    """None when Starlette's WSGIMiddleware imports, else why not."""
    try:
        _starlette_w2a(wsgi_raw)
    except ImportError as error:
        return f"starlette.middleware.wsgi not importable: {error}"
    return None


def a2wsgi_available() -> bool:
    try:
        import a2wsgi  # noqa: F401
    except ImportError:
        return False
    return True


def serves(spec: str) -> str:
    """The interface (``"wsgi"`` or ``"asgi"``) the contender ``spec`` gives a server."""
    return ADAPTERS[spec.partition(":")[0]][1]


def build(spec: str) -> Any:
    """The app for ``"<adapter>:<app>"``, e.g. ``"WSGIToASGI:flask"``."""
    adapter, _, app_name = spec.partition(":")
    takes, _gives, wrap = ADAPTERS[adapter]
    apps = WSGI_APPS if takes == "wsgi" else ASGI_APPS
    return wrap(apps[app_name]())
