"""BodyLimit through both interfaces: declared lengths, counted bodies, what the app sees."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge import ThreadPool, WSGIToASGI
from middleware import BodyLimit, RequestBodyTooLarge
from middleware.testing import WAYS, PlainRequest, run

LIMIT = 1000
TOO_LARGE = b"Request body too large"
CHUNKED = ((b"transfer-encoding", b"chunked"),)


def limit(app: Any) -> Any:
    return BodyLimit(app, max_body_size=LIMIT)


# --- declared lengths -----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, LIMIT])
def test_a_declared_body_within_the_limit_reaches_the_app_every_way(size: int) -> None:
    body = b"x" * size
    for way, result in run(limit, PlainRequest("POST", body=body)).items():
        assert result.status == 200, way
        assert result.seen is not None, way
        assert result.seen.body == body, way


def test_a_declared_body_over_the_limit_gets_413_and_the_app_is_never_called() -> None:
    request = PlainRequest("POST", body=b"x" * (LIMIT + 1))
    results = run(limit, request)
    assert set(results) == set(WAYS)
    for way, result in results.items():
        assert result.status == 413, way
        assert result.body == TOO_LARGE, way
        assert result.header(b"content-length") == str(len(TOO_LARGE)).encode(), way
        # Connection: close only from ASGI; PEP 3333 forbids hop-by-hop headers to WSGI apps.
        closes = way == "asgi"  # ASGIToWSGI drops it for the same reason
        assert result.header(b"connection") == (b"close" if closes else None), way
        assert result.seen is None, way


def test_http2_gets_413_without_a_connection_header() -> None:
    request = PlainRequest("POST", body=b"x" * (LIMIT + 1), http_version="2")
    for way, result in run(limit, request, ways=["wsgi", "asgi"]).items():
        assert (result.status, result.header(b"connection")) == (413, None), way


@pytest.mark.parametrize("digits", [b"1" + b"0" * 5000, b"00000000000000000000000000001001"])
def test_a_huge_or_zero_padded_length_is_read_as_a_number(digits: bytes) -> None:
    scope = PlainRequest("POST").scope()
    scope["headers"].append((b"content-length", digits))
    status, _, _, called, _ = _call_asgi(limit(_asgi_app("read_all")), scope, [])
    assert (status, called) == (413, False)


def test_on_wsgi_to_asgi_a_declared_body_over_the_limit_takes_no_worker_thread() -> None:
    pool = ThreadPool(max_workers=2)
    seen: list[bytes] = []

    def wsgi_app(environ: Any, start_response: Any) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = BodyLimit(WSGIToASGI(wsgi_app, pool=pool), max_body_size=LIMIT)
    try:
        (over,) = run(lambda _: app, PlainRequest("POST", body=b"x" * 5000), ways=["asgi"]).values()
        assert over.status == 413
        assert (pool.threads, seen) == (0, [])
        (within,) = run(lambda _: app, PlainRequest("POST", body=b"y" * 10), ways=["asgi"]).values()
        assert (within.status, within.body) == (200, b"ok")
        assert (pool.threads, seen) == (1, [b"y" * 10])  # the same check can see a thread
    finally:
        pool.shutdown()


# --- counted bodies (chunked, HTTP/2 without Content-Length) --------------------------


@dataclass
class Seen:
    """What an app read, and the error its read raised."""

    body: bytearray = field(default_factory=bytearray)
    errors: list[BaseException] = field(default_factory=list)


def _read_all_wsgi(environ: Any, seen: Seen, how: str = "pieces") -> None:
    stream = environ["wsgi.input"]
    try:
        if how == "all":
            seen.body += stream.read()
        elif how == "lines":
            for line in stream:
                seen.body += line
        else:
            while data := stream.read(300):
                seen.body += data
    except RequestBodyTooLarge as error:
        seen.errors.append(error)
        raise


def _wsgi_app(kind: str, seen: Seen) -> Callable[..., Iterable[bytes]]:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        if kind == "start_first":
            start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "generator":
            return generator(environ, start_response)
        if kind == "stream":
            return streaming(environ, start_response)
        try:
            _read_all_wsgi(environ, seen, "all" if kind == "read_unbounded" else "pieces")
        except RequestBodyTooLarge:
            if kind == "catch_500":  # what Flask does with an unhandled error
                start_response("500 Internal Server Error", [("Content-Type", "text/html")])
                return [b"<h1>Internal Server Error</h1>"]
            if kind == "catch_400":  # what FastAPI does when reading a body fails
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"detail": "There was an error parsing the body"}']
            raise
        if kind != "start_first":
            start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(seen.body)).encode()]

    def generator(environ: Any, start_response: Any) -> Iterator[bytes]:
        _read_all_wsgi(environ, seen)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield str(len(seen.body)).encode()

    def streaming(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started "
        _read_all_wsgi(environ, seen)
        yield str(len(seen.body)).encode()

    return app


def _asgi_app(kind: str, seen: Seen | None = None) -> Any:
    seen = seen if seen is not None else Seen()

    async def read_all(receive: Any) -> None:
        more = True
        try:
            while more:
                message = await receive()
                seen.body += message.get("body", b"")
                more = message.get("more_body", False)
        except RequestBodyTooLarge as error:
            seen.errors.append(error)
            raise

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": []}
        if kind in ("start_first", "stream"):
            await send(start)
        if kind == "stream":
            await send({"type": "http.response.body", "body": b"started ", "more_body": True})
        try:
            await read_all(receive)
        except RequestBodyTooLarge:
            if kind == "catch_500":  # Starlette's ServerErrorMiddleware: answer, re-raise
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
                raise
            if kind == "catch_400":  # FastAPI: "There was an error parsing the body"
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b'{"detail": "..."}'})
                return
            raise
        if kind not in ("start_first", "stream"):
            await send(start)
        await send({"type": "http.response.body", "body": str(len(seen.body)).encode()})

    return app


class _Stream(io.RawIOBase):
    """A server's ``wsgi.input`` for a body of unknown length; counts what was pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._data = io.BytesIO(b"".join(chunks))
        self.pulled = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._data.read(size)
        self.pulled += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._data.readline(size)
        self.pulled += len(data)
        return data


