"""A test kit for middleware authors: one plain-data request through every interface.

``run(make, request)`` wraps a tiny echo app with ``make`` (your middleware class, or a
function of the app) on each interface and calls it four ways: as a WSGI app, as an
ASGI app, and the same two behind the bridge's adapters (``WSGIToASGI`` and
``ASGIToWSGI``), so one assertion covers every way users will run it::

    from middleware.testing import PlainRequest, run

    def test_the_request_id_is_echoed() -> None:
        for way, result in run(RequestID, PlainRequest(headers=[(b"x-request-id", b"a")])).items():
            assert result.header(b"x-request-id") == b"a", way

Each :class:`Result` carries the response and :class:`Seen`, what the app saw of the
request (after your middleware changed it). Calls are in memory; no sockets, no threads
beyond what ``WSGIToASGI`` uses. :class:`PlainHead` builds a request head for unit
tests of a core on its own.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import ASGIToWSGI, WSGIToASGI
from bridge._scope import http_scope
from bridge._types import Environ, Message, Receive, Scope, Send, StartResponse
from middleware._request import STATE_KEY, PlainHead, request_state

__all__ = [
    "WAYS",
    "PlainHead",
    "PlainRequest",
    "Result",
    "Seen",
    "asgi_echo_app",
    "call_asgi",
    "call_wsgi",
    "run",
    "wsgi_echo_app",
]

WAYS = ("wsgi", "asgi", "wsgi_on_asgi", "asgi_on_wsgi")
"""The keys of :func:`run`'s result, one per way of running a middleware."""

