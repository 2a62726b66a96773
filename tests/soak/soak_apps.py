"""One set of routes, written once per interface, for the real-server fault, hostile-input
and soak tests.

* ``wsgi_to_asgi``: a PEP 3333 app behind ``WSGIToASGI`` (serve with uvicorn);
* ``asgi_to_wsgi``: a raw ASGI app behind ``ASGIToWSGI`` (serve with gunicorn gthread).

Routes (same on both)::

    /small              "ok"
    /echo               POST: the body's length and sha256, as JSON
    /stream?n=&size=    n chunks of size bytes, chunk i made of its index (stream_chunk)
    /sse?n=             n Server-Sent Events, 5 ms apart
    /slow-stream        up to 10 s of 1 KiB chunks, 10 ms apart (clients hang up on it)
    /raise              the app raises before responding
    /raise-mid          one chunk, then the app raises
    /bad-header?v=      a response header whose value is ``v`` (CR/LF/NUL injection)
    /long-body          declares Content-Length 10, sends 20 bytes in one chunk
    /short-body         declares Content-Length 20, sends 10 bytes
    /environ...         the request as the app saw it (path, query, headers), as JSON
    /stats              requests in flight, threads, fds of this process, as JSON

With ``FAULT_LOG=<path>`` in the environment, records of the ``bridge`` and
``middleware`` loggers (INFO and up) and of ``uvicorn.error`` are appended to that file,
so tests can check that a rejection or an app error was logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from bridge import ThreadPool, WSGIToASGI
from bridge._asgi_to_wsgi import ASGIToWSGI

MAX_BODY = 1 << 20  # 413 above this, on the WSGIToASGI side


def _configure_logging() -> None:
    path = os.environ.get("FAULT_LOG")
    if not path:
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for name in ("bridge", "middleware"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    # Where uvicorn reports an app's exception (WSGIToASGI raises it there).
    logging.getLogger("uvicorn.error").addHandler(handler)


_configure_logging()

_busy = 0
_busy_lock = threading.Lock()


def _enter() -> None:
    global _busy
    with _busy_lock:
        _busy += 1


def _leave() -> None:
    global _busy
    with _busy_lock:
        _busy -= 1


def _stats(extra: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "busy": _busy,
            "threads": threading.active_count(),
            "fds": len(os.listdir("/proc/self/fd")),
            "pid": os.getpid(),
            **extra,
        }
    ).encode()


def stream_chunk(index: int, size: int) -> bytes:
    """Chunk ``index`` of ``/stream``: its index repeated, so a client can tell chunks apart."""
    return (b"%08d" % index * (size // 8 + 1))[:size]


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query[name][0])
    except (KeyError, ValueError, IndexError):
        return default


# --- WSGI -------------------------------------------------------------------------------

POOL = ThreadPool(16, max_queue=64, name="soak-worker")


class _Tracked:
    """Counts the request as busy until the server closes the body."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            _leave()


def _slow_stream() -> Iterator[bytes]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        yield b"s" * 1024
        time.sleep(0.01)


def _sse(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield f"id: {i}\ndata: event {i}\n\n".encode()
        time.sleep(0.005)


def _raise_mid() -> Iterator[bytes]:
    yield b"first"
    raise ValueError("injected: raise-mid")


def _wsgi_route(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    text = [("Content-Type", "text/plain")]
    if path == "/small":
        start_response("200 OK", text)
        return [b"ok"]
    if path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        digest = hashlib.sha256(data).hexdigest()
        return [json.dumps({"length": len(data), "sha256": digest}).encode()]
    if path == "/stream":
        n, size = _int(query, "n", 10), _int(query, "size", 1024)
        start_response("200 OK", text)
        return (stream_chunk(i, size) for i in range(n))
    if path == "/sse":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return _sse(_int(query, "n", 10))
    if path == "/slow-stream":
        start_response("200 OK", text)
        return _slow_stream()
    if path == "/raise":
        raise ValueError("injected: raise")
    if path == "/raise-mid":
        start_response("200 OK", text)
        return _raise_mid()
    if path == "/bad-header":
        value = query.get("v", ["a\r\nInjected: 1"])[0]
        start_response("200 OK", [*text, ("X-Echo", value)])
        return [b"should not be sent"]
    if path == "/long-body":
        start_response("200 OK", [*text, ("Content-Length", "10")])
        return [b"0123456789ABCDEFGHIJ"]
    if path == "/short-body":
        start_response("200 OK", [*text, ("Content-Length", "20")])
        return [b"0123456789"]
    if path.startswith("/environ"):
        seen = {k: v for k, v in environ.items() if isinstance(v, str)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]
    if path == "/stats":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [_stats({"pending": POOL.pending, "pool_threads": POOL.threads})]
    start_response("404 Not Found", text)
    return [b"not found"]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    _enter()
    try:
        return _Tracked(_wsgi_route(environ, start_response))
    except BaseException:
        _leave()
        raise


wsgi_to_asgi = WSGIToASGI(wsgi_app, pool=POOL, max_body_size=MAX_BODY)


# --- ASGI -------------------------------------------------------------------------------


async def _start(
    send: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
        }
    )


async def _body(send: Any, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _asgi_route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"))
    if path == "/small":
        await _start(send)
        await _body(send, b"ok")
    elif path == "/echo":
        digest = hashlib.sha256()
        length = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            digest.update(chunk)
            length += len(chunk)
            if not message.get("more_body"):
                break
        await _start(send, headers=[(b"content-type", b"application/json")])
        await _body(send, json.dumps({"length": length, "sha256": digest.hexdigest()}).encode())
    elif path == "/stream":
        n, size = _int(query, "n", 10), _int(query, "size", 1024)
        await _start(send)
        for i in range(n):
            await _body(send, stream_chunk(i, size), True)
        await _body(send, b"")
    elif path == "/sse":
        await _start(send, headers=[(b"content-type", b"text/event-stream")])
        for i in range(_int(query, "n", 10)):
            await _body(send, f"id: {i}\ndata: event {i}\n\n".encode(), True)
            await asyncio.sleep(0.005)
        await _body(send, b"")
    elif path == "/slow-stream":
        await _start(send)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await _body(send, b"s" * 1024, True)
            await asyncio.sleep(0.01)
        await _body(send, b"")
    elif path == "/raise":
        raise ValueError("injected: raise")
    elif path == "/raise-mid":
        await _start(send)
        await _body(send, b"first", True)
        raise ValueError("injected: raise-mid")
    elif path == "/bad-header":
        value = query.get("v", ["a\r\nInjected: 1"])[0].encode("latin-1")
        await _start(send, headers=[(b"content-type", b"text/plain"), (b"x-echo", value)])
        await _body(send, b"should not be sent")
    elif path.startswith("/environ"):
        seen = {
            "path": path,
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        }
        await _start(send, headers=[(b"content-type", b"application/json")])
        await _body(send, json.dumps(seen).encode())
    elif path == "/stats":
        await _start(send, headers=[(b"content-type", b"application/json")])
        await _body(send, _stats({}))
    else:
        await _start(send, 404)
        await _body(send, b"not found")


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("lifespan not supported")  # ASGIToWSGI "auto": carries on
    _enter()
    try:
        await _asgi_route(scope, receive, send)
    finally:
        _leave()


asgi_to_wsgi = ASGIToWSGI(asgi_app)
