"""WSGIToASGI in-process: each PEP 3333 / ASGI rule, observed at the ASGI boundary."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from bridge import ClientDisconnected, InvalidResponse, ThreadPool, WSGIToASGI
from bridge._types import Environ, StartResponse, WSGIApp
from bridge._wsgi_to_asgi import _STASH_LIMIT
from tests.bridge.harness import Exchange, http_scope, request

TEXT = [("Content-Type", "text/plain")]


def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    return [b"hello"]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class Tracked:
    """A response iterable that records how it was iterated and closed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.closed_in: list[int] = []
        self.iterated_in: set[int] = set()
        self.produced = 0

    def __iter__(self) -> Tracked:
        return self

    def __next__(self) -> bytes:
        self.iterated_in.add(threading.get_ident())
        chunk = next(self._chunks)
        self.produced += 1
        return chunk

    def close(self) -> None:
        self.closed_in.append(threading.get_ident())


def tracked_app(
    chunks: Callable[[], Iterator[bytes]], status: str = "200 OK"
) -> tuple[Any, list[Tracked]]:
    made: list[Tracked] = []

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response(status, TEXT)
        made.append(Tracked(chunks()))
        return made[0]

    return app, made


def assert_closed_once_in_its_thread(tracked: Tracked) -> None:
    assert len(tracked.closed_in) == 1
    assert tracked.iterated_in <= {tracked.closed_in[0]}
    assert tracked.closed_in[0] != threading.get_ident()


# --- basics -----------------------------------------------------------------------


async def test_a_short_response_arrives_whole_in_two_messages() -> None:
    exchange = await request(WSGIToASGI(hello))
    assert exchange.messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        },
        {"type": "http.response.body", "body": b"hello", "more_body": False},
    ]


async def test_the_chunk_that_completes_content_length_is_sent_as_the_last_one() -> None:
    # The app is still running when its declared length is complete: the last body
    # message must not wait for it, nor come as a separate empty message afterwards.
    returned_at: list[float] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        write(b"hello")
        write(b"world")
        time.sleep(0.3)
        returned_at.append(time.monotonic())
        return []

    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope()))
    await wait_until(lambda: any(m.get("more_body") is False for m in exchange.messages))
    last_at = time.monotonic()
    await task
    assert [m.get("more_body") for m in exchange.messages] == [None, True, False]
    assert b"".join(m.get("body", b"") for m in exchange.messages) == b"helloworld"
    assert last_at < returned_at[0]


async def test_the_environ_passes_wsgiref_validate() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.errors"].write("")
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    exchange = await request(
        WSGIToASGI(validator(app)),
        "/p",
        method="POST",
        body=[b"ab", b"cd"],
        query_string=b"q=1",
        headers=[(b"host", b"h"), (b"content-length", b"4"), (b"content-type", b"text/plain")],
    )
    assert (exchange.status, exchange.body) == (200, b"abcd")
    assert seen[0]["QUERY_STRING"] == "q=1"


async def test_contextvars_flow_into_the_worker_thread() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("from-the-loop")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [var.get().encode()]

    assert (await request(WSGIToASGI(app))).body == b"from-the-loop"


async def test_a_served_request_leaves_nothing_for_the_cycle_collector() -> None:
    # Once the worker is done, reference counting frees the exchange and what it holds
    # (the server's receive and send among them): no cycle waits for a gc pass. The
    # disconnect signal stands for the lot: it was in both cycles. Only its id is kept
    # (a reference would keep it alive), and only it is looked for: other tests leave
    # their own garbage behind, collected whenever.
    signals: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signals.append(id(environ["bridge.disconnected"]))
        return hello(environ, start_response)

    pool = ThreadPool(max_workers=1)
    adapter = WSGIToASGI(app, pool=pool)
    await request(adapter)  # warm-up: the worker thread, imports, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        exchange = await request(adapter)
        await wait_until(lambda: pool.pending == 0)
        gc.collect()
        left = [type(thing).__name__ for thing in gc.garbage if id(thing) == signals[-1]]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        pool.shutdown()
    assert exchange.messages[-1]["body"] == b"hello"
    assert left == []


async def test_the_app_runs_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        threads.append(threading.get_ident())
        start_response("200 OK", TEXT)
        return []

    await request(WSGIToASGI(app))
    assert threads != [threading.get_ident()]


