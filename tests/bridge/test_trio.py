"""WSGIToASGI under trio (hypercorn ``-k trio``, ``TestClient(backend="trio")``).

The same exchange as on asyncio, with trio standing in for the loop: each test runs a
request with ``trio.run`` through a scripted server (trio primitives only, so nothing
asyncio could be hiding behind) and checks what reached the ASGI side.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge import ClientDisconnected, ThreadPool, WSGIToASGI
from bridge._types import Environ, Message, StartResponse
from tests.bridge.harness import http_scope

trio = pytest.importorskip("trio")

TEXT = [("Content-Type", "text/plain")]


@dataclass
class TrioExchange:
    """One request on trio: scripted ``receive``, recorded ``send``."""

    body_chunks: list[bytes] = field(default_factory=lambda: [b""])
    #: send() waits for a token on this channel before each body message (a slow client)
    slow_client: bool = False
    messages: list[Message] = field(default_factory=list)
    gone: Any = None
    complete: Any = None
    body_sent: Any = None
    receive_calls: int = 0

    def __post_init__(self) -> None:
        self.gone, self.complete, self.body_sent = trio.Event(), trio.Event(), trio.Event()
        self.reads_send, self.reads = trio.open_memory_channel(100)

    async def receive(self) -> Message:
        self.receive_calls += 1
        index = self.receive_calls - 1
        if index < len(self.body_chunks) and not self.gone.is_set():
            more = index < len(self.body_chunks) - 1
            return {"type": "http.request", "body": self.body_chunks[index], "more_body": more}
        # After the body, a real server's receive() waits for the client to leave or
        # for the response to be complete.
        async with trio.open_nursery() as nursery:

            async def wait(event: Any) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait, self.gone)
            nursery.start_soon(wait, self.complete)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and self.slow_client:
            await self.reads.receive()
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.body_sent.set()
            if not message.get("more_body", False):
                self.complete.set()

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages if m["type"] == "http.response.body")


def serve(app: Any, exchange: TrioExchange | None = None, **scope: Any) -> TrioExchange:
    """Run one request through ``WSGIToASGI``-wrapped ``app`` on a fresh trio run."""
    exchange = exchange or TrioExchange()

    async def main() -> None:
        with trio.fail_after(10):
            await app(http_scope(**scope), exchange.receive, exchange.send)

    trio.run(main)
    return exchange


def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    return [b"hello"]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_a_short_response_reaches_the_server() -> None:
    exchange = serve(WSGIToASGI(hello))
    assert exchange.messages[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
    }
    # Usually one body message; two (the second empty) when the loop wakes between them.
    assert exchange.body == b"hello"
    assert [m["more_body"] for m in exchange.messages[1:]][-1] is False
    assert len(exchange.messages) in (2, 3)


def test_a_chunked_upload_is_pulled_through_the_trio_thread() -> None:
    threads: list[int] = []

    def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
        threads.append(threading.get_ident())
        data = environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [data]

    chunks = [b"first,", b"second,", b"", b"third"]
    exchange = serve(WSGIToASGI(echo), TrioExchange(body_chunks=chunks), method="POST")
    assert exchange.body == b"first,second,third"
    assert exchange.receive_calls == len(chunks)
    assert threads != [threading.get_ident()]


def test_a_streamed_response_is_held_back_by_a_slow_client() -> None:
    produced: list[int] = []

    def counting(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for i in range(20):
            produced.append(i)
            yield b"%d\n" % i

    exchange = TrioExchange(slow_client=True)
    seen_ahead: list[int] = []

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    WSGIToASGI(counting, max_chunks_in_flight=2),
                    http_scope(),
                    exchange.receive,
                    exchange.send,
                )
                for _ in range(21):  # 20 chunks and the final empty one
                    await trio.sleep(0.02)
                    seen_ahead.append(
                        len(produced)
                        - sum(1 for m in exchange.messages if m["type"] == "http.response.body")
                    )
                    await exchange.reads_send.send(None)

    trio.run(main)
    assert exchange.body == b"".join(b"%d\n" % i for i in range(20))
    # The app ran at most the window (2), plus the chunk being posted, ahead of the client.
    assert max(seen_ahead) <= 3


def test_a_client_disconnect_stops_a_streaming_app_and_frees_the_thread() -> None:
    pool = ThreadPool(2)
    closed: list[int] = []

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            while True:
                time.sleep(0.01)
                yield b"tick\n"

        def close(self) -> None:
            closed.append(threading.get_ident())

    def app(environ: Environ, start_response: StartResponse) -> Endless:
        start_response("200 OK", TEXT)
        return Endless()

    exchange = TrioExchange()

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    WSGIToASGI(app, pool=pool), http_scope(), exchange.receive, exchange.send
                )
                await exchange.body_sent.wait()
                exchange.gone.set()

    trio.run(main)
    wait_until(lambda: pool.pending == 0)
    assert len(closed) == 1
    assert closed[0] != threading.get_ident()


def test_a_cancelled_request_wakes_a_thread_blocked_on_the_body() -> None:
    pool = ThreadPool(2)
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except BaseException as exc:
            errors.append(exc)
            raise
        return []

    async def receive() -> Message:
        if not hasattr(receive, "called"):
            receive.called = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"x", "more_body": True}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing should be sent: {message}")

    async def main() -> None:
        with trio.move_on_after(0.2) as scope:
            await WSGIToASGI(app, pool=pool)(http_scope(method="POST"), receive, send)
        assert scope.cancelled_caught

    trio.run(main)
    wait_until(lambda: pool.pending == 0)
    assert [type(e) for e in errors] == [ClientDisconnected]


def test_an_app_error_reaches_the_server_as_itself() -> None:
    def boom(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        serve(WSGIToASGI(boom))


def test_a_request_queued_past_the_deadline_gets_503() -> None:
    pool = ThreadPool(1, queue_timeout=0.1)
    gate = threading.Event()
    started = threading.Event()

    def blocking(environ: Environ, start_response: StartResponse) -> list[bytes]:
        started.set()
        gate.wait(10)
        start_response("200 OK", TEXT)
        return [b"late"]

    adapter = WSGIToASGI(blocking, pool=pool)
    first, second = TrioExchange(), TrioExchange()

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(adapter, http_scope(), first.receive, first.send)
                await trio.to_thread.run_sync(started.wait, 5)
                await adapter(http_scope(), second.receive, second.send)
                gate.set()

    trio.run(main)
    assert second.start["status"] == 503
    assert (b"retry-after", b"1") in second.start["headers"]
    assert first.body == b"late"


def test_lifespan_runs_sync_hooks_in_a_thread() -> None:
    ran: list[tuple[str, int]] = []
    adapter = WSGIToASGI(
        hello,
        on_startup=[lambda: ran.append(("startup", threading.get_ident()))],
        on_shutdown=[lambda: ran.append(("shutdown", threading.get_ident()))],
    )
    sent: list[Message] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    trio.run(adapter, {"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert [phase for phase, _ in ran] == ["startup", "shutdown"]
    assert threading.get_ident() not in {thread for _, thread in ran}


def test_websockets_raise_a_clear_error_on_trio() -> None:
    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing should be sent: {message}")

    scope = {**http_scope(), "type": "websocket", "scheme": "ws"}
    with pytest.raises(RuntimeError, match="WebSocket connections on asyncio only"):
        trio.run(WSGIToASGI(hello), scope, receive, send)


def test_outside_any_event_loop_the_error_says_what_is_needed() -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    coroutine = WSGIToASGI(hello)(http_scope(), receive, receive)
    # Driven by hand: an await that is neither asyncio's nor trio's.
    with pytest.raises(RuntimeError, match="running asyncio or trio event loop"):
        coroutine.send(None)
    coroutine.close()


def test_starlette_test_client_on_the_trio_backend() -> None:
    with warnings.catch_warnings():
        # This Starlette asks for the "httpx2" package; httpx still works for its TestClient.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        testclient = pytest.importorskip("starlette.testclient")

    def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
        data = environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [b"got ", str(len(data)).encode()]

    with testclient.TestClient(WSGIToASGI(echo), backend="trio") as client:
        response = client.post("/", content=b"x" * 200_000)
    assert response.status_code == 200
    assert response.text == "got 200000"
