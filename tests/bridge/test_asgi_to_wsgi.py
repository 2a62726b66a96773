"""In-process tests for ``bridge.ASGIToWSGI``: WSGI calls made directly, no sockets.

Every request goes through ``wsgiref.validate.validator`` so the stdlib also checks that
the adapter keeps PEP 3333 (start_response before the body, bytes chunks, close()).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import io
import logging
import os
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper, setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest

from bridge._a2w_exchange import MAX_BUFFERED_BYTES, MAX_BUFFERED_CHUNKS, Exchange
from bridge._a2w_runners import SharedLink, ThreadLink
from bridge._asgi_to_wsgi import ASGIToWSGI, LifespanStartupFailed
from bridge._http import ClientDisconnected, InvalidResponse
from bridge._types import Message, Receive, Scope, Send

LOGGER = "bridge.asgi_to_wsgi"


@dataclass
class Response:
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def make_environ(
    path: str = "/", method: str = "GET", body: bytes = b"", **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
    }
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    return environ


def call(app: Any, environ: dict[str, Any] | None = None, *, validate: bool = True) -> Response:
    """Make one WSGI request and drain the response, closing it as a server would."""
    response = Response()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        response.status = status
        response.headers = headers
        return response.chunks.append

    wsgi_app = validator(app) if validate else app
    result = wsgi_app(environ or make_environ(), start_response)
    try:
        for chunk in result:
            response.chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return response


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def start(
    send: Send, status: int = 200, headers: Any = ((b"content-type", b"text/plain"),)
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


# --- responses --------------------------------------------------------------------------


def test_hello_app_gives_status_headers_and_body(make: Any, loop_mode: str) -> None:
    response = call(make(hello, loop_mode=loop_mode))
    assert response.status == "200 OK"
    assert response.headers == [("content-type", "text/plain"), ("content-length", "5")]
    assert response.chunks == [b"hello"]


def test_a_served_request_leaves_nothing_for_the_cycle_collector(make: Any) -> None:
    # Thread mode: reference counting frees each request's exchange, link and scope as
    # soon as the response is closed; no cycle waits for a gc pass (a gen-0 pass every
    # few hundred requests, and the older generations' passes, would cost every request).
    # Only this test's own objects are looked for: other tests leave their own garbage.
    scopes: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(id(scope))
        await hello(scope, receive, send)

    adapter = make(app)
    call(adapter, validate=False)  # warm-up: this thread's loop, its spare task, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        bodies = [call(adapter, validate=False).body for _ in range(50)]
        gc.collect()
        ours = set(scopes[1:])
        codes = (app.__code__, Exchange.run.__code__)
        left = [
            type(thing).__name__
            for thing in gc.garbage
            if isinstance(thing, (Exchange, ThreadLink))
            or (isinstance(thing, types.CoroutineType) and thing.cr_code in codes)
            or (type(thing) is dict and id(thing) in ours)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert bodies == [b"hello"] * 50
    assert left == []


def test_repeated_response_headers_are_preserved_in_order(make: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(
            send,
            200,
            [(b"set-cookie", b"a=1"), (b"content-type", b"text/plain"), (b"set-cookie", b"b=2")],
        )
        await send({"type": "http.response.body", "body": b""})

    assert call(make(app)).headers == [
        ("set-cookie", "a=1"),
        ("content-type", "text/plain"),
        ("set-cookie", "b=2"),
    ]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (201, "201 Created"),
        (418, "418 I'm a Teapot"),
        (299, "299 Success"),
        (499, "499 Client Error"),
    ],
)
def test_status_line_has_the_right_phrase_even_for_unknown_codes(
    make: Any, code: int, status: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send, code)
        await send({"type": "http.response.body"})

    assert call(make(app)).status == status


def test_body_chunks_are_yielded_as_the_app_sends_them(make: Any, loop_mode: str) -> None:
    sent: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        for part in ("a", "b", "c"):
            sent.append(part)
            await send({"type": "http.response.body", "body": part.encode(), "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body"})

    seen: list[tuple[bytes, list[str]]] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    result = validator(make(app, loop_mode=loop_mode))(make_environ(), start_response)
    try:
        for chunk in result:
            seen.append((chunk, list(sent)))
    finally:
        result.close()
    assert seen == [(b"a", ["a"]), (b"b", ["a", "b"]), (b"c", ["a", "b", "c"])]


@pytest.mark.parametrize("attempt", range(3))
def test_a_fast_producer_is_paused_until_the_server_takes_chunks(
    make: Any, loop_mode: str, attempt: int
) -> None:
    sent = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await start(send)
        for _ in range(1000):
            sent += 1
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body"})

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    try:
        assert next(iter(result)) == b"x"
        assert sent <= MAX_BUFFERED_CHUNKS + 4  # bounded buffer, not the whole response
        assert b"".join(result) == b"x" * 999
    finally:
        result.close()
    assert sent == 1000


def test_a_paused_producer_resumes_only_once_the_server_has_taken_every_chunk(
    make: Any, loop_mode: str
) -> None:
    # In shared mode each resume is a hand-off between threads: one per window, not one
    # per half-window (the app refills while the server writes the last chunk).
    sent = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await start(send)
        for _ in range(MAX_BUFFERED_CHUNKS * 3):
            sent += 1
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body"})

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    try:
        chunks = iter(result)
        for _ in range(MAX_BUFFERED_CHUNKS - 1):
            assert next(chunks) == b"x"
        time.sleep(0.05)  # time enough for an app resumed early to send more
        assert sent == MAX_BUFFERED_CHUNKS  # one chunk is still queued
        assert b"".join(chunks) == b"x" * (MAX_BUFFERED_CHUNKS * 2 + 1)
    finally:
        result.close()
    assert sent == MAX_BUFFERED_CHUNKS * 3


def test_a_producer_of_big_chunks_is_paused_by_bytes_not_chunk_count(
    make: Any, loop_mode: str
) -> None:
    sent = 0
    chunk = bytes(MAX_BUFFERED_BYTES // 4)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await start(send)
        for _ in range(40):
            sent += 1
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body"})

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    try:
        assert next(iter(result)) == chunk
        assert sent <= 4 + 1  # MAX_BUFFERED_BYTES held back, not 40 chunks' worth
        assert sum(len(data) for data in result) == len(chunk) * 39
    finally:
        result.close()
    assert sent == 40


def test_invalid_header_value_with_crlf_never_reaches_the_server(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await start(send, 200, [(b"x-bad", b"a\r\nset-cookie: evil=1")])
        except ValueError as exc:
            raised.append(exc)
            # Even an app that swallows the error cannot send a response any more.
            await start(send, 200)

    heads: list[str] = []
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(RuntimeError) as info:
        make(app, loop_mode=loop_mode)(make_environ(), lambda status, *_: heads.append(status))
    assert heads == []  # the server answers 500 itself
    assert "unexpected ASGI message 'http.response.start'" in str(info.value)
    assert isinstance(info.value.__context__, InvalidResponse)
    assert "x-bad" in str(info.value.__context__)
    assert len(raised) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_hop_by_hop_response_headers_never_reach_the_wsgi_server(make: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send, 200, [(b"connection", b"close"), (b"content-type", b"text/plain")])
        await send({"type": "http.response.body", "body": b"ok"})

    # validator() itself asserts that no hop-by-hop header is passed to start_response.
    assert call(make(app)).headers == [("content-type", "text/plain")]


def test_undecodable_path_gives_400_without_calling_the_app(make: Any) -> None:
    called = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    response = call(make(app), make_environ(path="/caf\xe9"))
    assert response.status == "400 Bad Request"
    assert called == []


def test_scope_reaches_the_app_with_path_including_root_path(make: Any) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await hello(scope, receive, send)

    environ = make_environ(path="/items/caf\xc3\xa9", SCRIPT_NAME="/app", QUERY_STRING="q=1")
    call(make(app), environ)
    scope = scopes[0]
    assert scope["path"] == "/app/items/café"
    assert scope["root_path"] == "/app"
    assert scope["raw_path"] == b"/app/items/caf%C3%A9"
    assert scope["query_string"] == b"q=1"
    assert scope["extensions"] == {"http.response.pathsend": {}}
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}


# --- request bodies ---------------------------------------------------------------------


def recorder() -> tuple[list[Message], Callable[..., Any]]:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        await start(send)
        await send({"type": "http.response.body", "body": body})

    return messages, app


def test_request_body_arrives_in_bounded_chunks(make: Any, loop_mode: str) -> None:
    messages, app = recorder()
    response = call(
        make(app, loop_mode=loop_mode, chunk_size=4),
        make_environ(method="POST", body=b"0123456789"),
    )
    assert response.body == b"0123456789"
    assert messages == [
        {"type": "http.request", "body": b"0123", "more_body": True},
        {"type": "http.request", "body": b"4567", "more_body": True},
        {"type": "http.request", "body": b"89", "more_body": False},
    ]


@pytest.mark.parametrize(
    ("loop_mode", "reads_at"),
    [("thread", [0, 1, 2, 3, 4]), ("shared", [0, 0, 0, 3, 3])],
    ids=["thread-reads-on-demand", "shared-reads-ahead-per-hand-off"],
)
def test_request_body_is_read_ahead_within_a_byte_bound_only_across_threads(
    make: Any, monkeypatch: pytest.MonkeyPatch, loop_mode: str, reads_at: list[int]
) -> None:
    monkeypatch.setattr(SharedLink, "read_ahead", 10)
    received: list[Message] = []
    seen_at: list[int] = []  # how many messages the app had when each read() ran

    class Input(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            seen_at.append(len(received))
            return super().read(size)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            received.append(await receive())
            if not received[-1].get("more_body"):
                break
        await start(send)
        await send({"type": "http.response.body", "body": b"".join(m["body"] for m in received)})

    environ = make_environ(method="POST", body=b"0123456789abcdefghij")
    environ["wsgi.input"] = Input(b"0123456789abcdefghij")
    response = call(make(app, loop_mode=loop_mode, chunk_size=4), environ)
    assert response.body == b"0123456789abcdefghij"
    assert [m["body"] for m in received] == [b"0123", b"4567", b"89ab", b"cdef", b"ghij"]
    assert [m["more_body"] for m in received] == [True, True, True, True, False]
    # Shared mode: a hand-off reads the chunk asked for, then on while under 10 bytes more.
    assert seen_at == reads_at


def test_a_client_gone_during_read_ahead_is_reported_after_the_chunks_read(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SharedLink, "read_ahead", 100)
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(3):
            messages.append(await receive())
        await start(send)
        await send({"type": "http.response.body"})

    environ = make_environ(method="POST", body=b"abcdef")
    environ["CONTENT_LENGTH"] = "10"
    call(make(app, loop_mode="shared", chunk_size=3), environ, validate=False)
    assert messages == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"def", "more_body": True},
        {"type": "http.disconnect"},
    ]


def test_chunked_upload_without_content_length_is_delivered_fully(
    make: Any, loop_mode: str
) -> None:
    messages, app = recorder()
    environ = make_environ(method="POST", **{"wsgi.input_terminated": True})
    environ["wsgi.input"] = io.BytesIO(b"x" * 10)
    response = call(make(app, loop_mode=loop_mode, chunk_size=4), environ)
    assert response.body == b"x" * 10
    assert [m["more_body"] for m in messages] == [True, True, True, False]


def test_body_without_length_or_terminated_input_is_not_read(make: Any) -> None:
    messages, app = recorder()
    environ = make_environ(method="POST")
    environ["wsgi.input"] = io.BytesIO(b"must not be read")
    call(make(app), environ)
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


def test_truncated_body_is_reported_as_disconnect(make: Any) -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        messages.append(await receive())
        await start(send)
        await send({"type": "http.response.body"})

    environ = make_environ(method="POST", body=b"abc")
    environ["CONTENT_LENGTH"] = "10"
    call(make(app, chunk_size=3), environ, validate=False)
    assert messages == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.disconnect"},
    ]


def test_receive_after_the_response_returns_disconnect_at_once(make: Any, loop_mode: str) -> None:
    after: list[Message] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await hello(scope, receive, send)
        after.append(await asyncio.wait_for(receive(), 1))
        after.append(await asyncio.wait_for(receive(), 1))
        done.set()

    call(make(app, loop_mode=loop_mode))
    assert done.wait(5)
    assert after == [{"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_listening_for_disconnect_while_responding_waits_for_the_response(
    make: Any, loop_mode: str
) -> None:
    events: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

        async def listen() -> None:
            message = await receive()
            events.append(message["type"])

        listener = asyncio.create_task(listen())
        await start(send)
        await asyncio.sleep(0.02)
        events.append("body")
        await send({"type": "http.response.body", "body": b"done"})
        await listener
        done.set()

    assert call(make(app, loop_mode=loop_mode)).body == b"done"
    assert done.wait(5)
    assert events == ["body", "http.disconnect"]


# --- failures ---------------------------------------------------------------------------


def test_exception_before_the_response_starts_reaches_the_server_unlogged(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    boom = ZeroDivisionError("boom")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise boom

    heads: list[str] = []
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(ZeroDivisionError) as info:
        make(app, loop_mode=loop_mode)(
            make_environ(path="/fail"), lambda status, *_: heads.append(status)
        )
    assert info.value is boom  # the original exception, for the server to answer 500 and log
    assert heads == []
    assert [r for r in caplog.records if r.name == LOGGER] == []  # the server logs it, once


def test_exception_before_the_response_reaches_an_enclosing_wsgi_app(
    make: Any, loop_mode: str
) -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client
    from werkzeug.wrappers import Response as WerkzeugResponse

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("from the ASGI app")

    outer = DispatcherMiddleware(WerkzeugResponse("root"), {"/api": make(app, loop_mode=loop_mode)})
    with pytest.raises(LookupError, match="from the ASGI app"):
        Client(outer).get("/api/x")


def test_exception_after_the_response_starts_propagates_to_the_server_unlogged(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    taken = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        while not taken.is_set():  # fail only once the server has started the response
            await asyncio.sleep(0.001)
        raise KeyError("late")

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    iterator = iter(result)
    assert next(iterator) == b"part"
    taken.set()
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(KeyError, match="late"):
        next(iterator)
    result.close()
    assert [r for r in caplog.records if r.name == LOGGER] == []  # the server logs it, once


def test_app_returning_without_a_response_is_raised_to_the_server(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="returned without sending a response: GET /"):
        call(make(app, loop_mode=loop_mode))


def test_app_sending_body_before_start_is_raised_to_the_server(make: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    with pytest.raises(RuntimeError, match=r"'http\.response\.body' in response phase AWAITING"):
        call(make(app))


# --- early close, background work ---------------------------------------------------------


def test_early_close_cancels_the_app_and_leaves_no_task_behind(make: Any, loop_mode: str) -> None:
    events: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loops.append(asyncio.get_running_loop())
        await start(send)
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    assert next(iter(result)) == b"tick"
    result.close()
    assert events == ["cancelled"]
    if loop_mode == "thread":
        assert asyncio.all_tasks(loops[0]) == set()


def test_send_after_the_client_went_away_raises_client_disconnected(
    make: Any, loop_mode: str
) -> None:
    errors: list[BaseException] = []
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            # An app that cleans up by trying to send once more is told why it cannot.
            try:
                await send({"type": "http.response.body", "body": b"b"})
            except OSError as exc:
                errors.append(exc)
            assert await receive() == {"type": "http.disconnect"}
            finished.set()
            raise

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    assert next(iter(result)) == b"a"
    result.close()
    assert finished.wait(5)
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)


def test_client_disconnected_escaping_the_app_is_not_logged_as_an_error(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        with contextlib.suppress(asyncio.CancelledError):  # swallows it, streams on
            await asyncio.sleep(30)
        try:
            await send({"type": "http.response.body", "body": b"b", "more_body": True})
        finally:
            finished.set()

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    assert next(iter(result)) == b"a"
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result.close()
        assert finished.wait(5)
        time.sleep(0.05)  # shared mode: let the loop thread finish logging
    assert [r.levelname for r in caplog.records if r.name == LOGGER] == ["DEBUG"]
    assert "client went away" in caplog.text


def test_task_ignoring_cancellation_is_abandoned_with_an_error_log(
    make: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("bridge._a2w_exchange._CANCEL_GRACE", 0.1)
    cancellations = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancellations
        await start(send)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations > 1:  # gives in when the adapter closes its loop
                    raise

    adapter = make(app)
    result = adapter(make_environ(), lambda *args: None)
    assert next(iter(result)) == b"a"
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        began = time.monotonic()
        result.close()
    assert time.monotonic() - began < 2
    assert "ignored cancellation" in caplog.text
    adapter.close()
    assert cancellations == 2


def test_background_work_runs_to_completion_in_close_after_the_response(make: Any) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        events.append("responded")
        await asyncio.sleep(0.05)
        events.append("background done")

    result = make(app)(make_environ(), lambda *args: None)
    assert list(result) == [b"hello"]
    assert events == ["responded"]
    result.close()
    assert events == ["responded", "background done"]


def test_background_work_in_shared_mode_finishes_on_the_loop(make: Any) -> None:
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        await asyncio.sleep(0.05)
        done.set()

    assert call(make(app, loop_mode="shared")).body == b"hello"
    assert done.wait(5)


def test_shared_mode_runs_every_step_of_the_app_on_the_loop_thread(make: Any) -> None:
    # The shared loop's promise, as under uvicorn: all of the app's async code runs in
    # one thread. Thread-bound objects made there (a sqlite3 connection, a greenlet such
    # as SQLAlchemy's asyncio extension starts in one step and resumes in the next) rely
    # on it, so no step may run in the calling WSGI thread, even while the loop idles.
    seen: list[tuple[str, int]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(("first step", threading.get_ident()))
        await receive()
        seen.append(("after receive", threading.get_ident()))
        await asyncio.sleep(0)
        seen.append(("after a real wait", threading.get_ident()))
        await hello(scope, receive, send)

    async def one_step(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(("one-step app", threading.get_ident()))
        await hello(scope, receive, send)

    for asgi_app, steps in ((app, 3), (one_step, 1)):
        wrapped = make(asgi_app, loop_mode="shared")
        seen.clear()
        for _ in range(5):  # one at a time: the loop idles whenever a request starts
            assert call(wrapped).body == b"hello"
        others: list[bytes] = []

        def serve(wrapped: Any = wrapped, others: list[bytes] = others) -> None:
            others.append(call(wrapped).body)

        threads = [threading.Thread(target=serve) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert others == [b"hello"] * 4
        assert len(seen) == steps * 9
        loop_threads = {ident for _, ident in seen}
        assert len(loop_threads) == 1, seen
        assert threading.get_ident() not in loop_threads


def test_background_work_is_cancelled_after_background_timeout(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        began = time.monotonic()
        assert call(make(app, loop_mode=loop_mode, background_timeout=0.1)).body == b"hello"
        assert cancelled.wait(5)
    assert time.monotonic() - began < 3
    assert "exceeded background_timeout=0.1s" in caplog.text


def test_background_exception_is_logged(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await hello(scope, receive, send)
        await asyncio.sleep(0)
        raise RuntimeError("in background")

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert call(make(app)).body == b"hello"
    assert "after its response ended" in caplog.text


def test_a_server_refusing_the_head_leaves_no_running_task(make: Any, loop_mode: str) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        raise ValueError("server says no")

    with pytest.raises(ValueError, match="server says no"):
        make(app, loop_mode=loop_mode)(make_environ(), start_response)
    assert cancelled.wait(5)


def test_app_returning_mid_response_aborts_the_response(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    taken = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        while not taken.is_set():  # return only once the server has started the response
            await asyncio.sleep(0.001)

    result = make(app, loop_mode=loop_mode)(make_environ(), lambda *args: None)
    iterator = iter(result)
    assert next(iterator) == b"half"
    taken.set()
    with (
        caplog.at_level(logging.ERROR, logger=LOGGER),
        pytest.raises(RuntimeError, match="without completing the response"),
    ):
        next(iterator)
    result.close()


def test_second_response_start_is_an_app_error(make: Any) -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        try:
            await start(send)
        except RuntimeError as exc:
            errors.append(exc)
        await send({"type": "http.response.body", "body": b"ok"})

    assert call(make(app)).body == b"ok"
    assert "unexpected ASGI message 'http.response.start'" in str(errors[0])


def test_unreadable_wsgi_input_is_reported_as_disconnect(make: Any) -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("peer reset")

    messages, app = recorder()
    environ = make_environ(method="POST", body=b"xyz")
    environ["wsgi.input"] = Broken()
    call(make(app), environ, validate=False)
    assert messages == [{"type": "http.disconnect"}]


def test_invalid_content_length_means_no_body(make: Any) -> None:
    messages, app = recorder()
    environ = make_environ(method="POST", body=b"xyz")
    environ["CONTENT_LENGTH"] = "abc"
    call(make(app), environ, validate=False)
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


# --- pathsend ---------------------------------------------------------------------------


def pathsend_app(path: Path) -> Callable[..., Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await start(send, 200, [(b"content-type", b"application/octet-stream")])
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


def test_pathsend_is_served_through_wsgi_file_wrapper(make: Any, tmp_path: Path) -> None:
    file = tmp_path / "data.bin"
    file.write_bytes(b"0123456789" * 10_000)
    environ = make_environ(**{"wsgi.file_wrapper": FileWrapper})
    result = make(pathsend_app(file))(environ, lambda *args: None)
    assert isinstance(result, FileWrapper)
    try:
        assert b"".join(result) == file.read_bytes()
    finally:
        result.close()


def test_pathsend_without_file_wrapper_reads_the_file_in_chunks(make: Any, tmp_path: Path) -> None:
    file = tmp_path / "data.bin"
    file.write_bytes(b"abcdefghij")
    environ = make_environ()
    environ.pop("wsgi.file_wrapper", None)
    response = call(make(pathsend_app(file), chunk_size=4), environ)
    assert response.chunks == [b"abcd", b"efgh", b"ij"]


def test_pathsend_of_a_missing_file_gives_500(
    make: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = make_environ(**{"wsgi.file_wrapper": FileWrapper})
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        response = call(make(pathsend_app(tmp_path / "nope")), environ)
    assert response.status == "500 Internal Server Error"
    assert "cannot open" in caplog.text


def test_pathsend_with_a_non_str_path_is_an_app_error(make: Any) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        await send({"type": "http.response.pathsend", "path": b"/etc/hostname"})

    with pytest.raises(RuntimeError, match="needs a str path"):
        make(app)(make_environ(), lambda *args: None)


# --- lifespan ---------------------------------------------------------------------------


def lifespan_app(events: list[str], *, fail: bool = False) -> Callable[..., Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            events.append("startup")
            if fail:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["client"] = {"requests": 0}
            scope["state"]["name"] = "ready"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        state = scope["state"]
        state["client"]["requests"] += 1
        body = f"{state['name']} {state['client']['requests']} {'added' in state}"
        state["added"] = True  # must not leak into the next request's scope
        await start(send)
        await send({"type": "http.response.body", "body": body.encode()})

    return app


def test_lifespan_state_reaches_every_request_as_a_shallow_copy(make: Any, loop_mode: str) -> None:
    events: list[str] = []
    adapter = make(lifespan_app(events), loop_mode=loop_mode, lifespan="on")
    assert call(adapter).body == b"ready 1 False"
    assert call(adapter).body == b"ready 2 False"
    assert events == ["startup"]
    adapter.close()
    assert events == ["startup", "shutdown"]


def test_failed_lifespan_startup_turns_requests_into_500s(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    adapter = make(lifespan_app(events, fail=True), loop_mode=loop_mode, lifespan="auto")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert call(adapter).status == "500 Internal Server Error"
        assert call(adapter).status == "500 Internal Server Error"
    assert events == ["startup"]
    assert "lifespan startup failed" in caplog.text
    assert "no database" in caplog.text


def test_eager_start_raises_when_lifespan_startup_fails(make: Any, loop_mode: str) -> None:
    adapter = make(lifespan_app([], fail=True), loop_mode=loop_mode, lifespan="auto")
    with pytest.raises(LifespanStartupFailed, match="no database"):
        adapter.start()


def test_eager_start_runs_startup_once_before_any_request(make: Any, loop_mode: str) -> None:
    events: list[str] = []
    adapter = make(lifespan_app(events), loop_mode=loop_mode, lifespan="on")
    adapter.start()
    assert events == ["startup"]
    assert call(adapter).body == b"ready 1 False"
    assert events == ["startup"]


def test_app_without_lifespan_support_is_served_after_one_info_log(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError("only http here")
        await hello(scope, receive, send)

    adapter = make(app, loop_mode=loop_mode, lifespan="auto")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert call(adapter).body == b"hello"
        worker = threading.Thread(target=call, args=(adapter,))  # a second loop (thread mode)
        worker.start()
        worker.join()
        assert call(adapter).body == b"hello"
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.INFO
    assert "does not support lifespan" in record.getMessage()
    assert "ValueError: only http here" in record.getMessage()


def test_a_plain_starlette_response_is_served_under_lifespan_auto(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.responses import PlainTextResponse

    adapter = make(PlainTextResponse("hello"), loop_mode=loop_mode, lifespan="auto")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        first, second = call(adapter), call(adapter)
    assert (first.status, first.body) == ("200 OK", b"hello")
    assert (second.status, second.body) == ("200 OK", b"hello")
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.INFO
    assert "does not support lifespan" in record.getMessage()


def test_an_app_answering_every_scope_as_http_is_served_and_its_lifespan_task_cancelled(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    lifespan_cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await start(send)
        except Exception:
            if scope["type"] != "lifespan":
                raise
            try:  # an app that swallows the error and lingers is stopped, not waited for
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                lifespan_cancelled.set()
                raise
        await send({"type": "http.response.body", "body": b"raw"})

    adapter = make(app, loop_mode=loop_mode, lifespan="auto", lifespan_timeout=30)
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert call(adapter).body == b"raw"
    assert time.monotonic() - began < 10  # not lifespan_timeout
    assert lifespan_cancelled.wait(5)
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.INFO]
    assert "'http.response.start' on the lifespan scope" in caplog.text


def test_startup_raising_under_lifespan_on_is_logged_with_its_traceback(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise ConnectionRefusedError("database down")
        await hello(scope, receive, send)

    adapter = make(app, loop_mode=loop_mode, lifespan="on")
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(LifespanStartupFailed):
        adapter.start()
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionRefusedError


def test_startup_raising_under_lifespan_auto_means_unsupported(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise KeyError("no lifespan handler")
        await hello(scope, receive, send)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert call(make(app, loop_mode=loop_mode, lifespan="auto")).body == b"hello"
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.INFO
    assert "KeyError" in record.getMessage()


def test_lifespan_on_requires_support(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError("only http here")
        await hello(scope, receive, send)

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert call(make(app, lifespan="on")).status == "500 Internal Server Error"


def test_startup_that_never_completes_times_out_instead_of_hanging(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await asyncio.sleep(60)

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        adapter = make(app, lifespan="auto", lifespan_timeout=0.1)
        assert call(adapter).status == "500 Internal Server Error"
    assert "did not complete within 0.1s" in caplog.text


def test_each_thread_runs_startup_on_its_own_loop_in_thread_mode(make: Any) -> None:
    events: list[str] = []
    adapter = make(lifespan_app(events), lifespan="on")
    call(adapter)
    worker = threading.Thread(target=call, args=(adapter,))
    worker.start()
    worker.join()
    assert events == ["startup", "startup"]
    adapter.close()
    assert sorted(events) == ["shutdown", "shutdown", "startup", "startup"]


def test_shared_mode_runs_startup_once_for_all_threads(make: Any) -> None:
    events: list[str] = []
    adapter = make(lifespan_app(events), loop_mode="shared", lifespan="on")
    workers = [threading.Thread(target=call, args=(adapter,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert events == ["startup"]
    assert call(adapter).body == b"ready 5 False"


def test_lifespan_shutdown_failure_is_logged(
    make: Any, loop_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "pool stuck"})
            return
        await hello(scope, receive, send)

    adapter = make(app, loop_mode=loop_mode, lifespan="on")
    call(adapter)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        adapter.close()
    assert "lifespan shutdown failed: pool stuck" in caplog.text


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="loop_mode"):
        ASGIToWSGI(hello, loop_mode="process")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lifespan"):
        ASGIToWSGI(hello, lifespan="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        ASGIToWSGI(hello, chunk_size=0)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("chunk_size", "64KB"),
        ("chunk_size", 65536.0),
        ("chunk_size", True),
        ("lifespan_timeout", "60"),
        ("background_timeout", None),
    ],
)
def test_an_option_of_the_wrong_type_is_a_type_error_naming_the_fix(
    option: str, value: Any
) -> None:
    with pytest.raises(TypeError) as info:
        ASGIToWSGI(hello, **{option: value})
    message = str(info.value)
    assert message.startswith(f"ASGIToWSGI({option}={value!r}): expected ")
    assert f"got {type(value).__name__}; pass " in message
    assert f"e.g. {option}=" in message


def test_a_flask_app_is_refused_at_construction_with_the_fix() -> None:
    from flask import Flask

    flask_app = Flask("misused")
    with pytest.raises(TypeError) as info:
        ASGIToWSGI(flask_app)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("ASGIToWSGI() needs an ASGI app (scope, receive, send), got ")
    assert "<Flask 'misused'> (a flask.app.Flask), a WSGI app" in message
    assert "serve it directly" in message
    assert "bridge.to_wsgi(app)" in message


def test_a_plain_wsgi_function_is_refused_at_construction() -> None:
    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(TypeError, match="a WSGI app: it is already a WSGI app"):
        ASGIToWSGI(wsgi)  # type: ignore[arg-type]


def test_an_adapter_wrapped_in_its_own_kind_is_refused(make: Any) -> None:
    inner = make(hello)
    with pytest.raises(TypeError, match=r"already a ASGIToWSGI; pass the ASGI app itself"):
        ASGIToWSGI(inner)  # type: ignore[arg-type]


def test_a_non_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="got 'app' \\(a str\\), which is not callable"):
        ASGIToWSGI("app")  # type: ignore[arg-type]


def test_start_after_close_is_an_error(make: Any) -> None:
    adapter = make(hello)
    adapter.close()
    with pytest.raises(RuntimeError, match="after close"):
        adapter.start()


def test_calling_from_a_thread_running_an_event_loop_is_an_error(make: Any) -> None:
    adapter = make(hello)
    call(adapter)  # this thread's loop and lifespan exist

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError, match="running an event loop"):
            adapter(make_environ(), lambda *args: None)

    asyncio.run(inside_a_loop())


@pytest.mark.parametrize("lifespan", ["auto", "off"])
def test_a_first_call_from_a_running_loop_is_our_error_and_leaves_no_coroutine(
    lifespan: str,
) -> None:
    adapter = ASGIToWSGI(hello, lifespan=lifespan)  # type: ignore[arg-type]

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError) as info:
            adapter(make_environ(), lambda *args: None)
        assert "loop_mode='shared'" in str(info.value)
        assert "running an event loop" in str(info.value)
        with pytest.raises(RuntimeError, match="loop_mode='shared'"):
            adapter.start()

    try:
        # filterwarnings=error: a "coroutine ... was never awaited" RuntimeWarning, which
        # asyncio reports when the coroutine is collected, would fail this test.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            asyncio.run(inside_a_loop())
            gc.collect()
    finally:
        adapter.close()


def test_requests_after_close_get_503(make: Any) -> None:
    adapter = make(hello)
    adapter.close()
    logging.getLogger(LOGGER).disabled = True
    try:
        assert call(adapter).status == "503 Service Unavailable"
    finally:
        logging.getLogger(LOGGER).disabled = False


def test_context_manager_closes_the_adapter() -> None:
    events: list[str] = []
    with ASGIToWSGI(lifespan_app(events), lifespan="on") as adapter:
        call(adapter)
    assert events == ["startup", "shutdown"]


# --- loops and threads --------------------------------------------------------------------


def test_nothing_is_started_at_construction() -> None:
    threads = threading.active_count()
    adapter = ASGIToWSGI(hello, loop_mode="shared")
    assert threading.active_count() == threads
    assert "asgi-to-wsgi-loop" not in [thread.name for thread in threading.enumerate()]
    call(adapter)  # the first request starts the loop thread
    assert "asgi-to-wsgi-loop" in [thread.name for thread in threading.enumerate()]
    adapter.close()


def test_requests_in_parallel_threads_overlap(make: Any, loop_mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.2)
        await hello(scope, receive, send)

    adapter = make(app, loop_mode=loop_mode)
    call(adapter)  # warm-up: loop creation
    results: list[Response] = []
    workers = [threading.Thread(target=lambda: results.append(call(adapter))) for _ in range(6)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert time.monotonic() - began < 0.8
    assert [r.body for r in results] == [b"hello"] * 6


def test_thread_mode_reuses_one_loop_per_thread(make: Any) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loops.append(asyncio.get_running_loop())
        await hello(scope, receive, send)

    adapter = make(app)
    call(adapter)
    call(adapter)
    other = threading.Thread(target=call, args=(adapter,))
    other.start()
    other.join()
    assert loops[0] is loops[1]
    assert loops[2] is not loops[0]


def test_current_task_and_running_loop_work_on_the_fast_path(make: Any) -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(asyncio.current_task())
        seen.append(asyncio.get_running_loop())
        await hello(scope, receive, send)

    call(make(app))
    assert isinstance(seen[0], asyncio.Task)
    assert isinstance(seen[1], asyncio.AbstractEventLoop)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_a_timeout_entered_in_the_first_step_cancels_the_task_that_runs_the_app(
    make: Any, loop_mode: str
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/hello":  # finishes in its first step
            await hello(scope, receive, send)
            return
        var.set("set before the first await")
        try:
            async with asyncio.timeout(0.01):  # binds to current_task() here
                await asyncio.sleep(5)
            outcome = b"not timed out"
        except TimeoutError:
            outcome = b"timed out"
        helper = asyncio.get_running_loop().create_task(asyncio.sleep(0, var.get()))
        outcome += b" " + (await helper).encode()
        await start(send)
        await send({"type": "http.response.body", "body": outcome})

    adapter = make(app, loop_mode=loop_mode)
    for _ in range(3):  # interleaved with requests that need no task of their own
        assert call(adapter, make_environ("/hello")).body == b"hello"
        assert call(adapter).body == b"timed out set before the first await"
    assert var.get() == "unset"


def test_context_variables_do_not_leak_between_requests(make: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(var.get())
        var.set("set by a request")
        await hello(scope, receive, send)

    adapter = make(app)
    call(adapter)
    call(adapter)
    assert seen == ["unset", "unset"]
    assert var.get() == "unset"


@pytest.mark.parametrize("streamed", [False, True], ids=["one-shot", "streamed"])
def test_tasks_spawned_by_a_request_start_before_the_request_ends(
    make: Any, streamed: bool
) -> None:
    events: list[str] = []

    async def spawned() -> None:
        events.append("spawned task ran")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        asyncio.get_running_loop().create_task(spawned())
        await start(send)
        if streamed:
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"b"})

    assert call(make(app)).body == (b"ab" if streamed else b"b")
    assert events == ["spawned task ran"]


def test_tasks_outliving_their_request_are_cancelled_with_a_warning_at_close(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = threading.Event()
    spawned: set[asyncio.Task[None]] = set()

    async def forgotten() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        spawned.add(asyncio.create_task(forgotten()))
        await hello(scope, receive, send)

    adapter = make(app)
    call(adapter)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        adapter.close()
    assert cancelled.is_set()
    assert "1 task(s) outlived their request" in caplog.text


def test_thread_loops_of_exited_threads_are_closed(make: Any) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loops.append(asyncio.get_running_loop())
        await hello(scope, receive, send)

    adapter = make(app)
    worker = threading.Thread(target=call, args=(adapter,))
    worker.start()
    worker.join()
    del worker
    call(adapter)  # the next thread to ask retires the dead thread's loop
    assert loops[0].is_closed()
    assert not loops[1].is_closed()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
# Python 3.12+ warns on fork() with threads alive (the shared loop's); that is the point.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_builds_its_own_loop_and_runs_its_own_startup(
    make: Any, loop_mode: str
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    events: list[str] = []
    lifespan = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            loops.append(asyncio.get_running_loop())
        await lifespan(scope, receive, send)

    adapter = make(app, loop_mode=loop_mode, lifespan="on")
    assert call(adapter).body == b"ready 1 False"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            fresh = call(adapter).body == b"ready 1 False"  # the child's own startup state
            code = 0 if fresh and loops[1] is not loops[0] and events.count("startup") == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not loops[0].is_closed()
    assert call(adapter).body == b"ready 2 False"  # the parent is unaffected


def test_asgi2_apps_are_accepted(make: Any) -> None:
    class ASGI2App:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

        async def __call__(self, receive: Receive, send: Send) -> None:
            await hello(self.scope, receive, send)

    assert call(make(ASGI2App)).body == b"hello"


# --- frameworks in-process (httpx's WSGI transport as client) ----------------------------


def test_starlette_with_sync_endpoint_and_base_http_middleware(make: Any) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    class Tag(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-tag"] = "1"
            return response

    def sync_endpoint(request: Any) -> PlainTextResponse:  # runs in anyio's thread pool
        return PlainTextResponse(f"sync {request.url.path}")

    app = Starlette(routes=[Route("/sync", sync_endpoint)], middleware=[Middleware(Tag)])
    with httpx.Client(transport=httpx.WSGITransport(app=make(app)), base_url="http://t") as client:
        response = client.get("/sync")
    assert response.status_code == 200
    assert response.text == "sync /sync"
    assert response.headers["x-tag"] == "1"
