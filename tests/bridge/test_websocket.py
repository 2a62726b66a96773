"""WebSockets for WSGI apps under ``WSGIToASGI``, in process (no sockets).

Real servers and a real client: tests/e2e/test_websocket_servers.py.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import ThreadPool, WebSocket, WebSocketClosed, WebSocketState, WSGIToASGI
from bridge._types import Environ, StartResponse
from tests.bridge.ws_harness import TIMEOUT, Client, ws_scope

DENIAL = {"websocket.http.response": {}}


def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    ws: WebSocket = environ["bridge.websocket"]
    ws.accept()
    for message in ws:
        ws.send(message)
    start_response("200 OK", [])
    return [b"ignored"]


def not_found(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not here!"]


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(8, max_queue=0, name="test-websocket")
    yield pool
    pool.shutdown()


# --- the handshake ------------------------------------------------------------------


async def test_the_handshake_reaches_the_app_as_a_get_request(pool: ThreadPool) -> None:
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.update(environ)
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept("chat.v2", headers=[("X-Session", "abc")])
        ws.close(4000, "bye")
        return []

    scope = ws_scope(
        "/app/chat/room",
        root_path="/app",
        query_string=b"a=1",
        headers=[(b"host", b"example.com"), (b"cookie", b"session=s1")],
        subprotocols=["chat.v1", "chat.v2"],
    )
    client = Client(WSGIToASGI(app, websocket_pool=pool), scope).connect()
    assert await client.next() == {
        "type": "websocket.accept",
        "subprotocol": "chat.v2",
        "headers": [(b"x-session", b"abc")],
    }
    assert await client.next() == {"type": "websocket.close", "code": 4000, "reason": "bye"}
    await client.finished()
    assert seen["REQUEST_METHOD"] == "GET"
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/app", "/chat/room")
    assert seen["QUERY_STRING"] == "a=1"
    assert seen["HTTP_COOKIE"] == "session=s1"
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["wsgi.input"].read() == b""
    assert seen["asgi.scope"] is scope


async def test_an_app_that_does_not_accept_is_closed_before_accept_giving_a_403(
    pool: ThreadPool,
) -> None:
    client = Client(WSGIToASGI(not_found, websocket_pool=pool)).connect()
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
    await client.finished()


async def test_with_the_denial_extension_the_apps_own_response_is_the_refusal(
    pool: ThreadPool,
) -> None:
    client = Client(WSGIToASGI(not_found, websocket_pool=pool), ws_scope(extensions=DENIAL))
    client.connect()
    assert await client.next() == {
        "type": "websocket.http.response.start",
        "status": 404,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")],
    }
    assert await client.next() == {
        "type": "websocket.http.response.body",
        "body": b"not here!",
        "more_body": False,
    }
    await client.finished()


async def test_an_app_that_raises_before_accepting_is_refused_with_a_500(
    pool: ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("boom")

    client = Client(WSGIToASGI(broken, websocket_pool=pool), ws_scope(extensions=DENIAL))
    with caplog.at_level(logging.ERROR, "bridge.wsgi_to_asgi"):
        client.connect()
        start = await client.next()
        body = await client.next()
        await client.finished()
    assert (start["status"], body["body"]) == (500, b"Internal Server Error")
    assert "Exception in WebSocket app" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"subprotocol": "nope"}, ValueError, id="subprotocol-not-offered"),
        pytest.param({"headers": [("Bad Name", "x")]}, ValueError, id="header-name"),
        pytest.param({"headers": [("X-A", "a\r\nb")]}, ValueError, id="header-injection"),
    ],
)
async def test_a_bad_accept_raises_and_refuses(
    pool: ThreadPool, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["bridge.websocket"].accept(**kwargs)
        except Exception as exc:
            raised.append(exc)
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
    await client.finished()
    assert [type(exc) for exc in raised] == [error]


async def test_misuse_before_accept_and_bad_close_codes_raise(pool: ThreadPool) -> None:
    raised: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        for call in (lambda: ws.send("x"), ws.receive, lambda: ws.close(1005)):
            try:
                call()
            except (RuntimeError, ValueError) as exc:
                raised.append(type(exc).__name__)
        ws.close(1008, "policy")  # refusing explicitly
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    assert await client.next() == {"type": "websocket.close", "code": 1008, "reason": "policy"}
    await client.finished()
    assert raised == ["RuntimeError", "RuntimeError", "ValueError"]


async def test_a_client_that_leaves_before_accept_makes_accept_raise(pool: ThreadPool) -> None:
    left = threading.Event()
    raised: list[int] = []
    connections: list[WebSocket] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        connections.append(environ["bridge.websocket"])
        assert left.wait(TIMEOUT)
        try:
            environ["bridge.websocket"].accept()
        except WebSocketClosed as closed:
            raised.append(closed.code)
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    client.leave(1001)
    deadline = time.monotonic() + TIMEOUT
    while not (connections and connections[0].state is WebSocketState.CLOSED):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    left.set()
    await client.finished()
    assert raised == [1001]
    assert client.outgoing.empty()


async def test_repeated_headers_over_the_limit_refuse_the_connection(pool: ThreadPool) -> None:
    headers = [(b"host", b"h")] + [(b"x-a", b"1")] * 5
    adapter = WSGIToASGI(echo, websocket_pool=pool, max_header_repeats=3)
    client = Client(adapter, ws_scope(headers=headers, extensions=DENIAL)).connect()
    start = await client.next()
    assert start["status"] == 431
    await client.next()
    await client.finished()


def test_flask_routes_need_websocket_true_to_match_a_websocket_handshake(
    pool: ThreadPool,
) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.route("/plain")
    def plain() -> str:
        flask.request.environ["bridge.websocket"].accept()
        return ""

    @app.route("/ws", websocket=True)
    def marked() -> str:
        flask.request.environ["bridge.websocket"].accept()
        return ""

    upgrade = [(b"host", b"h"), (b"connection", b"Upgrade"), (b"upgrade", b"websocket")]

    async def first_message(path: str) -> Any:
        adapter = WSGIToASGI(app, websocket_pool=pool)
        client = Client(adapter, ws_scope(path, headers=upgrade, extensions=DENIAL)).connect()
        message = await client.next()
        while (await client.next())["type"] not in (
            "websocket.close",
            "websocket.http.response.body",
        ):
            pass
        await client.finished()
        return message.get("status", message["type"])

    assert asyncio.run(first_message("/plain")) == 400  # werkzeug's WebSocketMismatch
    assert asyncio.run(first_message("/ws")) == "websocket.accept"


# --- messages -----------------------------------------------------------------------


async def test_text_and_binary_messages_keep_their_type_both_ways(pool: ThreadPool) -> None:
    client = Client(WSGIToASGI(echo, websocket_pool=pool)).connect()
    await client.accepted()
    client.say("héllo")
    client.say(b"\x00\xff")
    client.say("")
    assert await client.next() == {"type": "websocket.send", "text": "héllo"}
    assert await client.next() == {"type": "websocket.send", "bytes": b"\x00\xff"}
    assert await client.next() == {"type": "websocket.send", "text": ""}
    client.leave(1000)
    # echo returns without closing after the client left: nothing more is sent
    await client.finished()
    assert client.outgoing.empty()


async def test_receive_times_out_and_the_connection_stays_usable(pool: ThreadPool) -> None:
    outcome: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        started = time.monotonic()
        try:
            ws.receive(timeout=0.05)
        except TimeoutError:
            outcome.append(f"timeout after >= 0.05 s: {time.monotonic() - started >= 0.05}")
        ws.send("ready")
        outcome.append(str(ws.receive(timeout=TIMEOUT)))
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    assert await client.next() == {"type": "websocket.send", "text": "ready"}
    client.say("late")
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
    await client.finished()
    assert outcome == ["timeout after >= 0.05 s: True", "late"]


async def test_iteration_ends_when_the_client_closes_and_close_code_says_why(
    pool: ThreadPool,
) -> None:
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        seen.extend(ws)
        seen.append((ws.close_code, ws.close_reason, ws.state.value))
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    client.say("a")
    client.say(b"b")
    client.incoming.put_nowait({"type": "websocket.disconnect", "code": 4001, "reason": "done"})
    await client.finished()
    # every message that arrived before the close is read first
    assert seen == ["a", b"b", (4001, "done", "closed")]
    assert client.outgoing.empty()


async def test_a_client_that_leaves_makes_receive_and_send_raise(pool: ThreadPool) -> None:
    raised: list[tuple[str, int, bool]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        for call in (ws.receive, lambda: ws.send("x")):
            try:
                call()
            except WebSocketClosed as closed:
                raised.append((type(closed).__name__, closed.code, isinstance(closed, OSError)))
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    client.leave(1006)
    await client.finished()
    assert raised == [("WebSocketClosed", 1006, True)] * 2


async def test_a_send_the_server_refuses_makes_the_apps_next_send_raise(
    pool: ThreadPool,
) -> None:
    raised: list[int] = []
    done = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        ws.send("one")
        try:
            while True:
                ws.send("more")
        except WebSocketClosed as closed:
            raised.append(closed.code)
        done.set()
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool))

    async def failing_send(message: Any) -> None:
        if message["type"] == "websocket.send":
            raise OSError("connection reset")
        await client.outgoing.put(dict(message))

    client.send = failing_send  # type: ignore[method-assign]
    client.connect()
    await client.accepted()
    await client.finished()  # the session ends at once; the app finds out at its next send
    assert await asyncio.to_thread(done.wait, TIMEOUT)
    assert raised == [1006]


# --- the app's return value and errors ----------------------------------------------


async def test_the_return_value_after_accept_is_ignored_but_closed_once(pool: ThreadPool) -> None:
    closed: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            raise AssertionError("the body of an accepted connection is never read")

        def close(self) -> None:
            closed.append(threading.current_thread().name)

    def app(environ: Environ, start_response: StartResponse) -> Body:
        environ["bridge.websocket"].accept()
        start_response("200 OK", [("Content-Length", "5")])
        return Body()

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    # returning without closing closes normally
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
    await client.finished()
    assert len(closed) == 1
    assert closed[0].startswith("test-websocket")


@pytest.mark.parametrize("how", ["raises", "answers-500"])
async def test_an_app_that_fails_after_accept_closes_with_1011(
    pool: ThreadPool, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["bridge.websocket"].accept()
        if how == "raises":
            raise RuntimeError("boom")
        start_response("500 Internal Server Error", [])  # what Flask does with an error
        return [b""]

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    with caplog.at_level(logging.ERROR, "bridge.wsgi_to_asgi"):
        await client.accepted()
        assert await client.next() == {"type": "websocket.close", "code": 1011, "reason": ""}
        await client.finished()
    assert ("Exception in WebSocket app" in caplog.text) == (how == "raises")


# --- the pool -----------------------------------------------------------------------


@pytest.mark.parametrize("denial", [False, True], ids=["close", "http-503"])
async def test_a_full_pool_refuses_new_connections_and_http_is_not_affected(
    denial: bool,
) -> None:
    ws_pool = ThreadPool(1, max_queue=0, name="test-websocket")
    http_pool = ThreadPool(1, max_queue=0, name="test-http")
    try:
        adapter = WSGIToASGI(echo, pool=http_pool, websocket_pool=ws_pool)
        scope = ws_scope(extensions=DENIAL if denial else None)
        first = Client(adapter, scope).connect()
        await first.accepted()
        second = Client(adapter, scope).connect()
        if denial:
            assert await second.next() == {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"retry-after", b"1"),
                    (b"content-length", b"19"),
                ],
            }
            assert (await second.next())["body"] == b"Service Unavailable"
        else:
            assert await second.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
        await second.finished()
        # plain requests still run on their own pool
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
            start_response("200 OK", [])
            return [b"hi"]

        http = WSGIToASGI(hello, pool=http_pool, websocket_pool=ws_pool)
        scope_http = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await asyncio.wait_for(http(scope_http, receive, send), TIMEOUT)
        assert sent[0]["status"] == 200
        first.leave(1000)
        await first.finished()
    finally:
        ws_pool.shutdown()
        http_pool.shutdown()


# --- backpressure -------------------------------------------------------------------


async def test_a_slow_client_blocks_send_within_the_queue_bound(pool: ThreadPool) -> None:
    progress: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        for index in range(100):
            progress.append(index)
            ws.send(str(index))
        ws.close()
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool, websocket_queue=4))
    client.sends_allowed.clear()  # the client reads nothing
    client.connect()
    deadline = time.monotonic() + TIMEOUT
    while len(progress) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    # The accept is stuck in the server's send(), four messages wait in the queue and
    # the fifth send blocks; the app gets no further however long we wait.
    await asyncio.sleep(0.3)
    assert len(progress) == 5
    client.sends_allowed.set()
    await client.accepted()
    texts = [(await client.next())["text"] for _ in range(100)]
    assert texts == [str(index) for index in range(100)]
    assert (await client.next())["type"] == "websocket.close"
    await client.finished()


async def test_the_byte_bound_holds_back_big_messages(pool: ThreadPool) -> None:
    progress: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        for index in range(10):
            progress.append(index)
            ws.send(bytes([index]) * 1000)
        ws.close()
        return []

    adapter = WSGIToASGI(app, websocket_pool=pool, websocket_queue_bytes=2500)
    client = Client(adapter)
    client.sends_allowed.clear()
    client.connect()
    deadline = time.monotonic() + TIMEOUT
    while len(progress) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    # accept is stuck in send(); three 1000-byte messages reach the 2500-byte bound
    assert len(progress) == 4
    client.sends_allowed.set()
    await client.accepted()
    bodies = [(await client.next())["bytes"] for _ in range(10)]
    assert bodies == [bytes([index]) * 1000 for index in range(10)]
    await client.finished()


async def test_an_app_that_does_not_read_stops_the_adapter_receiving(pool: ThreadPool) -> None:
    go = threading.Event()
    got: list[str | bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        assert go.wait(TIMEOUT)
        got.extend(ws)
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool, websocket_queue=8)).connect()
    await client.accepted()
    for index in range(100):
        client.say(str(index))
    deadline = time.monotonic() + TIMEOUT
    while client.receive_calls < 1 + 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # and no further, however long we wait
    # the connect, then 8 messages queued for the app: the rest stay with the server
    assert client.receive_calls == 1 + 8
    go.set()
    await asyncio.sleep(0)
    deadline = time.monotonic() + TIMEOUT
    while client.incoming.qsize() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    client.leave(1000)
    await client.finished()
    assert got == [str(index) for index in range(100)]


# --- shutdown -----------------------------------------------------------------------


async def test_lifespan_shutdown_closes_open_connections_with_1001(pool: ThreadPool) -> None:
    raised: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        ws.send("hello")
        try:
            ws.receive()
        except WebSocketClosed as closed:
            raised.append(closed.code)
        return []

    adapter = WSGIToASGI(app, websocket_pool=pool)
    clients = [Client(adapter).connect() for _ in range(3)]
    for client in clients:
        await client.accepted()
        assert await client.next() == {"type": "websocket.send", "text": "hello"}

    lifespan: list[Any] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        lifespan.append(message)

    await asyncio.wait_for(adapter({"type": "lifespan"}, receive, send), TIMEOUT)
    for client in clients:
        assert await client.next() == {
            "type": "websocket.close",
            "code": 1001,
            "reason": "server shutting down",
        }
        await client.finished()
    assert raised == [1001, 1001, 1001]
    assert lifespan[-1] == {"type": "lifespan.shutdown.complete"}
    # and the adapter refuses new connections from now on
    late = Client(adapter).connect()
    assert await late.next() == {"type": "websocket.close", "code": 1000, "reason": ""}


async def test_a_cancelled_connection_closes_with_1001_and_the_app_sees_it(
    pool: ThreadPool,
) -> None:
    raised: list[int] = []
    done = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        try:
            ws.receive()
        except WebSocketClosed as closed:
            raised.append(closed.code)
        done.set()
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    assert client.task is not None
    client.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.task
    assert await asyncio.to_thread(done.wait, TIMEOUT)
    assert raised == [1001]
    # the client is told too, where the server still lets us send
    assert await client.next() == {
        "type": "websocket.close",
        "code": 1001,
        "reason": "server shutting down",
    }


# --- cross-thread stress ------------------------------------------------------------


async def test_many_connections_under_constant_thread_switching_lose_no_message() -> None:
    connections, messages = 40, 150
    pool = ThreadPool(connections, max_queue=0, name="stress-websocket")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        adapter = WSGIToASGI(echo, websocket_pool=pool, websocket_queue=2)

        async def converse(number: int) -> None:
            client = Client(adapter).connect()
            await client.accepted()
            expected = []
            for index in range(messages):
                data: str | bytes = f"{number}:{index}"
                if index % 3 == 0:
                    data = data.encode() * (index % 7 + 1)
                client.say(data)
                expected.append(data)
            echoed = []
            for _ in range(messages):
                message = await client.next()
                echoed.append(message.get("text", message.get("bytes")))
            assert echoed == expected
            client.leave(1000)
            await client.finished()

        await asyncio.wait_for(asyncio.gather(*(converse(n) for n in range(connections))), 120)
    finally:
        sys.setswitchinterval(old)
        pool.shutdown()


async def test_a_receive_that_raises_counts_as_the_client_leaving(pool: ThreadPool) -> None:
    raised: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        try:
            ws.receive()
        except WebSocketClosed as closed:
            raised.append(closed.code)
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool))
    calls = 0

    async def receive() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "websocket.connect"}
        raise OSError("the server gave up on the connection")

    client.receive = receive  # type: ignore[method-assign]
    client.connect()
    await client.accepted()
    await client.finished()
    assert raised == [1006]
    assert client.outgoing.empty()  # no close frame after the connection is gone


# --- small contracts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"websocket_queue": 0}, "websocket_queue must be at least 1"),
        ({"websocket_queue_bytes": 0}, "websocket_queue_bytes must be at least 1"),
    ],
)
def test_queue_bounds_must_be_positive(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WSGIToASGI(echo, **options)  # type: ignore[arg-type]


async def test_bad_messages_and_close_reasons_raise_and_close_is_idempotent(
    pool: ThreadPool,
) -> None:
    raised: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        for call in (lambda: ws.send(42), lambda: ws.close(1000, "é" * 62)):  # type: ignore[arg-type]
            try:
                call()
            except (TypeError, ValueError) as exc:
                raised.append(type(exc).__name__)
        ws.send(bytearray(b"ok"))
        ws.close(1000, "é" * 61)  # 122 bytes: allowed
        ws.close(4000)  # already closed: nothing happens
        try:
            ws.send("late")
        except WebSocketClosed as closed:
            raised.append(f"closed {closed.code}")
        return []

    client = Client(WSGIToASGI(app, websocket_pool=pool)).connect()
    await client.accepted()
    assert await client.next() == {"type": "websocket.send", "bytes": b"ok"}
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": "é" * 61}
    await client.finished()
    assert raised == ["TypeError", "ValueError", "closed 1000"]
    assert client.outgoing.empty()


async def test_a_client_gone_before_the_handshake_never_reaches_the_app() -> None:
    calls: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls.append("called")
        return []

    client = Client(WSGIToASGI(app))
    client.incoming.put_nowait({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(client.app(client.scope, client.receive, client.send), TIMEOUT)
    assert calls == []
    assert client.outgoing.empty()


async def test_a_shut_down_pool_refuses_connections() -> None:
    pool = ThreadPool(1, max_queue=0)
    pool.shutdown()
    client = Client(WSGIToASGI(echo, websocket_pool=pool)).connect()
    assert await client.next() == {"type": "websocket.close", "code": 1000, "reason": ""}
    await client.finished()


async def test_the_origin_check_is_the_apps_and_a_refusal_by_origin_is_a_403(
    pool: ThreadPool,
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ.get("HTTP_ORIGIN") != "https://app.example":
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"cross-site WebSocket refused"]
        environ["bridge.websocket"].accept()
        return []

    def handshake(origin: bytes) -> Client:
        headers = [(b"host", b"app.example"), (b"origin", origin)]
        return Client(WSGIToASGI(app, websocket_pool=pool), ws_scope(headers=headers))

    same = handshake(b"https://app.example").connect()
    await same.accepted()
    await same.finished()
    other = handshake(b"https://evil.example")
    other.scope["extensions"] = DENIAL
    other.connect()
    assert (await other.next())["status"] == 403
    assert (await other.next())["body"] == b"cross-site WebSocket refused"
    await other.finished()
