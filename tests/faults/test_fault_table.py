"""Fault injection: one table per adapter and per middleware driver.

Every row makes one thing go wrong (the app, the client, the server, the pool) and
asserts the whole outcome: what the client or server got, what was logged and on which
logger, that the WSGI iterable was closed exactly once, and that nothing was left
behind (threads other than idle pool workers, asyncio tasks, event loops, fds).

In-process rows use the scripted ASGI server of ``tests/bridge/harness.py`` and a tiny
WSGI server below; a few rows at the end run the same faults through real servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bridge import ClientDisconnected, InvalidResponse, ThreadPool, WSGIToASGI
from bridge._a2w_exchange import MAX_BUFFERED_CHUNKS
from bridge._asgi_to_wsgi import ASGIToWSGI
from middleware import CORS, AccessLog, GZip, Middleware, Stack
from tests.bridge.harness import Exchange, http_scope
from tests.faults.leaks import Snapshot, assert_no_leaks, assert_no_leaks_async
from tests.servers import asgi_server_argv, free_port, require_module, serve, wsgi_server_argv

W2A = "bridge.wsgi_to_asgi"
A2W = "bridge.asgi_to_wsgi"
ACCESS = "middleware.access"


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def logged(caplog: pytest.LogCaptureFixture, logger: str, level: int, text: str) -> bool:
    return any(r.levelno == level and text in r.getMessage() for r in records(caplog, logger))


# --- WSGI apps that fail in every way, each counting close() -----------------------------


class Body:
    """A WSGI iterable that yields ``chunks`` (calling ``fail_at`` first, if set) and
    counts ``close()``."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        fail_at: int | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self._chunks = iter(chunks)
        self._fail_at = fail_at
        self._gate = gate
        self.yielded = 0
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._fail_at is not None and self.yielded == self._fail_at:
            raise ValueError("boom in the body")
        if self._gate is not None and self.yielded:
            self._gate.wait(10)
        chunk = next(self._chunks)
        self.yielded += 1
        return chunk

    def close(self) -> None:
        self.closed += 1


@dataclass
class WSGIScript:
    """A WSGI app for one row, and the bodies it returned."""

    behaviour: str
    bodies: list[Body] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.entered.set()
        kind = self.behaviour
        if kind == "raise-before-start":
            raise ValueError("boom before start_response")
        if kind == "raise-at-start":
            # An injected header value: start_response itself refuses it.
            start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: owned=1")])
            return [b"unreachable"]
        if kind == "no-response":
            body = Body([])
            self.bodies.append(body)
            return body
        if kind == "read-body":
            data = environ["wsgi.input"].read()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [data]
        if kind == "block":
            self.release.wait(10)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"late"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "raise-after-start":
            body = Body([b"never"], fail_at=0)
        elif kind == "raise-mid-stream":
            body = Body([b"one", b"two", b"three"], fail_at=1)
        elif kind == "endless":
            body = Body(iter(lambda: b"x" * 1024, None))
        elif kind == "stream":
            body = Body([b"one", b"two", b"three"])
        else:  # pragma: no cover - a typo in the table
            raise AssertionError(kind)
        self.bodies.append(body)
        return body


# --- WSGIToASGI: the scripted ASGI server side -------------------------------------------


@dataclass(frozen=True)
class W2ARow:
    id: str
    app: str
    # how the client/server misbehaves
    client: str = "normal"
    body: tuple[bytes, ...] = (b"",)
    # expectations
    status: int | None = 200  # None: no response head reached the client
    raises: type[BaseException] | None = None  # what the server sees from the app
    log: tuple[int, str] | None = None
    closes: int | None = 1  # close() calls on the body; None: the app returned no body


