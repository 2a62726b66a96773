"""Hostile input: each gets a clear answer and a log line, never a crash, hang or a
worker left busy.

Real servers (uvicorn in front of ``WSGIToASGI``, gunicorn gthread in front of
``ASGIToWSGI``) run ``tests/soak/soak_apps.py``; raw sockets send what httpx refuses to.
Where a server would reject the input before our code sees it, the same input is given
to the adapter in-process instead.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import ThreadPool, WSGIToASGI
from bridge._asgi_to_wsgi import ASGIToWSGI
from tests.bridge.harness import http_scope, pool_idle, request
from tests.faults.leaks import Snapshot, assert_no_leaks
from tests.servers import asgi_server_argv, free_port, require_module, serve, wsgi_server_argv
from tests.wsgi_call import call_wsgi_app

W2A = "bridge.wsgi_to_asgi"
A2W = "bridge.asgi_to_wsgi"
MAX_BODY = 1 << 20  # soak_apps.MAX_BODY, without importing (and configuring) the apps here


# --- real servers -----------------------------------------------------------------------


@dataclass
class Server:
    kind: str  # "wsgi_to_asgi" (uvicorn) or "asgi_to_wsgi" (gunicorn gthread)
    url: str
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def log_text(self, timeout: float = 5.0, wanted: str = "") -> str:
        """The adapter's log so far; waits up to ``timeout`` for ``wanted`` to appear."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if wanted in text or time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    def stats(self) -> dict[str, Any]:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            data: dict[str, Any] = client.get("/stats").json()
        return data

    def assert_idle(self, timeout: float = 15.0) -> None:
        """No request but the /stats probe in flight (and no pool job for W->A)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if (stats["busy"] <= 1 and stats.get("pending", 1) <= 1) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.05)
        assert stats["busy"] <= 1, stats
        assert stats.get("pending", 1) <= 1, stats


def _serve(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp(kind) / "adapter.log"
    if kind == "wsgi_to_asgi":
        require_module("uvicorn")
        argv = asgi_server_argv("uvicorn", "tests.soak.soak_apps:wsgi_to_asgi", port)
    else:
        require_module("gunicorn")
        argv = wsgi_server_argv("gunicorn-gthread", "tests.soak.soak_apps:asgi_to_wsgi", port)
    # The server's own output (gunicorn logs an ASGIToWSGI app's exceptions) beside it.
    with serve(argv, port, env={"FAULT_LOG": str(log)}, log=log.with_name("server.log")) as url:
        yield Server(kind, url, log)


@pytest.fixture(scope="module")
def uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve("wsgi_to_asgi", tmp_path_factory)


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve("asgi_to_wsgi", tmp_path_factory)


@pytest.fixture(params=["uvicorn", "gunicorn"])
def server(request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(request.param)
    return found


@dataclass
class Raw:
    status: int | None  # None: the connection closed without a response
    head: bytes
    body: bytes


def raw(server: Server, data: bytes, *, half_close: bool = False, timeout: float = 10) -> Raw:
    """Send ``data`` on a fresh connection; everything until the server closes or goes quiet."""
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if _complete(received):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return Raw(status, head, body)


def _dechunk(data: bytes) -> bytes:
    """The payload of a chunked body, as far as it arrived."""
    out = b""
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return body.endswith(b"0\r\n\r\n")


def get(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: test", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


slow = pytest.mark.slow


@slow
def test_invalid_utf8_path(server: Server) -> None:
    response = raw(server, get(b"/environ/%FF"))
    if server.kind == "wsgi_to_asgi":
        # WSGI can carry any bytes (PEP 3333: latin-1 str); the app sees exactly 0xFF.
        assert response.status == 200
        assert json.loads(response.body)["PATH_INFO"] == "/environ/\xff"
    else:
        # An ASGI path is text: the request cannot be expressed, so it is the client's fault.
        assert response.status == 400
        assert "bad request: request path is not UTF-8" in server.log_text(wanted="bad request")
    server.assert_idle()


@slow
def test_raw_non_ascii_query_bytes_are_refused_by_the_server(server: Server) -> None:
    # Not valid in a request-target (RFC 3986): both servers' parsers answer 400.
    response = raw(server, get(b"/environ?q=caf\xc3\xa9"))
    assert response.status == 400
    server.assert_idle()


@slow
def test_escaped_non_ascii_query_reaches_the_app_byte_for_byte(server: Server) -> None:
    response = raw(server, get(b"/environ?q=caf%C3%A9&r=%FF"))
    assert response.status == 200
    seen = json.loads(response.body)
    query = seen["QUERY_STRING"] if server.kind == "wsgi_to_asgi" else seen["query_string"]
    assert query.encode("latin-1") == b"q=caf%C3%A9&r=%FF"
    server.assert_idle()


@slow
def test_enormous_header(server: Server) -> None:
    response = raw(server, get(b"/environ", b"X-Huge: " + b"a" * 200_000))
    if server.kind == "wsgi_to_asgi" and importlib.util.find_spec("httptools") is not None:
        # uvicorn on httptools sets no header size limit: the adapter passes it on intact.
        assert response.status == 200
        assert len(json.loads(response.body)["HTTP_X_HUGE"]) == 200_000
    elif server.kind == "wsgi_to_asgi":
        # uvicorn on h11 refuses a header block over 16 KiB before the adapter runs.
        assert response.status == 400
    else:
        # gunicorn's limit_request_field_size (8190) refuses it before the adapter runs.
        assert response.status == 431
    server.assert_idle()


@slow
def test_header_repeated_too_often(server: Server) -> None:
    headers = [b"X-Repeat: %d" % i for i in range(150)]
    response = raw(server, get(b"/small", *headers))
    if server.kind == "wsgi_to_asgi":
        assert response.status == 431  # max_header_repeats (100 by default)
        assert "repeated too often" in server.log_text(wanted="repeated too often")
    else:
        assert response.status == 431  # gunicorn's limit_request_fields (100)
    server.assert_idle()


@slow
def test_many_distinct_headers(server: Server) -> None:
    headers = [b"X-H%d: v" % i for i in range(90)]
    response = raw(server, get(b"/environ", *headers))
    assert response.status == 200
    server.assert_idle()


@slow
def test_underscore_header_cannot_spoof_forwarded_for(server: Server) -> None:
    response = raw(
        server,
        get(b"/environ", b"X_Forwarded_For: 6.6.6.6", b"X-Forwarded-For: 10.0.0.1"),
    )
    assert response.status == 200
    seen = json.loads(response.body)
    if server.kind == "wsgi_to_asgi":
        assert seen["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
        assert "6.6.6.6" not in response.body.decode("latin-1")
    else:
        values = [v for k, v in seen["headers"] if k.replace("_", "-") == "x-forwarded-for"]
        assert values == ["10.0.0.1"], seen["headers"]


@slow
@pytest.mark.parametrize(
    "value", ["a%0D%0AInjected:%201", "a%0AInjected:%201", "a%00b"], ids=["crlf", "lf", "nul"]
)
def test_response_header_injection_is_a_500(server: Server, value: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get(f"/bad-header?v={value}")
    assert response.status_code == 500
    assert "injected" not in {name.lower() for name in response.headers}
    if server.kind == "wsgi_to_asgi":
        # The app's error goes to uvicorn, which answers 500 and logs it, once.
        wanted = "Exception in ASGI application"
        text = server.log_text(wanted=wanted)
        assert "InvalidResponse" in text
        assert "Exception in WSGI app" not in text  # not logged by us as well
    else:  # ASGIToWSGI raises the refusal to gunicorn, which answers 500 and logs it
        wanted = "InvalidResponse"
        log = replace(server, log=server.log.with_name("server.log"))
        assert wanted in log.log_text(wanted=wanted)
    server.assert_idle()


@slow
def test_request_body_longer_than_content_length(server: Server) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n\r\n"
    )
    response = raw(server, data)
    assert response.status == 200
    assert json.loads(response.body)["length"] == 5  # the rest is never body
    server.assert_idle()


@slow
def test_request_body_shorter_than_content_length(server: Server) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nonly ten b"
    response = raw(server, data, half_close=True, timeout=15)
    # The client gave up: a truncated body never reaches the app as a complete one.
    if response.status is not None:
        assert response.status >= 400 or json.loads(response.body)["length"] != 10
    server.assert_idle()


@slow
def test_body_over_the_size_limit_is_413(uvicorn: Server) -> None:
    with httpx.Client(base_url=uvicorn.url, timeout=30) as client:
        declared = client.post("/echo", content=b"x" * (MAX_BODY + 1))

        def chunks() -> Iterator[bytes]:
            for _ in range(2 * MAX_BODY // 65536 + 1):
                yield b"y" * 65536

        streamed = client.post("/echo", content=chunks())  # chunked: no Content-Length
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "rejected request" in uvicorn.log_text(wanted="rejected request")
    uvicorn.assert_idle()


@slow
def test_response_longer_than_its_content_length_is_cut(uvicorn: Server) -> None:
    response = raw(uvicorn, get(b"/long-body"))
    assert response.status == 200
    assert response.body == b"0123456789"
    assert "more than its Content-Length" in uvicorn.log_text(wanted="more than its")
    uvicorn.assert_idle()


@slow
def test_response_shorter_than_its_content_length_is_aborted(uvicorn: Server) -> None:
    response = raw(uvicorn, get(b"/short-body"))
    assert len(response.body) < 20  # the connection is cut, the client sees a short body
    assert "declared Content-Length" in uvicorn.log_text(wanted="declared Content-Length")
    uvicorn.assert_idle()


# --- in-process: what servers refuse before we could see it ------------------------------


def _wsgi_echo_environ(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(2, name="hostile-w2a")
    yield pool
    pool.shutdown()


async def test_wsgi_to_asgi_raw_path_with_invalid_utf8(pool: ThreadPool) -> None:
    app = WSGIToASGI(_wsgi_echo_environ, pool=pool)
    # What uvicorn sends for /a%FF: the path decoded with replacement, the raw bytes kept.
    exchange = await request(app, "/a\ufffd", raw_path=b"/a%FF")
    assert exchange.status == 200
    assert json.loads(exchange.body)["PATH_INFO"] == "/a\xff"


async def test_wsgi_to_asgi_underscore_header_is_dropped(pool: ThreadPool) -> None:
    app = WSGIToASGI(_wsgi_echo_environ, pool=pool)
    headers = [(b"host", b"x"), (b"x_forwarded_for", b"6.6.6.6"), (b"x-real-ip", b"1.1.1.1")]
    exchange = await request(app, headers=headers)
    seen = json.loads(exchange.body)
    assert "HTTP_X_FORWARDED_FOR" not in seen
    assert seen["HTTP_X_REAL_IP"] == "1.1.1.1"


async def test_wsgi_to_asgi_header_repeats_over_the_cap_is_431(
    pool: ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    app = WSGIToASGI(_wsgi_echo_environ, pool=pool, max_header_repeats=5)
    exchange = await request(app, headers=[(b"cookie", b"a=%d" % i) for i in range(6)])
    assert exchange.status == 431
    assert any(r.name == W2A and "repeated too often" in r.getMessage() for r in caplog.records)
    assert await pool_idle(pool)


async def test_wsgi_to_asgi_huge_header_block_is_passed_through(pool: ThreadPool) -> None:
    app = WSGIToASGI(_wsgi_echo_environ, pool=pool)
    headers = [(b"x-h%d" % i, b"v" * 100) for i in range(2000)]
    headers.append((b"x-big", b"b" * 1_000_000))
    exchange = await request(app, headers=headers)
    assert exchange.status == 200
    assert len(json.loads(exchange.body)["HTTP_X_BIG"]) == 1_000_000


async def test_wsgi_to_asgi_content_length_over_the_limit_is_413_before_reading(
    pool: ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    app = WSGIToASGI(_wsgi_echo_environ, pool=pool, max_body_size=10)
    scope = http_scope("/", method="POST", headers=[(b"content-length", b"11")])
    exchange = await request(
        app, body=(b"x" * 11,), **{k: v for k, v in scope.items() if k in ("method", "headers")}
    )
    assert exchange.status == 413
    assert exchange.receive_calls == 0  # refused on the declared length alone
    assert any(r.name == W2A and "rejected request" in r.getMessage() for r in caplog.records)


def _asgi_seen() -> tuple[Any, dict[str, Any]]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        seen.update(scope=scope, body=body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, seen


def _environ(**extra: Any) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    environ.update(extra)
    return environ


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    return call_wsgi_app(app, environ)


def test_asgi_to_wsgi_non_utf8_path_is_400(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = Snapshot.take()
    app, seen = _asgi_seen()
    with ASGIToWSGI(app) as adapter:
        status, _ = _call(adapter, _environ(PATH_INFO="/a\xff"))
    assert status.startswith("400")
    assert not seen
    assert any(r.name == A2W and "bad request" in r.getMessage() for r in caplog.records)
    assert_no_leaks(before)


def test_asgi_to_wsgi_query_decoded_as_utf8_by_a_lax_server() -> None:
    # Not PEP 3333 (latin-1), but seen in the wild: keep the characters, do not crash.
    app, seen = _asgi_seen()
    with ASGIToWSGI(app) as adapter:
        status, _ = _call(adapter, _environ(QUERY_STRING="q=\u20ac"))
    assert status.startswith("200")
    assert seen["scope"]["query_string"] == "q=\u20ac".encode()


def test_asgi_to_wsgi_huge_headers_pass_through() -> None:
    app, seen = _asgi_seen()
    headers = {f"HTTP_X_H{i}": "v" * 100 for i in range(2000)}
    with ASGIToWSGI(app) as adapter:
        status, _ = _call(adapter, _environ(HTTP_X_BIG="b" * 1_000_000, **headers))
    assert status.startswith("200")
    assert len(seen["scope"]["headers"]) == 2001


def test_asgi_to_wsgi_reads_no_further_than_content_length() -> None:
    app, seen = _asgi_seen()
    stream = io.BytesIO(b"hello, and the next request on this connection")
    with ASGIToWSGI(app) as adapter:
        environ = _environ(REQUEST_METHOD="POST", CONTENT_LENGTH="5", **{"wsgi.input": stream})
        status, _ = _call(adapter, environ)
    assert status.startswith("200")
    assert seen["body"] == b"hello"


def test_asgi_to_wsgi_negative_content_length_reads_nothing() -> None:
    app, seen = _asgi_seen()
    stream = io.BytesIO(b"hello, and the next request on this connection")
    with ASGIToWSGI(app) as adapter:
        environ = _environ(REQUEST_METHOD="POST", CONTENT_LENGTH="-5", **{"wsgi.input": stream})
        status, _ = _call(adapter, environ)
    assert status.startswith("200")
    assert seen["body"] == b""