def _call_wsgi(
    app: Any, chunks: list[bytes], http_version: str = "1.1"
) -> tuple[int, dict[bytes, bytes], bytes, BaseException | None, _Stream]:
    environ = PlainRequest("POST", headers=CHUNKED, http_version=http_version).environ()
    stream = _Stream(chunks)
    environ["wsgi.input"] = stream
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = b""
    error: BaseException | None = None

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        if exc_info is not None and started and body:
            raise exc_info[1]
        started.append((status, headers))
        return None

    try:
        result = app(environ, start_response)
        try:
            for chunk in result:
                body += chunk
        finally:
            getattr(result, "close", lambda: None)()
    except Exception as exc:  # what the server would see
        error = exc
    status, headers = started[-1] if started else ("500 server", [])
    pairs = {k.lower().encode(): v.encode() for k, v in headers}
    return int(status[:3]), pairs, body, error, stream


def _call_asgi(
    app: Any, scope: dict[str, Any], chunks: list[bytes]
) -> tuple[int, dict[bytes, bytes], bytes, bool, BaseException | None]:
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks or [b""])
    ]
    called = [False]

    async def receive() -> dict[str, Any]:
        called[0] = True
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    error: BaseException | None = None
    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:
        error = exc
    starts = [m for m in sent if m["type"] == "http.response.start"]
    status = starts[0]["status"] if starts else 0
    headers = {bytes(k): bytes(v) for k, v in (starts[0]["headers"] if starts else [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, headers, body, called[0], error


def _asgi_scope(http_version: str = "1.1") -> dict[str, Any]:
    headers = CHUNKED if http_version.startswith("1") else ()
    return PlainRequest("POST", headers=headers, http_version=http_version).scope()


UNDER = [b"a" * 300, b"b" * 300, b"c" * 400]  # exactly LIMIT
OVER = [b"a" * 300, b"b" * 300, b"c" * 300, b"d" * 300]  # the fourth read goes past

HANDLED_KINDS = ["read_all", "catch_500", "catch_400", "start_first"]


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_a_counted_body_within_the_limit_reaches_the_app(http_version: str) -> None:
    seen = Seen()
    status, _, body, error, _ = _call_wsgi(limit(_wsgi_app("read_all", seen)), UNDER, http_version)
    assert (status, body, error, bytes(seen.body)) == (200, b"1000", None, b"".join(UNDER))
    seen = Seen()
    app = limit(_asgi_app("read_all", seen))
    status, _, body, _, error = _call_asgi(app, _asgi_scope(http_version), UNDER)
    assert (status, body, error, bytes(seen.body)) == (200, b"1000", None, b"".join(UNDER))


@pytest.mark.parametrize("kind", [*HANDLED_KINDS, "generator"])
def test_wsgi_a_counted_body_over_the_limit_gets_413_and_the_read_raises(kind: str) -> None:
    seen = Seen()
    status, headers, body, error, _ = _call_wsgi(limit(_wsgi_app(kind, seen)), OVER)
    assert (status, body, error) == (413, TOO_LARGE, None)
    assert headers[b"content-length"] == b"22"
    assert b"connection" not in headers
    assert bytes(seen.body) == b"a" * 300 + b"b" * 300 + b"c" * 300  # never past the limit
    assert len(seen.errors) == 1
    assert isinstance(seen.errors[0], RequestBodyTooLarge)
    assert seen.errors[0].limit == LIMIT


@pytest.mark.parametrize("kind", HANDLED_KINDS)
def test_asgi_a_counted_body_over_the_limit_gets_413_and_the_receive_raises(kind: str) -> None:
    seen = Seen()
    status, headers, body, _, error = _call_asgi(limit(_asgi_app(kind, seen)), _asgi_scope(), OVER)
    assert (status, body) == (413, TOO_LARGE)
    assert headers[b"content-length"] == b"22"
    assert headers[b"connection"] == b"close"
    assert bytes(seen.body) == b"a" * 300 + b"b" * 300 + b"c" * 300
    assert [type(e) for e in seen.errors] == [RequestBodyTooLarge]
    # Answered before the app's response went out: nothing left for the server to log,
    # except when the app had already started (the driver's 500 became the 413).
    assert (error is not None) is (kind == "start_first")


def test_after_the_response_went_out_the_request_is_aborted() -> None:
    status, _, body, error, _ = _call_wsgi(limit(_wsgi_app("stream", Seen())), OVER)
    assert (status, body) == (200, b"started ")
    assert isinstance(error, RequestBodyTooLarge)
    status, _, body, _, error = _call_asgi(limit(_asgi_app("stream")), _asgi_scope(), OVER)
    assert (status, body) == (200, b"started ")
    assert isinstance(error, RequestBodyTooLarge)


def test_wsgi_an_unbounded_read_pulls_at_most_the_limit_and_one_piece() -> None:
    seen = Seen()
    chunks = [b"z" * 100_000] * 50  # 5 MB, sent by a client that never stops
    app = BodyLimit(_wsgi_app("read_unbounded", seen), max_body_size=200_000)
    status, _, _, error, stream = _call_wsgi(app, chunks)
    assert (status, error) == (413, None)
    assert len(seen.body) == 0  # read() raised instead of returning a partial body
    assert 200_000 < stream.pulled <= 200_000 + 65536


def test_wsgi_line_reads_are_counted_too() -> None:
    seen = Seen()
    lines = [b"line %04d\n" % i for i in range(200)]  # 2000 bytes
    app = limit(lambda environ, start_response: _lines_app(environ, start_response, seen))
    status, _, _, error, _ = _call_wsgi(app, lines)
    assert (status, error) == (413, None)
    assert len(seen.body) == LIMIT  # whole lines up to the limit, then the read raised


def _lines_app(environ: Any, start_response: Any, seen: Seen) -> Iterable[bytes]:
    _read_all_wsgi(environ, seen, "lines")
    start_response("200 OK", [])
    return [b"unreachable"]


def test_an_http1_request_without_a_body_is_left_alone() -> None:
    inputs: list[Any] = []

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        inputs.append(environ["wsgi.input"])
        start_response("200 OK", [])
        return [b"ok"]

    environ = PlainRequest().environ()
    original = environ["wsgi.input"]
    result = limit(app)(environ, lambda *args: None)
    assert result == [b"ok"]
    assert inputs == [original]


def test_a_malformed_length_is_counted() -> None:
    scope = PlainRequest("POST").scope()
    scope["headers"].append((b"content-length", b"10, 10"))
    status, _, body, _, _ = _call_asgi(limit(_asgi_app("read_all")), scope, OVER)
    assert (status, body) == (413, TOO_LARGE)


def test_other_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    asyncio.run(limit(app)({"type": "lifespan"}, None, None))
    asyncio.run(limit(app)({"type": "websocket", "headers": []}, None, None))
    assert calls == ["lifespan", "websocket"]


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("10", TypeError)]
)
def test_the_limit_is_a_non_negative_int(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_body_size"):
        BodyLimit(lambda environ, start_response: [], max_body_size=value)


def test_it_is_a_body_limit_of_the_app_interface() -> None:
    async def asgi(scope: Any, receive: Any, send: Any) -> None: ...

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    assert isinstance(limit(asgi), BodyLimit)
    assert limit(asgi).interface == "asgi"
    assert isinstance(limit(wsgi), BodyLimit)
    assert limit(wsgi).interface == "wsgi"
    assert "asgi" in repr(limit(asgi))
    assert limit(wsgi).max_body_size == LIMIT