W2A_ROWS = [
    # An app's exception reaches the server as itself (which answers 500 and logs it),
    # so the adapter sends nothing and logs nothing at ERROR: no double logging.
    W2ARow(
        "app-raises-before-start_response",
        "raise-before-start",
        status=None,
        raises=ValueError,
        closes=None,
    ),
    W2ARow(
        "start_response-refuses-injected-header",
        "raise-at-start",
        status=None,
        raises=InvalidResponse,
        closes=None,
    ),
    W2ARow(
        "app-raises-after-start_response-before-body",
        "raise-after-start",
        status=None,
        raises=ValueError,
    ),
    W2ARow("app-raises-mid-stream", "raise-mid-stream", raises=ValueError),
    W2ARow("app-returns-without-start_response", "no-response", status=None, raises=RuntimeError),
    W2ARow(
        "client-gone-before-body",
        "read-body",
        client="disconnect-first",
        status=None,
        closes=None,
    ),
    W2ARow(
        "client-gone-mid-upload",
        "read-body",
        client="disconnect-after-1",
        body=(b"part", b"never-sent"),
        status=None,
        # The receiver task saw http.disconnect first, so the app's failing read is the
        # expected end of an abandoned request: debug level, not an app error.
        log=(logging.DEBUG, "stopped after the client went away"),
        closes=None,
    ),
    W2ARow("client-gone-mid-response", "endless", client="disconnect-mid-response"),
    W2ARow("server-send-raises", "endless", client="send-raises", raises=OSError),
    W2ARow(
        "request-task-cancelled",
        "endless",
        client="cancel",
        raises=asyncio.CancelledError,
    ),
    W2ARow("slow-client-never-reads", "endless", client="never-reads", raises=TimeoutError),
]


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(4, max_queue=0, name="faults-w2a")
    yield pool
    pool.shutdown()