async def test_head_requests_send_headers_but_no_body() -> None:
    exchange = await request(WSGIToASGI(hello), method="HEAD")
    assert exchange.status == 200
    assert exchange.header(b"content-length") == b"5"
    assert exchange.body == b""


async def test_write_works_and_comes_before_the_iterable() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written-")
        return [b"iterated"]

    exchange = await request(WSGIToASGI(app))
    assert exchange.body == b"written-iterated"


async def test_write_kept_past_the_apps_call_refuses_and_sends_nothing() -> None:
    kept: list[Callable[[bytes], object]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        kept.append(start_response("200 OK", TEXT))
        return [b"body"]

    exchange = await request(WSGIToASGI(app))
    with pytest.raises(RuntimeError, match="after the WSGI app's call returned"):
        kept[0](b"late")
    assert exchange.body == b"body"


# --- request body -----------------------------------------------------------------


async def test_a_chunked_upload_is_read_fully_from_several_messages() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        assert environ["wsgi.input_terminated"] is True
        assert "CONTENT_LENGTH" not in environ
        lines = environ["wsgi.input"].readlines()
        start_response("200 OK", TEXT)
        return [b"|".join(lines)]

    exchange = await request(
        WSGIToASGI(app), method="POST", body=[b"one\ntw", b"o\nthr", b"ee", b""]
    )
    assert exchange.body == b"one\n|two\n|three"
    assert exchange.receive_calls >= 4


async def test_the_body_is_pulled_on_demand_not_buffered_up_front() -> None:
    reads: list[int] = []
    exchange = Exchange(body_chunks=[b"a", b"b", b"c"])

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        reads.append(exchange.receive_calls)
        environ["wsgi.input"].read(1)
        reads.append(exchange.receive_calls)
        environ["wsgi.input"].read(2)
        reads.append(exchange.receive_calls)
        start_response("200 OK", TEXT)
        return [b"ok"]

    await exchange.run(WSGIToASGI(app), http_scope(method="POST"))
    assert reads == [1, 1, 3]


def _reader_app(errors: list[BaseException]) -> WSGIApp:
    """A WSGI app that reads its whole body and records the ClientDisconnected it gets."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except ClientDisconnected as exc:
            errors.append(exc)
            raise
        start_response("200 OK", TEXT)
        return [b"never"]

    return app


async def test_a_disconnect_mid_upload_raises_from_read() -> None:
    errors: list[BaseException] = []
    app = _reader_app(errors)

    exchange = Exchange(body_chunks=[b"part", b"more"], disconnect_after=1)
    await exchange.run(WSGIToASGI(app), http_scope(method="POST"))
    assert len(errors) == 1
    assert exchange.messages == []


async def test_a_receive_that_raises_mid_upload_fails_the_read_instead_of_hanging() -> None:
    errors: list[BaseException] = []
    app = _reader_app(errors)
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"part", "more_body": True}
        await asyncio.sleep(0.05)  # the app waits for this chunk by now
        raise OSError("the server's connection broke")

    async def send(message: dict[str, Any]) -> None:
        pass

    await asyncio.wait_for(WSGIToASGI(app)(http_scope(method="POST"), receive, send), 5)
    assert len(errors) == 1


async def test_expect_100_continue_leaves_the_first_receive_to_the_app() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("417 Expectation Failed", TEXT)
        return [b"no"]

    exchange = Exchange(body_chunks=[b"big body"])
    scope = http_scope(
        method="POST", headers=[(b"expect", b"100-continue"), (b"content-length", b"8")]
    )
    await exchange.run(WSGIToASGI(app), scope)
    assert exchange.status == 417
    assert exchange.receive_calls == 0


async def test_a_declared_body_over_max_body_size_is_rejected_with_413_unread() -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        return []

    exchange = await request(
        WSGIToASGI(app, max_body_size=4),
        method="POST",
        headers=[(b"content-length", b"5")],
        body=[b"12345"],
    )
    assert (exchange.status, called, exchange.receive_calls) == (413, [], 0)


async def test_a_streamed_body_over_max_body_size_gets_413() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [b"never"]

    exchange = await request(WSGIToASGI(app, max_body_size=4), method="POST", body=[b"123", b"45"])
    assert exchange.status == 413
    assert exchange.body == b"Request body too large"


# --- start_response and headers ---------------------------------------------------


async def test_headers_wait_for_the_first_non_empty_chunk() -> None:
    gate = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        gate.wait(5)
        yield b"data"

    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope()))
    await asyncio.sleep(0.1)
    assert exchange.messages == []  # start_response was called, but no body yet
    gate.set()
    await task
    assert exchange.body == b"data"


async def test_exc_info_before_the_body_replaces_the_status() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-Kept", "no")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    exchange = await request(WSGIToASGI(app))
    assert exchange.status == 503
    assert exchange.header(b"x-kept") is None
    assert exchange.body == b"sorry"


async def test_exc_info_after_the_body_started_aborts_the_response() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"first"
        try:
            raise ValueError("mid-stream")
        except ValueError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never"

    exchange = Exchange()
    with pytest.raises(ValueError, match="mid-stream"):
        await exchange.run(WSGIToASGI(app), http_scope())
    assert exchange.body == b"first"
    assert not exchange.complete  # never a silently truncated 200


async def test_calling_start_response_twice_raises_to_the_server() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        start_response("200 OK", TEXT)
        return [b""]

    exchange = Exchange()
    with pytest.raises(RuntimeError, match="second time"):
        await exchange.run(WSGIToASGI(app), http_scope())
    assert exchange.messages == []  # the server answers 500 itself


async def test_a_header_with_crlf_never_reaches_the_wire() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: session=stolen")])
        return [b"owned"]

    exchange = Exchange()
    with pytest.raises(InvalidResponse, match="X-Evil"):
        await exchange.run(WSGIToASGI(app), http_scope())
    assert exchange.messages == []  # nothing sent: the server answers 500 itself


async def test_latin1_header_values_round_trip() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-Echo", environ["HTTP_X_IN"])])
        return [b"."]

    exchange = await request(WSGIToASGI(app), headers=[(b"x-in", b"caf\xe9 \xff")])
    assert exchange.header(b"x-echo") == b"caf\xe9 \xff"


async def test_repeated_response_headers_are_kept_in_order() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Set-Cookie", "a=1"), ("X-B", "b"), ("Set-Cookie", "c=3")])
        return [b"."]

    exchange = await request(WSGIToASGI(app))
    assert exchange.headers == [(b"set-cookie", b"a=1"), (b"x-b", b"b"), (b"set-cookie", b"c=3")]


async def test_unknown_status_codes_pass_through() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("599 Custom", TEXT)
        return [b"."]

    assert (await request(WSGIToASGI(app))).status == 599


# --- Content-Length ---------------------------------------------------------------


async def test_no_more_bytes_than_content_length_are_sent(caplog: pytest.LogCaptureFixture) -> None:
    produced: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        for chunk in (b"abc", b"defgh", b"ijk"):
            produced.append(chunk)
            yield chunk

    exchange = await request(WSGIToASGI(app))
    assert exchange.body == b"abcde"
    assert exchange.complete
    assert produced == [b"abc", b"defgh"]  # iteration stops once the length is reached
    assert "more than its Content-Length" in caplog.text


async def test_fewer_bytes_than_content_length_aborts_instead_of_hanging() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        return [b"abc"]

    exchange = Exchange()
    with pytest.raises(RuntimeError, match="declared Content-Length: 10"):
        await exchange.run(WSGIToASGI(app), http_scope())
    assert not exchange.complete


# --- errors -------------------------------------------------------------------------


async def test_an_exception_before_the_response_reaches_the_server_as_itself_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = LookupError("database missing")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise error

    exchange = Exchange()
    with pytest.raises(LookupError) as caught:
        await exchange.run(WSGIToASGI(app), http_scope())
    assert caught.value is error  # the original, traceback and all
    assert exchange.messages == []
    # The server logs it; we do not log it a second time.
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


async def test_an_exception_mid_stream_reaches_the_server() -> None:
    def failing(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"one"
        raise OSError("disk gone")

    exchange = Exchange()
    with pytest.raises(OSError, match="disk gone"):
        await exchange.run(WSGIToASGI(failing), http_scope())
    assert exchange.body == b"one"
    assert not exchange.complete


async def test_an_app_that_never_calls_start_response_raises_to_the_server() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"body without a head"]

    with pytest.raises(RuntimeError, match="before calling start_response"):
        await request(WSGIToASGI(app))


async def test_str_body_chunks_raise_to_the_server() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[str]:
        start_response("200 OK", TEXT)
        return ["text"]

    with pytest.raises(TypeError, match="must be bytes"):
        await request(WSGIToASGI(app))  # type: ignore[arg-type]


async def test_a_system_exit_in_the_app_reaches_the_server_as_an_ordinary_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise SystemExit(3)

    with pytest.raises(RuntimeError, match="WSGI app raised SystemExit") as caught:
        await request(WSGIToASGI(app))
    assert isinstance(caught.value.__cause__, SystemExit)


# --- close() on every path ----------------------------------------------------------


async def test_close_is_called_once_in_the_worker_after_success() -> None:
    app, made = tracked_app(lambda: iter([b"a", b"b"]))
    exchange = await request(WSGIToASGI(app))
    assert exchange.body == b"ab"
    assert_closed_once_in_its_thread(made[0])


async def test_close_is_called_once_when_iteration_raises() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise ValueError("bad")

    app, made = tracked_app(chunks)
    with pytest.raises(ValueError, match="bad"):
        await request(WSGIToASGI(app))
    assert_closed_once_in_its_thread(made[0])


def endless() -> Iterator[bytes]:
    while True:
        time.sleep(0.01)
        yield b"tick\n"


async def test_a_client_disconnect_stops_iteration_promptly_and_frees_the_thread() -> None:
    pool = ThreadPool(2)
    app, made = tracked_app(endless)
    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app, pool=pool), http_scope()))
    await asyncio.wait_for(exchange.body_sent.wait(), 5)
    exchange.disconnect()
    await asyncio.wait_for(task, 5)
    await wait_until(lambda: pool.pending == 0, 2)
    assert_closed_once_in_its_thread(made[0])
    produced = made[0].produced
    await asyncio.sleep(0.1)
    assert made[0].produced == produced  # nothing runs after the close


async def test_a_send_that_raises_stops_the_app_and_reaches_the_server() -> None:
    pool = ThreadPool(2)
    app, made = tracked_app(endless)
    exchange = Exchange(send_error=(3, OSError("connection reset")))
    with pytest.raises(OSError, match="connection reset"):
        await asyncio.wait_for(exchange.run(WSGIToASGI(app, pool=pool), http_scope()), 5)
    await wait_until(lambda: pool.pending == 0, 2)
    assert_closed_once_in_its_thread(made[0])


async def test_a_cancelled_request_never_leaves_a_thread_blocked() -> None:
    pool = ThreadPool(2)
    app, made = tracked_app(endless)
    exchange = Exchange(client_reads=asyncio.Event())  # a client that never reads
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app, pool=pool), http_scope()))
    await wait_until(lambda: bool(made) and made[0].produced >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: pool.pending == 0, 2)
    assert_closed_once_in_its_thread(made[0])


async def test_a_cancelled_upload_wakes_the_reading_thread() -> None:
    pool = ThreadPool(2)
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except BaseException as exc:
            errors.append(exc)
            raise
        return []

    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not errors and not hasattr(receive, "called"):
            receive.called = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"x", "more_body": True}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    task = asyncio.ensure_future(
        WSGIToASGI(app, pool=pool)(http_scope(method="POST"), receive, send)
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: pool.pending == 0, 2)
    assert [type(e) for e in errors] == [ClientDisconnected]


# --- streaming and backpressure ----------------------------------------------------


async def test_the_response_streams_chunk_by_chunk() -> None:
    gate = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"first"
        gate.wait(5)
        yield b"second"

    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope()))
    await asyncio.wait_for(exchange.body_sent.wait(), 5)
    assert exchange.body == b"first"  # sent while the app is still running
    gate.set()
    await task
    assert exchange.body == b"firstsecond"


async def test_a_slow_client_holds_the_app_back() -> None:
    app, made = tracked_app(lambda: iter([b"x"] * 50))
    reads = asyncio.Event()
    exchange = Exchange(client_reads=reads)
    adapter = WSGIToASGI(app, max_chunks_in_flight=2)
    task = asyncio.ensure_future(exchange.run(adapter, http_scope()))
    await wait_until(lambda: bool(made) and made[0].produced >= 1)
    for delivered in range(10):
        await asyncio.sleep(0.02)
        # the chunk being sent, at most two waiting, and one the app is producing
        assert made[0].produced <= delivered + 4
        reads.set()
        await asyncio.sleep(0)
    while not task.done():
        reads.set()
        await asyncio.sleep(0.001)
    await task
    assert exchange.body == b"x" * 50


# --- the file wrapper and pathsend ------------------------------------------------


def file_app(path: Path, environ_seen: list[Environ]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        environ_seen.append(environ)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](path.open("rb"), 4096)

    return app


async def test_file_responses_are_read_through_when_the_server_cannot_send_paths(
    tmp_path: Path,
) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(bytes(range(256)) * 100)
    exchange = await request(WSGIToASGI(file_app(target, [])))
    assert exchange.body == target.read_bytes()
    assert not any(m["type"] == "http.response.pathsend" for m in exchange.messages)


async def test_file_responses_go_by_path_when_the_server_offers_pathsend(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    target.write_bytes(b"z" * 10000)
    exchange = await request(
        WSGIToASGI(file_app(target, [])), extensions={"http.response.pathsend": {}}
    )
    assert exchange.status == 200
    assert exchange.messages[1:] == [{"type": "http.response.pathsend", "path": str(target)}]


# --- the thread pool ------------------------------------------------------------------


def blocking_app(gate: threading.Event, started: threading.Semaphore) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        started.release()
        gate.wait(5)
        start_response("200 OK", TEXT)
        return [b"done"]

    return app


async def test_a_saturated_pool_without_queue_answers_503_with_retry_after() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    adapter = WSGIToASGI(
        blocking_app(gate, started), pool=ThreadPool(1, max_queue=0, retry_after=7)
    )
    first = asyncio.ensure_future(request(adapter))
    await asyncio.to_thread(started.acquire, True, 5)
    second = await request(adapter)
    assert second.status == 503
    assert second.header(b"retry-after") == b"7"
    gate.set()
    assert (await first).status == 200


async def test_a_saturated_pool_queues_up_to_max_queue_then_answers_503() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    adapter = WSGIToASGI(blocking_app(gate, started), pool=ThreadPool(1, max_queue=1))
    first = asyncio.ensure_future(request(adapter))
    await asyncio.to_thread(started.acquire, True, 5)
    queued = asyncio.ensure_future(request(adapter))
    await asyncio.sleep(0.05)
    rejected = await request(adapter)
    assert rejected.status == 503
    gate.set()
    assert [(await first).status, (await queued).status] == [200, 200]


async def test_adapters_share_one_default_pool() -> None:
    assert WSGIToASGI(hello).pool is WSGIToASGI(hello).pool


def test_the_pool_starts_no_thread_until_work_arrives() -> None:
    pool = ThreadPool(4)
    assert pool.threads == 0
    done = threading.Event()
    assert pool.submit(done.set)
    assert done.wait(5)
    assert pool.threads == 1
    pool.shutdown()


# --- lifespan, websockets and other scopes ------------------------------------------


async def test_lifespan_runs_startup_and_shutdown_hooks() -> None:
    calls: list[str] = []

    async def async_hook() -> None:
        calls.append("async-startup")

    adapter = WSGIToASGI(
        hello,
        on_startup=[lambda: calls.append("sync-startup"), async_hook],
        on_shutdown=[lambda: calls.append("shutdown")],
    )
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await adapter({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert calls == ["sync-startup", "async-startup", "shutdown"]
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_a_failing_startup_hook_reports_startup_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    with caplog.at_level(logging.ERROR):
        await WSGIToASGI(hello, on_startup=[broken])({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.failed", "message": "RuntimeError('no database')"}]
    assert "lifespan startup hook failed" in caplog.text


async def test_websocket_connections_are_refused_cleanly() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await WSGIToASGI(hello)({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_unknown_scope_types_raise() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match="cannot serve ASGI scope type 'telepathy'"):
        await WSGIToASGI(hello)({"type": "telepathy"}, receive, send)


def test_options_are_validated_at_construction() -> None:
    with pytest.raises(TypeError):
        WSGIToASGI("not an app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_body_size"):
        WSGIToASGI(hello, max_body_size=-1)
    with pytest.raises(ValueError, match="max_workers"):
        ThreadPool(0)
    with pytest.raises(ValueError, match="max_chunks_in_flight"):
        WSGIToASGI(hello, max_chunks_in_flight=0)
    with pytest.raises(TypeError, match="on_startup"):
        WSGIToASGI(hello, on_startup=["nope"])  # type: ignore[list-item]


async def test_a_disconnect_is_noticed_even_when_the_app_never_read_the_body() -> None:
    pool = ThreadPool(2)
    app, made = tracked_app(endless)
    exchange = Exchange(body_chunks=[b"unread", b"still unread", b"more"])
    scope = http_scope(method="POST")
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app, pool=pool), scope))
    await asyncio.wait_for(exchange.body_sent.wait(), 5)
    exchange.disconnect()
    await asyncio.wait_for(task, 5)
    await wait_until(lambda: pool.pending == 0, 2)
    assert_closed_once_in_its_thread(made[0])


async def test_an_app_can_stream_its_response_while_reading_the_body() -> None:
    def echo(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        stream = environ["wsgi.input"]
        while line := stream.readline():
            time.sleep(0.02)  # slow enough that the stream is being watched
            yield line.upper()

    chunks = [b"one\n", b"two\n", b"three\n", b"four\n"]
    exchange = await request(WSGIToASGI(echo), method="POST", body=chunks)
    assert exchange.body == b"ONE\nTWO\nTHREE\nFOUR\n"
    assert exchange.complete


async def test_body_nobody_reads_is_stashed_only_up_to_a_bound() -> None:
    gate = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for _ in range(300):
            yield b"."
            time.sleep(0.001)
        gate.wait(5)

    chunk = b"u" * 65536
    exchange = Exchange(body_chunks=[chunk] * 1000)  # 64 MiB nobody reads
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope(method="POST")))
    await wait_until(lambda: len(exchange.body) >= 300, 10)
    # the stash limit plus the message that crossed it, and the first one
    assert exchange.receive_calls <= _STASH_LIMIT // len(chunk) + 3
    gate.set()
    await task


async def test_an_upload_is_read_one_step_ahead_of_the_app_but_no_further() -> None:
    seen: list[int] = []
    exchange = Exchange(body_chunks=[b"x" * 65536] * 40)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        stream.read(65536)  # the first message, received before the app ran
        stream.read(65536)  # the first pull starts the read-ahead
        time.sleep(0.2)
        seen.append(exchange.receive_calls)
        total = 2 * 65536 + len(stream.read())
        start_response("200 OK", TEXT)
        return [str(total).encode()]

    await exchange.run(WSGIToASGI(app), http_scope(method="POST"))
    assert exchange.body == str(40 * 65536).encode()
    # read ahead while the app slept, up to the stash limit and the message crossing it
    assert 2 + 1 < seen[0] <= 2 + _STASH_LIMIT // 65536 + 1


async def test_a_streaming_answer_to_expect_100_continue_never_asks_for_the_body() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for _ in range(5):
            time.sleep(0.02)
            yield b"tick "

    exchange = Exchange(body_chunks=[b"big body"])
    scope = http_scope(
        method="POST", headers=[(b"expect", b"100-continue"), (b"content-length", b"8")]
    )
    await exchange.run(WSGIToASGI(app), scope)
    assert exchange.body == b"tick " * 5
    assert exchange.receive_calls == 0


@pytest.mark.parametrize("window", [1, 8])
async def test_the_backpressure_window_is_configurable(window: int) -> None:
    app, made = tracked_app(lambda: iter([b"x"] * 60))
    reads = asyncio.Event()
    exchange = Exchange(client_reads=reads)
    adapter = WSGIToASGI(app, max_chunks_in_flight=window)
    task = asyncio.ensure_future(exchange.run(adapter, http_scope()))
    await wait_until(lambda: bool(made) and made[0].produced >= 1)
    await asyncio.sleep(0.1)
    # the chunk the client is holding up, plus the window
    assert made[0].produced == window + 1
    while not task.done():
        reads.set()
        await asyncio.sleep(0.001)
    await task
    assert exchange.body == b"x" * 60


async def test_big_chunks_stop_the_app_at_4_mib_in_flight_whatever_the_window() -> None:
    chunk = b"x" * (2 * 1024 * 1024 + 1)  # two make more than 4 MiB
    app, made = tracked_app(lambda: iter([chunk] * 6))
    reads = asyncio.Event()
    exchange = Exchange(client_reads=reads)
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope()))
    await wait_until(lambda: bool(made) and made[0].produced >= 1)
    await asyncio.sleep(0.1)
    # the chunk the client is holding up, plus one: the default window of 64 is not reached
    assert made[0].produced == 2
    while not task.done():
        reads.set()
        await asyncio.sleep(0.001)
    await task
    assert exchange.body == chunk * 6


async def test_the_default_window_is_64_small_chunks() -> None:
    app, made = tracked_app(lambda: iter([b"x" * 1024] * 100))
    reads = asyncio.Event()
    exchange = Exchange(client_reads=reads)
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app), http_scope()))
    await wait_until(lambda: bool(made) and made[0].produced >= 1)
    await asyncio.sleep(0.1)
    assert made[0].produced == 64 + 1
    while not task.done():
        reads.set()
        await asyncio.sleep(0.001)
    await task
    assert exchange.body == b"x" * 1024 * 100


async def test_a_held_back_app_resumes_only_once_half_the_window_has_gone_out() -> None:
    # Resuming at the first free slot would cost a thread hand-off per chunk or two.
    first_sent = threading.Event()
    made: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for index in range(20):
            made.append(index)
            yield b"x"
            if index == 0:
                first_sent.wait(5)  # the pump's first batch ends with this chunk

    reads = asyncio.Event()
    exchange = Exchange(client_reads=reads)
    task = asyncio.ensure_future(
        exchange.run(WSGIToASGI(app, max_chunks_in_flight=4), http_scope())
    )
    await wait_until(lambda: len(made) >= 1)
    await asyncio.sleep(0.05)  # the pump is in send() with the first chunk
    first_sent.set()
    await wait_until(lambda: len(made) >= 5)
    await asyncio.sleep(0.05)
    assert len(made) == 5  # the chunk being sent and the window of 4
    reads.set()  # the first chunk goes out: 4 still unsent, more than half of 4
    await asyncio.sleep(0.1)
    assert len(made) == 5
    for _ in range(4):  # the next batch goes out: the app resumes
        reads.set()
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(made) > 5)
    while not task.done():
        reads.set()
        await asyncio.sleep(0.001)
    await task
    assert exchange.body == b"x" * 20


# -- lenient where every server is (issue 11) --------------------------------------------


async def test_headers_as_lists_and_exc_info_by_keyword_are_accepted() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [["X-Colour", "Blue"]])  # type: ignore[list-item]
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response(
                "503 Service Unavailable",
                [["Content-Type", "text/plain"], ["Content-Length", "4"]],  # type: ignore[list-item]
                exc_info=sys.exc_info(),
            )
        return [b"busy"]

    exchange = await request(WSGIToASGI(app))
    assert exchange.status == 503
    assert exchange.headers == [(b"content-type", b"text/plain"), (b"content-length", b"4")]
    assert exchange.body == b"busy"


async def test_an_escaped_slash_survives_a_round_trip_through_both_adapters() -> None:
    # uvicorn -> WSGIToASGI -> ASGIToWSGI -> ASGI app: the inner app sees the raw path
    # the client sent, because WSGIToASGI passes it on as RAW_URI.
    from bridge import ASGIToWSGI

    seen: list[tuple[str, bytes, bytes]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["raw_path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    round_trip = ASGIToWSGI(inner, lifespan="off")
    try:
        exchange = await request(
            WSGIToASGI(round_trip), "/files/a%2Fb", raw_path=b"/files/a%2Fb", query_string=b"v=1"
        )
    finally:
        await asyncio.to_thread(round_trip.close)  # it closes loops: not from this one
    assert exchange.status == 204
    assert seen == [("/files/a%2Fb", b"/files/a%2Fb", b"v=1")]


async def test_headers_refused_in_the_worker_answer_431_without_reading_the_body() -> None:
    # The worker builds the environ: a refused header is answered from there, and with
    # "Expect: 100-continue" nothing asks the client for its body first.
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        return hello(environ, start_response)

    async def receive() -> dict[str, Any]:
        raise AssertionError("receive() must not be called")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"expect", b"100-continue"), *[(b"x-a", b"%d" % i) for i in range(3)]]
    pool = ThreadPool(1, name="refused-in-worker")
    try:
        adapter = WSGIToASGI(app, pool=pool, max_header_repeats=2)
        await asyncio.wait_for(
            adapter(http_scope(method="POST", headers=headers), receive, send), 5
        )
    finally:
        pool.shutdown()
    assert called == []
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 431
    assert sent[1] == {
        "type": "http.response.body",
        "body": b"Header 'x-a' repeated too often",
        "more_body": False,
    }