Pairs = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True)
class PlainRequest:
    """A request as plain data (header names lower-case bytes)."""

    method: str = "GET"
    path: str = "/"
    query: bytes = b""
    headers: Pairs = ()
    body: bytes = b""
    scheme: str = "http"
    client: tuple[str, int] | None = ("127.0.0.1", 50000)
    server: tuple[str, int] = ("testserver", 80)
    root_path: str = ""
    http_version: str = "1.1"

    def scope(self) -> Scope:
        """The ASGI ``http`` scope of this request."""
        headers = [(b"host", self.server[0].encode()), *self.headers]
        if self.body:
            headers.append((b"content-length", str(len(self.body)).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": self.http_version,
            "method": self.method,
            "scheme": self.scheme,
            "path": self.root_path + self.path,
            "raw_path": (self.root_path + self.path).encode(),
            "query_string": self.query,
            "root_path": self.root_path,
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "extensions": {},
        }

    def environ(self) -> Environ:
        """The WSGI environ of this request (PEP 3333)."""
        environ: Environ = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": self.root_path.encode().decode("latin-1"),
            "PATH_INFO": self.path.encode().decode("latin-1"),
            "QUERY_STRING": self.query.decode("latin-1"),
            "SERVER_NAME": self.server[0],
            "SERVER_PORT": str(self.server[1]),
            "SERVER_PROTOCOL": "HTTP/" + self.http_version,
            "HTTP_HOST": self.server[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(self.body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if self.client is not None:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.client[0], str(self.client[1])
        if self.body:
            environ["CONTENT_LENGTH"] = str(len(self.body))
        for name, value in self.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            # As servers join repeats: cookies with "; " (RFC 6265), others with ", ".
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + text if key in environ else text
        return environ


@dataclass
class Seen:
    """What the echo app saw of the request, the same fields on both interfaces."""

    method: str
    path: str
    root_path: str
    query: bytes
    scheme: str
    client: tuple[str, int | None] | None
    server: tuple[str, int | None] | None
    headers: list[tuple[bytes, bytes]]
    body: bytes
    state: dict[str, Any]
    context_state: dict[str, Any] | None
    """:data:`middleware.api.request_state` as the app saw it (``None``: not set)."""

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes, state: Mapping[str, Any] | None) -> Seen:
        client, server = scope.get("client"), scope.get("server")
        context = request_state.get(None)
        return cls(
            method=scope["method"],
            path=scope["path"],
            root_path=scope.get("root_path", ""),
            query=scope.get("query_string", b""),
            scheme=scope.get("scheme", "http"),
            client=None if client is None else (client[0], client[1]),
            server=None if server is None else (server[0], server[1]),
            headers=[(bytes(k), bytes(v)) for k, v in scope["headers"]],
            body=body,
            state=dict(state or {}),
            context_state=None if context is None else dict(context),
        )


@dataclass
class Result:
    """A response as the client got it, and what the app saw (``None``: not called)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes] = field(default_factory=list)
    seen: Seen | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> bytes | None:
        """The value of response header ``name`` (lower-case), repeats joined by ``", "``."""
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None


_Reply = tuple[int, Pairs, Sequence[bytes]]


def wsgi_echo_app(
    seen: list[Seen], reply: _Reply = (200, ((b"content-type", b"text/plain"),), (b"hello",))
) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """A WSGI app that reads the whole body, records :class:`Seen` and answers ``reply``."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        seen.append(Seen.from_scope(http_scope(environ), body, environ.get(STATE_KEY)))
        status, headers, chunks = reply
        start_response(
            f"{status} X", [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        )
        return list(chunks)

    return app


def asgi_echo_app(
    seen: list[Seen], reply: _Reply = (200, ((b"content-type", b"text/plain"),), (b"hello",))
) -> Callable[[Scope, Receive, Send], Any]:
    """The ASGI twin of :func:`wsgi_echo_app` (lifespan supported, so adapters start)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append(Seen.from_scope(scope, body, scope.get("state")))
        status, headers, chunks = reply
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def call_wsgi(app: Any, request: PlainRequest) -> Result:
    """Call a WSGI app with ``request``; iterate and close its body like a server."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    written: list[bytes] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started.append((status, headers))
        return written.append

    result = app(request.environ(), start_response)
    try:
        chunks = [chunk for chunk in result if chunk]
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[-1]
    return Result(
        int(status[:3]),
        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        written + chunks,
    )


def call_asgi(app: Any, request: PlainRequest) -> Result:
    """Call an ASGI app with ``request`` on a new event loop; collect what it sends."""
    sent: list[Message] = []

    async def main() -> None:
        messages = [{"type": "http.request", "body": request.body, "more_body": False}]

        async def receive() -> Message:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client stays until the app is done
            raise AssertionError("unreachable")  # pragma: no cover - waits forever

        async def send(message: Message) -> None:
            sent.append(message)

        await app(request.scope(), receive, send)

    asyncio.run(main())
    start = next(m for m in sent if m["type"] == "http.response.start")
    chunks = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    chunks += [Path(m["path"]).read_bytes() for m in sent if m["type"] == "http.response.pathsend"]
    return Result(
        start["status"],
        [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers", [])],
        [chunk for chunk in chunks if chunk],
    )


def run(
    make: Callable[[Any], Any],
    request: PlainRequest | None = None,
    *,
    status: int = 200,
    headers: Pairs = ((b"content-type", b"text/plain"),),
    chunks: Sequence[bytes] = (b"hello",),
    ways: Sequence[str] = WAYS,
) -> dict[str, Result]:
    """Run ``make(app)`` around an echo app answering ``status``, ``headers``, ``chunks``
    in each of ``ways`` (default: all :data:`WAYS`); ``Result.seen`` is what the app saw."""
    request = request or PlainRequest()
    reply: _Reply = (status, headers, chunks)
    results: dict[str, Result] = {}
    for way in ways:
        if way not in WAYS:
            raise ValueError(f"unknown way {way!r}; choose from {WAYS}")
        seen: list[Seen] = []
        if way == "wsgi":
            result = call_wsgi(make(wsgi_echo_app(seen, reply)), request)
        elif way == "asgi":
            result = call_asgi(make(asgi_echo_app(seen, reply)), request)
        elif way == "wsgi_on_asgi":
            result = call_asgi(WSGIToASGI(make(wsgi_echo_app(seen, reply))), request)
        else:
            with ASGIToWSGI(make(asgi_echo_app(seen, reply)), lifespan="off") as adapter:
                result = call_wsgi(adapter, request)
        result.seen = seen[0] if seen else None
        results[way] = result
    return results