async def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("row", W2A_ROWS, ids=lambda row: row.id)
async def test_wsgi_to_asgi_fault(
    row: W2ARow, pool: ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = Snapshot.take()
    script = WSGIScript(row.app)
    adapter = WSGIToASGI(script, pool=pool)
    exchange = Exchange(body_chunks=row.body)
    if row.client == "disconnect-first":
        exchange.disconnect_after = 0
    elif row.client == "disconnect-after-1":
        exchange.disconnect_after = 1
    elif row.client == "send-raises":
        exchange.send_error = (2, OSError("connection reset by peer"))
    elif row.client == "never-reads":
        exchange.client_reads = asyncio.Event()  # never set
    method = "POST" if row.app == "read-body" else "GET"
    task = asyncio.ensure_future(exchange.run(adapter, http_scope("/", method=method)))

    if row.client == "disconnect-mid-response":
        await asyncio.wait_for(exchange.body_sent.wait(), 10)
        exchange.disconnect()
    elif row.client == "cancel":
        await asyncio.wait_for(exchange.body_sent.wait(), 10)
        task.cancel()
    elif row.client == "never-reads":
        # The worker runs ahead by a bounded number of chunks, then waits.
        await _wait_for(lambda: bool(script.bodies) and script.bodies[0].yielded >= 2)
        await asyncio.sleep(0.2)
        # The chunk being sent, the default window of 64 and the one in the app's hand.
        assert script.bodies[0].yielded <= 66, "backpressure did not stop the app"
        # A server gives up on such a client eventually: here, a timeout cancels it.
        # asyncio.TimeoutError: the builtin only from Python 3.11 on.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.1)

    if row.raises is not None and row.client != "never-reads":
        with pytest.raises(row.raises):
            await asyncio.wait_for(task, 10)
    elif row.client != "never-reads":
        await asyncio.wait_for(task, 10)

    if row.status is None:
        assert not [m for m in exchange.messages if m["type"] == "http.response.start"]
    elif row.client == "normal" or row.client.startswith("disconnect-mid"):
        assert exchange.status == row.status
    if row.log is not None:
        level, text = row.log
        assert logged(caplog, W2A, level, text), caplog.text
    # Nothing worse than what the row expects reached the logs.
    if row.log is None or row.log[0] < logging.ERROR:
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

    await _wait_for(lambda: pool.pending == 0)
    if row.closes is None:
        assert all(body.closed == 1 for body in script.bodies)
    else:
        assert [body.closed for body in script.bodies] == [row.closes]
    await assert_no_leaks_async(before, pools=[pool])


async def test_wsgi_to_asgi_pool_exhausted_answers_503(caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPool(1, max_queue=0, retry_after=7, name="faults-tiny")
    before = Snapshot.take()
    script = WSGIScript("block")
    adapter = WSGIToASGI(script, pool=pool)
    first = Exchange()
    busy = asyncio.ensure_future(first.run(adapter, http_scope()))
    await _wait_for(script.entered.is_set)
    try:
        second = await asyncio.wait_for(Exchange().run(adapter, http_scope()), 10)
        assert second.status == 503
        assert second.header(b"retry-after") == b"7"
        assert logged(caplog, W2A, logging.WARNING, "worker threads are busy")
    finally:
        script.release.set()
    assert (await asyncio.wait_for(busy, 10)).status == 200
    await _wait_for(lambda: pool.pending == 0)
    await assert_no_leaks_async(before, pools=[pool])
    pool.shutdown()


# --- ASGIToWSGI: a tiny WSGI server side -------------------------------------------------


@dataclass
class ASGIScript:
    """An ASGI app for one row; records how far it got."""

    behaviour: str
    sent: int = 0
    finished: int = 0  # times its ``finally`` ran (task completed, failed or cancelled)
    cancelled: bool = False
    send_refused: bool = False  # send() raised ClientDisconnected
    background_done: bool = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")  # "auto" mode: unsupported, carry on
        try:
            await self._run(receive, send)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except ClientDisconnected:
            self.send_refused = True
            raise
        finally:
            self.finished += 1

    async def _start(self, send: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": headers or [(b"content-type", b"text/plain")],
            }
        )

    async def _body(self, send: Any, data: bytes, more: bool) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})
        self.sent += 1

    async def _run(self, receive: Any, send: Any) -> None:
        kind = self.behaviour
        if kind == "raise-before-start":
            raise ValueError("boom before the response")
        if kind == "raise-at-start":
            await self._start(send, [(b"x-evil", b"a\r\nset-cookie: owned=1")])
            return
        if kind == "no-response":
            return
        if kind == "cancel-self":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(1)
        if kind == "read-body":
            message = await receive()
            while message["type"] == "http.request" and message.get("more_body"):
                message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left mid-upload: nothing to answer
            await self._start(send)
            await self._body(send, b"read", False)
            return
        await self._start(send)
        if kind == "raise-after-start":
            raise ValueError("boom after the head")
        if kind == "raise-mid-stream":
            await self._body(send, b"one", True)
            raise ValueError("boom mid-stream")
        if kind == "endless":
            while True:
                await self._body(send, b"x" * 1024, True)
                await asyncio.sleep(0)  # a scripted send() never suspends
        if kind in ("background-ok", "background-forever"):
            await self._body(send, b"done", False)
            await asyncio.sleep(0.05 if kind == "background-ok" else 3600)
            self.background_done = True
            return
        raise AssertionError(kind)  # pragma: no cover - a typo in the table


@dataclass
class WSGICall:
    """What the tiny WSGI server saw."""

    status: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    error: BaseException | None = None


def call_wsgi(
    app: Any,
    *,
    method: str = "GET",
    body: bytes = b"",
    content_length: int | None = None,
    read_chunks: int | None = None,
    start_response_raises: bool = False,
) -> WSGICall:
    """Drive ``app`` as a WSGI server would: start_response, iterate, always close().

    ``read_chunks`` stops after that many body chunks (the client went away);
    ``content_length`` may claim more than ``body`` holds (a truncated upload).
    """
    call = WSGICall()
    length = len(body) if content_length is None else content_length
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_LENGTH": str(length) if length else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if start_response_raises:
            raise OSError("the server could not send the head")
        call.status = status
        return call.chunks.append

    result = None
    try:
        result = app(environ, start_response)
        for chunk in result:
            call.chunks.append(chunk)
            if read_chunks is not None and len(call.chunks) >= read_chunks:
                break
    except Exception as exc:
        call.error = exc
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return call


