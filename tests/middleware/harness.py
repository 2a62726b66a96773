"""In-memory callers and tiny apps that run one behaviour through both interfaces.

httpx's transports buffer whole bodies; these callers keep every chunk and message, so
tests can see streaming, pass-through messages and ``close()`` calls.
"""

from __future__ import annotations

import asyncio
import io
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import brotli
import zstandard

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reply:
    """What the tiny app answers, identically on both interfaces."""

    status: int = 200
    headers: Pairs = (("Content-Type", "text/plain; charset=utf-8"),)
    chunks: tuple[bytes, ...] = (b"hello",)
    content_length: bool = False

    def all_headers(self) -> list[tuple[str, str]]:
        headers = list(self.headers)
        if self.content_length:
            headers.append(("Content-Length", str(sum(map(len, self.chunks)))))
        return headers


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    query: str = ""
    headers: Pairs = ()


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    chunks: list[bytes] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower()]
        return ", ".join(values) if values else None

    def header_count(self, name: str) -> int:
        return sum(1 for key, _ in self.headers if key == name.lower())

    @property
    def decoded(self) -> bytes:
        return decode(self.header("content-encoding"), self.body)


def decode(coding: str | None, body: bytes) -> bytes:
    if coding is None or coding.strip().lower() == "identity":
        return body
    if coding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "br":
        return bytes(brotli.decompress(body))
    if coding == "zstd":
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    raise AssertionError(f"unexpected content-encoding {coding!r}")


class TrackedBody:
    """A WSGI body iterable that counts ``close()`` calls."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self.closed += 1


def wsgi_app(reply: Reply, bodies: list[TrackedBody] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(f"{reply.status} Whatever", reply.all_headers())
        body = TrackedBody(reply.chunks)
        if bodies is not None:
            bodies.append(body)
        return body

    return validator(app)


def asgi_app(reply: Reply) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = [(k.lower().encode(), v.encode()) for k, v in reply.all_headers()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        chunks = reply.chunks or (b"",)
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


def environ_for(request: Request) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "REMOTE_ADDR": "10.0.0.7",
        "REMOTE_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    setup_testing_defaults(environ)
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    return environ


def call_wsgi(app: Any, request: Request, *, validate: bool = True) -> Result:
    result = Result(0, [])

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        result.status = int(status[:3])
        result.headers = [(k.lower(), v) for k, v in headers]
        return result.chunks.append

    outer = validator(app) if validate else app
    body = outer(environ_for(request), start_response)
    try:
        for chunk in body:
            if chunk:
                result.chunks.append(chunk)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return result


def scope_for(request: Request) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers],
        "client": ("10.0.0.7", 5000),
        "server": ("testserver", 80),
    }


async def call_asgi_async(
    app: Any, request: Request, *, disconnect: bool = False, scope: dict[str, Any] | None = None
) -> Result:
    result = Result(0, [])
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if disconnect:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        result.messages.append(message)
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = [(k.decode().lower(), v.decode()) for k, v in message["headers"]]
        elif message["type"] == "http.response.body" and message.get("body"):
            result.chunks.append(message["body"])

    await app(scope if scope is not None else scope_for(request), receive, send)
    return result


def call_asgi(app: Any, request: Request, **kwargs: Any) -> Result:
    return asyncio.run(call_asgi_async(app, request, **kwargs))


def run_both(wrap: Callable[[Any], Any], reply: Reply, request: Request) -> tuple[Result, Result]:
    """The same reply and request through ``wrap`` on WSGI and on ASGI."""
    via_wsgi = call_wsgi(wrap(wsgi_app(reply)), request)
    via_asgi = call_asgi(wrap(asgi_app(reply)), request)
    return via_wsgi, via_asgi


def line_arrivals(
    reads: Iterable[tuple[float, bytes]], lines: tuple[bytes, ...]
) -> list[tuple[float, int]]:
    """When (and in which read) each of ``lines`` was complete in a gzip stream.

    ``reads`` are ``(monotonic time, raw bytes)`` as the client got them; they are
    decompressed incrementally, as a browser does.
    """
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = b""
    arrivals: list[tuple[float, int]] = []
    expected = b""
    for index, (at, raw) in enumerate(reads):
        decoded += decoder.decompress(raw)
        while len(arrivals) < len(lines) and decoded.startswith(expected + lines[len(arrivals)]):
            expected += lines[len(arrivals)]
            arrivals.append((at, index))
    assert decoded + decoder.flush() == b"".join(lines)
    return arrivals


def assert_lines_arrived_one_by_one(
    arrivals: list[tuple[float, int]], count: int, pause: float
) -> None:
    """The lines came in separate reads, spread over the app's pauses.

    Held-back compression delivers every line in one read at the end (issue #11). Load
    on the machine can delay a read until the next line is there too, so the bounds
    leave room for that (most lines in reads of their own, half the pauses' spread);
    it can never make a held-back stream look spread out.
    """
    assert len(arrivals) == count
    reads = [index for _at, index in arrivals]
    assert len(set(reads)) >= count - 1, f"lines shared reads: {reads}"
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread >= 0.5 * pause * (count - 1), f"lines arrived within {spread:.3f}s"