@dataclass(frozen=True)
class A2WRow:
    id: str
    app: str
    server: str = "normal"
    status: str | None = "200 OK"  # None: no head went out
    error: type[BaseException] | None = None  # what the WSGI server sees
    # An app that fails right after its head may do so before the WSGI side started the
    # response (then the server gets the exception with nothing sent: status None).
    or_before_head: bool = False
    log: tuple[int, str] | None = None
    cancelled: bool = False
    background_done: bool | None = None


A2W_ROWS = [
    # Failures reach the WSGI server as exceptions (it answers 500 or aborts, and logs
    # them once); before the head nothing has gone out.
    A2WRow("app-raises-before-start", "raise-before-start", status=None, error=ValueError),
    A2WRow("app-sends-injected-header", "raise-at-start", status=None, error=InvalidResponse),
    A2WRow("app-raises-after-start", "raise-after-start", error=ValueError, or_before_head=True),
    A2WRow("app-raises-mid-stream", "raise-mid-stream", error=ValueError, or_before_head=True),
    A2WRow("app-returns-without-responding", "no-response", status=None, error=RuntimeError),
    A2WRow(
        "request-task-cancelled", "cancel-self", status=None, error=RuntimeError, cancelled=True
    ),
    A2WRow(
        "client-gone-mid-upload",
        "read-body",
        server="truncated-upload",
        status=None,
        error=RuntimeError,
    ),
    A2WRow("server-closes-iterator-early", "endless", server="close-early", cancelled=True),
    A2WRow(
        "server-start_response-raises",
        "endless",
        server="start-raises",
        status=None,
        error=OSError,
        cancelled=True,
    ),
    A2WRow("background-work-completes", "background-ok", background_done=True),
    A2WRow(
        "background-work-over-timeout-cancelled",
        "background-forever",
        log=(logging.WARNING, "exceeded background_timeout"),
        cancelled=True,
        background_done=False,
    ),
]


@pytest.mark.parametrize("loop_mode", ["thread", "shared"])
@pytest.mark.parametrize("row", A2W_ROWS, ids=lambda row: row.id)
def test_asgi_to_wsgi_fault(row: A2WRow, loop_mode: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    before = Snapshot.take()
    script = ASGIScript(row.app)
    adapter = ASGIToWSGI(script, loop_mode=loop_mode, background_timeout=0.3)
    try:
        kwargs: dict[str, Any] = {}
        if row.server == "truncated-upload":
            kwargs = {"method": "POST", "body": b"abc", "content_length": 100}
        elif row.server == "close-early":
            kwargs = {"read_chunks": 2}
        elif row.server == "start-raises":
            kwargs = {"start_response_raises": True}
        call = call_wsgi(adapter, **kwargs)
        deadline = time.monotonic() + 10
        while not script.finished and time.monotonic() < deadline:
            time.sleep(0.005)  # shared mode: the loop thread may still be unwinding
    finally:
        adapter.close()

    assert call.status == row.status or (row.or_before_head and call.status is None)
    if row.error is None:
        assert call.error is None, call.error
    else:
        assert isinstance(call.error, row.error), call.error
    assert script.finished == 1, "the ASGI app ran to an end exactly once"
    if row.cancelled:
        # Stopped either way: cancelled by close(), or (when the shared loop got there
        # first) by send() raising ClientDisconnected once the server closed the response.
        assert script.cancelled or script.send_refused
    else:
        assert not script.cancelled
    if row.background_done is not None:
        assert script.background_done == row.background_done
    if row.server == "close-early":
        # It may fill the response window before it pauses, and no more: the old
        # bound (40) was that window (16 chunks then) plus 24.
        assert script.sent < MAX_BUFFERED_CHUNKS + 24, (
            "the app kept sending after the server closed"
        )
    if row.log is not None:
        level, text = row.log
        assert logged(caplog, A2W, level, text), caplog.text
    if row.log is None or row.log[0] < logging.ERROR:
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert_no_leaks(before)


def test_asgi_to_wsgi_slow_server_pauses_the_app() -> None:
    """A WSGI server that takes one chunk and stalls: the app stops at the buffer bound."""
    before = Snapshot.take()
    script = ASGIScript("endless")
    adapter = ASGIToWSGI(script, loop_mode="shared")
    try:
        environ_call: dict[str, Any] = {}

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            environ_call["status"] = status
            return None

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "x",
            "SERVER_PORT": "80",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
        }
        body = adapter(environ, start_response)
        first = next(iter(body))
        assert first
        time.sleep(0.3)
        assert script.sent <= MAX_BUFFERED_CHUNKS + 4, (
            f"the app ran {script.sent} chunks ahead of a stalled server"
        )
        body.close()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not script.finished and time.monotonic() < deadline:
            time.sleep(0.005)
        assert script.cancelled
    finally:
        adapter.close()
    assert_no_leaks(before)


# --- the middleware drivers --------------------------------------------------------------


def _stack(app: Any) -> Any:
    return Stack(
        [
            Middleware(AccessLog),
            Middleware(CORS, allow_origins=["https://ok.example"]),
            Middleware(GZip, minimum_size=1),
        ]
    )(app)


@dataclass(frozen=True)
class DriverRow:
    id: str
    app: str
    server: str = "normal"
    status: str | None = "200 OK"
    error: type[BaseException] | None = None
    access_status: int = 200  # what AccessLog records


WSGI_DRIVER_ROWS = [
    DriverRow(
        "app-raises-before-start",
        "raise-before-start",
        status=None,
        error=ValueError,
        access_status=500,
    ),
    DriverRow(
        "start_response-refuses-header",
        "raise-at-start",
        status=None,
        error=Exception,
        access_status=500,
    ),
    DriverRow("app-raises-mid-stream", "raise-mid-stream", error=ValueError, access_status=500),
    DriverRow("server-closes-iterator-early", "endless", server="close-early", access_status=499),
    DriverRow("app-completes", "stream"),
]


@pytest.mark.parametrize("row", WSGI_DRIVER_ROWS, ids=lambda row: row.id)
def test_wsgi_driver_fault(row: DriverRow, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = Snapshot.take()
    script = WSGIScript(row.app)
    app = _stack(script)
    kwargs = {"read_chunks": 2} if row.server == "close-early" else {}
    # The WSGI call needs a start_response that checks values, as real servers do.
    call = _call_wsgi_checked(app, **kwargs)
    assert call.status == row.status or (row.or_before_head and call.status is None)
    if row.error is None:
        assert call.error is None, call.error
    else:
        assert isinstance(call.error, row.error), call.error
    assert [body.closed for body in script.bodies] == [1] * len(script.bodies)
    access = records(caplog, ACCESS)
    assert len(access) == 1, caplog.text
    assert access[0].http["status"] == row.access_status  # type: ignore[attr-defined]
    assert_no_leaks(before)


def _call_wsgi_checked(app: Any, **kwargs: Any) -> WSGICall:
    from bridge._response import ResponseHead

    # ResponseHead.start_response refuses CR/LF values exactly as WSGIToASGI does.
    head = ResponseHead(lambda data: None)

    class Checked:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __call__(self, environ: Any, start_response: Any) -> Any:
            def checked(status: str, headers: Any, exc_info: Any = None) -> Any:
                head.start_response(status, list(headers), exc_info)
                return start_response(status, headers, exc_info)

            return self.inner(environ, checked)

    return call_wsgi(Checked(app), **kwargs)


ASGI_DRIVER_ROWS = [
    DriverRow(
        "app-raises-before-start",
        "raise-before-start",
        status="500",
        error=ValueError,
        access_status=500,
    ),
    DriverRow("app-raises-mid-stream", "raise-mid-stream", error=ValueError, access_status=500),
    DriverRow(
        "server-send-raises", "endless", server="send-raises", error=OSError, access_status=499
    ),
    DriverRow(
        "request-task-cancelled",
        "endless",
        server="cancel",
        error=asyncio.CancelledError,
        access_status=499,
    ),
    DriverRow(
        "client-disconnects-mid-upload",
        "read-body",
        server="disconnect",
        status=None,
        access_status=499,
    ),
    DriverRow("app-completes", "background-ok"),
]


@pytest.mark.parametrize("row", ASGI_DRIVER_ROWS, ids=lambda row: row.id)
async def test_asgi_driver_fault(row: DriverRow, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    before = Snapshot.take()
    script = ASGIScript(row.app)
    app = _stack(script)
    exchange = Exchange(body_chunks=(b"part", b"rest"))
    if row.server == "send-raises":
        exchange.send_error = (2, OSError("connection reset by peer"))
    elif row.server == "disconnect":
        exchange.disconnect_after = 1
    method = "POST" if row.app == "read-body" else "GET"
    scope = http_scope("/", method=method, headers=[(b"accept-encoding", b"gzip")])
    task = asyncio.ensure_future(exchange.run(app, scope))
    if row.server == "cancel":
        await asyncio.wait_for(exchange.body_sent.wait(), 10)
        task.cancel()
    if row.error is None:
        await asyncio.wait_for(task, 10)
    else:
        with pytest.raises(row.error):
            await asyncio.wait_for(task, 10)
    starts = [m for m in exchange.messages if m["type"] == "http.response.start"]
    if row.status is None:
        assert not starts
    else:
        assert starts[0]["status"] == int(row.status[:3])
    access = records(caplog, ACCESS)
    assert len(access) == 1, caplog.text
    assert access[0].http["status"] == row.access_status  # type: ignore[attr-defined]
    await assert_no_leaks_async(before)


# --- the same faults through real servers ------------------------------------------------


def _stats(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/stats").json()
    return data


def _idle(client: httpx.Client, timeout: float = 15.0) -> dict[str, Any]:
    """Poll the server's /stats until no request but this one is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        stats = _stats(client)
        if stats["busy"] <= 1 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def _disconnect_mid_response(host: str, port: int, path: str) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(4096)  # the head and some body arrived
    # closed here, mid-response


@pytest.fixture(scope="module")
def uvicorn_server() -> Iterator[str]:
    require_module("uvicorn")
    port = free_port()
    with serve(asgi_server_argv("uvicorn", "tests.soak.soak_apps:wsgi_to_asgi", port), port) as url:
        yield url


@pytest.fixture(scope="module")
def gunicorn_server() -> Iterator[str]:
    require_module("gunicorn")
    port = free_port()
    argv = wsgi_server_argv("gunicorn-gthread", "tests.soak.soak_apps:asgi_to_wsgi", port)
    with serve(argv, port) as url:
        yield url


REAL_SERVERS = ["uvicorn_server", "gunicorn_server"]


@pytest.mark.slow
@pytest.mark.parametrize("server", REAL_SERVERS)
def test_real_server_app_raises_before_start_answers_500(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server)
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/raise").status_code == 500
        assert client.get("/small").status_code == 200  # and the server still serves


@pytest.mark.slow
@pytest.mark.parametrize("server", REAL_SERVERS)
def test_real_server_app_raising_mid_stream_cuts_the_response(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server)
    with httpx.Client(base_url=url, timeout=10) as client:
        if server == "gunicorn_server":
            # ASGIToWSGI: an app that raises before the server took its head (here, in
            # the same step as its first chunk) gets gunicorn's clean 500; one that
            # raises later, a cut response.
            with contextlib.suppress(httpx.HTTPError):
                assert client.get("/raise-mid").status_code == 500
        else:
            with pytest.raises(httpx.HTTPError):
                client.get("/raise-mid")
        assert _idle(client)["busy"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("server", REAL_SERVERS)
def test_real_server_client_gone_mid_response_frees_the_worker(
    server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server)
    host, port = url.removeprefix("http://").split(":")
    with httpx.Client(base_url=url, timeout=10) as client:
        baseline = _idle(client)
        for _ in range(5):
            _disconnect_mid_response(host, int(port), "/slow-stream")
        stats = _idle(client)
        assert stats["busy"] <= 1, stats
        assert stats["threads"] <= baseline["threads"] + 8, (baseline, stats)
