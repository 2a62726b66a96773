"""``ASGIToWSGI``: serve an ASGI 3 (or 2) application from any WSGI server.

Each WSGI call becomes one ASGI ``http`` connection (ASGI spec "HTTP & WebSocket" 2.4,
lifespan per "Lifespan" 2.0). The WSGI thread drives the ASGI task itself: it runs the
event loop only while it needs something from the app (the response head, the next
body chunk, the end of background work), and the WSGI response iterable pulls body
chunks out as the app sends them, so responses stream.

Rules of this file:

* Pure translation (environ -> scope, response head -> WSGI) lives in ``_scope.py``;
  loop and thread machinery in ``_loops.py``. This file wires them to one request.
* Per-request state lives in ``_Exchange``; the adapter holds configuration and loops.
* The response side is an explicit state machine (``_Phase`` and ``_SEND``).
* Nothing starts in ``__init__``: loops, threads and lifespan start lazily in the
  process and thread that serves requests (pre-fork servers, ``--preload``).
* Failures are logged on the ``bridge.asgi_to_wsgi`` logger; never printed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # registers its exit hook before ours (see _close_at_exit)
import io
import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from enum import Enum, auto
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeAlias, cast

from asgiref.compatibility import guarantee_single_callable

from bridge._framing import content_length, has_no_body
from bridge._http import ClientDisconnected, InvalidResponse
from bridge._interface import require_int, require_interface
from bridge._loops import PerThreadLoops, SharedLoop, TaskLoop, close_loop
from bridge._scope import ASGI_VERSION, ScopeError, http_scope, response_head
from bridge._thread_sensitive import thread_sensitive_if_django
from bridge._types import ASGIApp, Environ, Message, Receive, Scope, Send

if TYPE_CHECKING:
    # typeshed's protocol, not bridge._types': its exc_info traceback is not Optional, so
    # only a __call__ typed with it is a _typeshed.wsgi.WSGIApplication (what werkzeug's
    # DispatcherMiddleware and other WSGI consumers are annotated to take). It still
    # accepts our own StartResponse, whose exc_info is wider.
    from _typeshed.wsgi import StartResponse

__all__ = ["ASGIToWSGI", "LifespanStartupFailed", "RequestTimeout"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

# An ASGI 2 ("double callable") app: scope in, an instance taking receive and send out.
ASGI2App: TypeAlias = Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]

LoopMode = Literal["thread", "shared"]
LifespanMode = Literal["auto", "on", "off"]

# A sending app is paused once this many body chunks wait for the WSGI server.
_MAX_BUFFERED_CHUNKS = 16
# How long a cancelled task may take to unwind before it is abandoned (and logged).
_CANCEL_GRACE = 5.0


class LifespanStartupFailed(RuntimeError):
    """The ASGI app reported (or raised) a lifespan startup failure."""


class RequestTimeout(TimeoutError):
    """The ASGI app did not complete its response within ``request_timeout``."""


# --- the response state machine --------------------------------------------------------


class _Phase(Enum):
    # Members are singletons compared by identity; the C-level identity hash keeps the
    # _SEND lookup off Enum's Python-level __hash__ on the per-message path.
    __hash__ = object.__hash__

    AWAITING_START = auto()
    STREAMING = auto()
    COMPLETE = auto()
    # The app sent a head HTTP cannot carry: the request is answered 500 whatever it does next.
    REJECTED = auto()
    # The WSGI server closed the response early (client gone): send() raises from now on.
    DISCONNECTED = auto()


# (phase, message type, more_body) -> next phase. Anything missing is an app error.
_SEND: dict[tuple[_Phase, str, bool], _Phase] = {
    (_Phase.AWAITING_START, "http.response.start", False): _Phase.STREAMING,
    (_Phase.STREAMING, "http.response.body", True): _Phase.STREAMING,
    (_Phase.STREAMING, "http.response.body", False): _Phase.COMPLETE,
    (_Phase.STREAMING, "http.response.pathsend", False): _Phase.COMPLETE,
}


class _Body(Enum):
    EMPTY = auto()  # no request body: the first receive() says so, once
    READING = auto()  # chunks still to read from wsgi.input
    DONE = auto()  # everything delivered (or the client went away)


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


def _plain_response(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


# --- lifespan ---------------------------------------------------------------------------


class _LifespanUnsupported(Exception):
    """Raised into an app that sends a non-lifespan message on the lifespan scope."""


class _LifespanPhase(Enum):
    NOT_STARTED = auto()
    READY = auto()  # startup complete (or lifespan off / unsupported)
    FAILED = auto()
    SHUT_DOWN = auto()


class _Lifespan:
    """The lifespan protocol on one event loop: startup once, shutdown at close."""

    def __init__(
        self,
        app: ASGIApp,
        mode: LifespanMode,
        timeout: float,
        on_unsupported: Callable[[BaseException | None], None],
    ) -> None:
        self.app = app
        self.mode = mode
        self.timeout = timeout
        self.on_unsupported = on_unsupported
        self._unsupported = False
        self.phase = _LifespanPhase.NOT_STARTED
        self.state: dict[str, Any] = {}
        self.failure = ""
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] | None = None
        self._started: asyncio.Future[str | None] | None = None
        self._stopped: asyncio.Future[str | None] | None = None
        self._error: BaseException | None = None

    async def startup(self) -> None:
        if self.phase is not _LifespanPhase.NOT_STARTED:
            return
        if self.mode == "off":
            self.phase = _LifespanPhase.READY
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = loop.create_task(self._main())
        self._inbox.put_nowait({"type": "lifespan.startup"})
        waiters: list[asyncio.Future[Any]] = [self._started, self._task]
        await asyncio.wait(
            waiters,
            timeout=self.timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._unsupported or (self._task.done() and not self._started.done()):
            if self.mode == "auto":
                # ASGI lifespan spec: an app that raises on this scope (or, like uvicorn
                # and hypercorn accept, answers it as if it were HTTP) does not support it.
                self.on_unsupported(self._error)
                await self._stop_task()
                self.phase = _LifespanPhase.READY
            else:
                self._fail("the app's lifespan handler ended before startup completed")
        elif self._started.done():
            failure = self._started.result()
            if failure is None:
                self.phase = _LifespanPhase.READY
                return
            self._fail(f"the app sent lifespan.startup.failed: {failure}")
        else:
            self._fail(f"lifespan startup did not complete within {self.timeout}s")
            await self._stop_task()

    def _fail(self, reason: str) -> None:
        self.phase = _LifespanPhase.FAILED
        self.failure = reason
        logger.error(
            "ASGI lifespan startup failed; requests will be answered 500: %s",
            reason,
            exc_info=self._error,
        )

    async def _main(self) -> None:
        assert self._inbox is not None
        scope: Scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:  # reported by startup()/shutdown(), which know the context
            self._error = exc

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        assert self._started is not None
        assert self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            _resolve(self._started, None)
        elif kind == "lifespan.startup.failed":
            _resolve(self._started, str(message.get("message", "")) or "no message")
        elif kind == "lifespan.shutdown.complete":
            _resolve(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            _resolve(self._stopped, str(message.get("message", "")) or "no message")
        elif self.mode == "auto" and not self._started.done():
            # Not a lifespan message: the app treats every scope as HTTP.
            self._unsupported = True
            _resolve(self._started, None)
            self._error = _LifespanUnsupported(f"the app sent {kind!r} on the lifespan scope")
            raise self._error
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    async def shutdown(self) -> None:
        was_ready = self.phase is _LifespanPhase.READY
        self.phase = _LifespanPhase.SHUT_DOWN
        task, inbox, stopped = self._task, self._inbox, self._stopped
        if task is None or inbox is None or stopped is None:
            return  # never started, unsupported, or already shut down
        if was_ready and not task.done():
            inbox.put_nowait({"type": "lifespan.shutdown"})
            waiters: list[asyncio.Future[Any]] = [stopped, task]
            await asyncio.wait(waiters, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
            if not stopped.done():
                logger.error("ASGI lifespan shutdown did not complete", exc_info=self._error)
            elif (failure := stopped.result()) is not None:
                logger.error("ASGI lifespan shutdown failed: %s", failure)
        await self._stop_task()

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=_CANCEL_GRACE)
        if task.done() and not task.cancelled():
            task.result()


class _LoopContext:
    """What a per-thread loop carries: the loop and that loop's lifespan."""

    __slots__ = ("lifespan", "loop")

    def __init__(self, loop: TaskLoop, lifespan: _Lifespan) -> None:
        self.loop = loop
        self.lifespan = lifespan


# --- one request ------------------------------------------------------------------------


class _Settings:
    """The adapter options a request needs, gathered once per adapter."""

    __slots__ = ("background_timeout", "chunk_size", "shared")

    def __init__(self, shared: bool, chunk_size: int, background_timeout: float) -> None:
        self.shared = shared
        self.chunk_size = chunk_size
        self.background_timeout = background_timeout


class _Exchange:
    """One request: the ASGI side (``receive``/``send``, run on the loop) and the
    WSGI side's view of it (``wait``, ``take``, ``cancel``, run in the WSGI thread).

    Per-thread mode: both sides run in the WSGI thread; ``wait`` runs the loop until
    the app reports progress. Shared mode: the app runs on the loop thread, reports
    progress through a doorbell queue, and asks the WSGI thread to read the body
    (``wsgi.input`` must not block the shared loop).
    """

    # Defaults live on the class: most requests never touch most of these, and not
    # assigning them per request is measurably cheaper on the hot path.
    status = ""
    headers: list[tuple[str, str]] = []  # noqa: RUF012 - replaced, never mutated
    path: str | None = None
    error: Exception | None = None
    invalid: Exception | None = None  # the framing error that rejected the response
    no_body = False  # HEAD, 204 or 304: body messages are accepted and dropped
    expected: int | None = None  # the response's Content-Length
    sent = 0  # body bytes accepted so far
    deadline: float | None = None  # time.monotonic() by which the response must end
    finished = False
    left = False
    task: asyncio.Task[None] | None = None
    future: concurrent.futures.Future[None] | None = None
    timer: asyncio.TimerHandle | None = None
    wake: asyncio.Future[None] | None = None
    doorbell: queue.SimpleQueue[None] | None = None
    drain: asyncio.Future[None] | None = None
    disconnect: asyncio.Future[None] | None = None
    read_request: asyncio.Future[tuple[bytes, bool, bool]] | None = None
    remaining: int | None = 0
    mark = 0  # TaskLoop.scheduled when the request started (thread mode)

    def __init__(
        self, environ: Environ, scope: Scope, loop: asyncio.AbstractEventLoop, settings: _Settings
    ) -> None:
        self.scope = scope
        self.loop = loop
        self.shared = shared = settings.shared
        self.chunk_size = settings.chunk_size
        self.background_timeout = settings.background_timeout
        self.phase = _Phase.AWAITING_START
        self.chunks: deque[bytes] = deque()
        if shared:
            self.doorbell = queue.SimpleQueue()
        self.input = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            # ASCII digits only: int() would also take "-5" (read to EOF) or non-ASCII digits.
            length = length.strip()
            self.remaining = int(length) if length.isascii() and length.isdigit() else 0
            self.body = _Body.READING if self.remaining else _Body.EMPTY
        elif environ.get("wsgi.input_terminated"):
            # Chunked upload: the server ends the stream at the end of the body.
            self.remaining = None
            self.body = _Body.READING
        else:
            # PEP 3333: without CONTENT_LENGTH, do not read past what was declared.
            self.body = _Body.EMPTY

    @property
    def request_line(self) -> str:
        """``"METHOD /path"`` for log messages."""
        return f"{self.scope.get('method')} {self.scope.get('path')}"

    # --- ASGI side (runs on the event loop) ----------------------------------------------

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        if self.shared:
            self.task = asyncio.current_task()
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnected as exc:
            # Our own send() telling the app the client left, and the app letting it
            # propagate: the normal end of an abandoned response, not an app failure.
            self.error = exc
            logger.debug("client went away: %s", self.request_line, exc_info=exc)
        except Exception as exc:
            self.error = exc
            if self.phase is _Phase.COMPLETE or self.phase is _Phase.DISCONNECTED:
                # The response is over, so no WSGI frame is left to report this.
                logger.error(
                    "ASGI app raised after its response ended (complete or client gone): %s",
                    self.request_line,
                    exc_info=exc,
                )
        finally:
            self.finished = True
            if self.timer is not None:
                self.timer.cancel()
            self.notify()

    async def receive(self) -> Message:
        if self.left:
            return _disconnect()  # the response is over, or the client went away
        body = self.body
        if body is _Body.EMPTY:
            self.body = _Body.DONE
            return {"type": "http.request", "body": b"", "more_body": False}
        if body is _Body.READING:
            if self.shared:
                data, more, gone = await self._read_in_wsgi_thread()
            else:
                data, more, gone = self.read_chunk()
            if gone:
                self.body = _Body.DONE
                return _disconnect()
            if not more:
                self.body = _Body.DONE
            return {"type": "http.request", "body": data, "more_body": more}
        if self.phase is _Phase.STREAMING or self.phase is _Phase.AWAITING_START:
            # Body consumed, response still running: the client may yet disconnect, and
            # we only learn whether when the response ends (WSGI reports nothing sooner).
            if self.disconnect is None:
                self.disconnect = self.loop.create_future()
            await asyncio.shield(self.disconnect)
        return _disconnect()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        phase = self.phase
        if phase is _Phase.DISCONNECTED:
            raise ClientDisconnected("the client went away before the response was complete")
        more = kind == "http.response.body" and bool(message.get("more_body", False))
        next_phase = _SEND.get((phase, kind, more))
        if next_phase is None:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in response phase {phase.name}")
        if kind == "http.response.body":
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    # bytes(50_000_000) would be 50 MB of NUL bytes sent as the body.
                    self._reject(
                        TypeError(
                            f"http.response.body 'body' must be bytes, not {type(body).__name__}"
                        )
                    )
                body = bytes(body)
            if body and not self.no_body:
                expected = self.expected
                if expected is not None:
                    sent = self.sent + len(body)
                    if sent > expected:
                        self._reject(
                            InvalidResponse(
                                f"response body longer than its Content-Length {expected}"
                            )
                        )
                    self.sent = sent
                self.chunks.append(body)
            if (
                not more
                and not self.no_body
                and self.expected is not None
                and self.sent < self.expected
            ):
                self._reject(
                    InvalidResponse(
                        f"response body ended after {self.sent} of its "
                        f"Content-Length {self.expected} bytes"
                    )
                )
            self.phase = next_phase
            if not more:
                self._complete()
            elif len(self.chunks) >= _MAX_BUFFERED_CHUNKS:
                # Backpressure: wait until the WSGI server has taken what we hold. The
                # drain future exists before notify(), so a WSGI thread that already
                # emptied the buffer sees it when it wakes and releases it.
                drain = self.drain = self.loop.create_future()
                self.notify()
                await drain
                return
            self.notify()
            return
        if kind == "http.response.start":
            try:
                self.status, headers = response_head(message)
                self.headers, self.expected = content_length(headers)
            except InvalidResponse as exc:
                self._reject(exc)
            self.no_body = has_no_body(self.scope.get("method"), message["status"])
            self.phase = next_phase
            self.notify()
            return
        path = message.get("path")
        if not isinstance(path, str):
            raise RuntimeError(f"http.response.pathsend needs a str path, got {path!r}")
        if not self.no_body:
            self.path = path
        self.phase = next_phase
        self._complete()
        self.notify()

    def _reject(self, error: Exception) -> NoReturn:
        """The app broke HTTP framing: the response is refused before its head reaches
        the server, or aborted after; ``send()`` raises ``error`` to the app."""
        self.invalid = error
        self.phase = _Phase.REJECTED
        self.notify()
        raise error

    def _complete(self) -> None:
        if self.disconnect is not None:
            _resolve(self.disconnect)
        if self.shared and not self.finished:
            # Background work runs on the shared loop by itself; bound it there.
            self.timer = self.loop.call_later(self.background_timeout, self._background_expired)

    def _background_expired(self) -> None:
        if not self.finished and self.task is not None:
            logger.warning(
                "ASGI background work exceeded background_timeout=%ss; cancelling: %s",
                self.background_timeout,
                self.request_line,
            )
            self.task.cancel()

    async def _read_in_wsgi_thread(self) -> tuple[bytes, bool, bool]:
        future: asyncio.Future[tuple[bytes, bool, bool]] = self.loop.create_future()
        self.read_request = future
        self.notify()
        return await future

    def notify(self) -> None:
        """Tell the WSGI side that something changed."""
        if self.doorbell is not None:
            self.doorbell.put(None)
            return
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def on_left(self) -> None:
        """The WSGI side is done with this request (runs on the loop)."""
        self.left = True
        if self.phase is not _Phase.COMPLETE:
            self.phase = _Phase.DISCONNECTED
        for future in (self.disconnect, self.drain):
            if future is not None:
                _resolve(future)
        if self.read_request is not None:
            _resolve(self.read_request, (b"", False, True))

    # --- WSGI side (runs in the WSGI thread) -------------------------------------------

    def read_chunk(self) -> tuple[bytes, bool, bool]:
        """``(data, more_body, client_gone)`` for the next body chunk from wsgi.input."""
        remaining = self.remaining
        size = self.chunk_size if remaining is None else min(remaining, self.chunk_size)
        try:
            data = self.input.read(size)
        except Exception:  # each server has its own "client went away" error
            logger.debug("reading wsgi.input failed; treating as disconnect", exc_info=True)
            return b"", False, True
        if remaining is None:
            return data, bool(data), False
        if not data:
            return b"", False, True  # EOF before CONTENT_LENGTH: the client gave up
        remaining -= len(data)
        self.remaining = remaining
        return data, remaining > 0, False

    def wait(self, timeout: float | None = None) -> None:
        """Block until the app reports progress (or ``timeout`` passes)."""
        drain = self.drain
        if drain is not None and not self.chunks:
            self.drain = None
            self.call_on_loop(_resolve, drain)
        if self.doorbell is not None:
            try:
                self.doorbell.get(timeout=timeout)
            except queue.Empty:
                return
            request = self.read_request
            if request is not None:
                self.read_request = None
                self.loop.call_soon_threadsafe(_resolve, request, self.read_chunk())
            return
        loop = self.loop
        wake = loop.create_future()
        self.wake = wake
        try:
            if timeout is None:
                loop.run_until_complete(wake)
            else:
                loop.run_until_complete(asyncio.wait([wake], timeout=timeout))
        finally:
            self.wake = None

    def wait_progress(self) -> None:
        """``wait()`` bounded by the request deadline; raises ``RequestTimeout`` past it."""
        deadline = self.deadline
        if deadline is None:
            self.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(
                f"the ASGI app did not complete its response within request_timeout: "
                f"{self.request_line}"
            )
        self.wait(remaining)

    def wait_finished(self, timeout: float) -> bool:
        deadline = self.loop.time() + timeout
        while not self.finished:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return False
            self.wait(remaining)
        return True

    def call_on_loop(self, function: Callable[..., object], *args: Any) -> None:
        if self.shared:
            self.loop.call_soon_threadsafe(function, *args)
        else:
            function(*args)

    def take(self) -> bytes:
        return self.chunks.popleft()

    def cancel(self) -> None:
        if self.future is not None:
            self.future.cancel()  # thread-safe: cancels the task on the shared loop
        elif self.task is not None:
            self.task.cancel()


class _PathFile(io.FileIO):
    """The file named by ``http.response.pathsend``; closing it also ends the request.

    A real file object, so servers can ``sendfile()`` it through ``wsgi.file_wrapper``.
    """

    def __init__(self, path: str, on_close: Callable[[], None]) -> None:
        super().__init__(path, "rb")
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        super().close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


class _ResponseBody:
    """The WSGI response iterable: yields body chunks as the ASGI app sends them.

    ``close()`` (PEP 3333: called by the server once it is done, early or not) finishes
    the request: it lets background work run (bounded) after a complete response, or
    cancels the task when the client went away first.
    """

    __slots__ = ("_closed", "_ex", "_file")

    def __init__(self, exchange: _Exchange) -> None:
        self._ex = exchange
        self._file: io.FileIO | None = None
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        ex = self._ex
        while True:
            if ex.chunks:
                return ex.take()
            if ex.path is not None:
                return self._next_from_file(ex.path)
            phase = ex.phase
            if phase is _Phase.COMPLETE:
                raise StopIteration
            if phase is _Phase.REJECTED or ex.finished:
                # Raising makes the server abort the connection rather than reuse it
                # after a body that does not match its framing; the server logs it.
                raise incomplete_error(ex)
            ex.wait_progress()

    def _next_from_file(self, path: str) -> bytes:
        ex = self._ex
        if self._file is None:
            self._file = io.FileIO(path, "rb")
        data = self._file.read(ex.chunk_size)
        expected = ex.expected
        if expected is not None:
            ex.sent += len(data)
            if ex.sent > expected or (not data and ex.sent < expected):
                raise InvalidResponse(
                    f"http.response.pathsend file {path!r} does not match "
                    f"its Content-Length {expected}"
                )
        if data:
            return data
        self._file.close()
        ex.path = None
        raise StopIteration

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        finish_exchange(self._ex)


def incomplete_error(ex: _Exchange) -> Exception:
    """The exception that reports a response the app failed to complete."""
    if ex.error is not None:
        return ex.error
    if ex.invalid is not None:
        return ex.invalid
    if ex.phase is _Phase.AWAITING_START:
        return RuntimeError(f"ASGI app returned without sending a response: {ex.request_line}")
    return RuntimeError(f"ASGI app returned without completing the response: {ex.request_line}")


def finish_exchange(ex: _Exchange) -> None:
    """End a request from the WSGI side: background work or cancellation, then cleanup."""
    if not ex.finished:
        if ex.phase is _Phase.COMPLETE:
            if ex.shared:
                # The shared loop finishes background work on its own (bounded by a timer).
                ex.call_on_loop(ex.on_left)
                return
            if not ex.wait_finished(ex.background_timeout):
                logger.warning(
                    "ASGI background work exceeded background_timeout=%ss; cancelling: %s",
                    ex.background_timeout,
                    ex.request_line,
                )
                ex.cancel()
        else:
            ex.call_on_loop(ex.on_left)
            ex.cancel()
        if not ex.wait_finished(_CANCEL_GRACE):
            logger.error("ASGI task ignored cancellation; abandoning it: %s", ex.request_line)
    ex.call_on_loop(ex.on_left)
    loop = ex.loop
    if isinstance(loop, TaskLoop) and loop.scheduled != ex.mark:
        loop.run_ready()  # thread mode: let what the request spawned start now


# --- the adapter ------------------------------------------------------------------------

_LIVE: weakref.WeakSet[ASGIToWSGI] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # _loops forgets the parent's loops; the parent's lifespan state (and the task that
    # owned it) stayed with them, so a child runs its own startup.
    for adapter in list(_LIVE):
        adapter._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit() -> None:
    for adapter in list(_LIVE):
        adapter.close()


# Close (lifespan shutdown) at interpreter exit, before concurrent.futures shuts its
# thread pools down: threading's exit hooks run in reverse order and before atexit, and
# shutdown handlers often use run_in_executor (Django's sync_to_async, Starlette's
# threadpool). concurrent.futures.thread is imported above, so its hook runs after ours.
_register_threading_atexit = getattr(threading, "_register_atexit", None)
if _register_threading_atexit is not None:
    _register_threading_atexit(_close_at_exit)
else:  # pragma: no cover - interpreters without the hook
    atexit.register(_close_at_exit)


def _require_seconds(name: str, value: object) -> None:
    # Seconds may be fractional, so this is not _interface.require_int.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"ASGIToWSGI({name}={value!r}): expected a number of seconds (int or float), "
            f"got {type(value).__name__}; pass e.g. {name}=30.0"
        )
    if not value > 0:
        raise ValueError(f"ASGIToWSGI({name}={value!r}): must be positive")


class _State(Enum):
    OPEN = auto()
    CLOSED = auto()


class ASGIToWSGI:
    """A WSGI application that runs an ASGI application.

    ``ASGIToWSGI(asgi_app)`` can be served by any PEP 3333 server::

        application = ASGIToWSGI(get_asgi_application())
        # gunicorn -k gthread --threads 8 mysite.wsgi:application

    Options:

    * ``loop_mode="thread"`` (default): each WSGI worker thread gets its own event
      loop, created on its first request; the request runs in that thread with no
      hand-off, and a response that needs no real I/O costs no event-loop turn at
      all, which makes it the fast choice (about a tenth of a2wsgi's overhead). Choose it
      for fixed thread pools (gunicorn sync/gthread, waitress, uWSGI threads) when the
      app keeps no loop-bound resource shared across threads. Lifespan runs once per
      loop, so startup state (a client, a pool) exists once per thread. Tasks the app
      spawns and leaves running only progress while that thread's loop runs for a
      request, and are cancelled (with a warning) when the loop closes. The server
      must iterate and close a response in the thread that called the app, as
      gunicorn, uWSGI, mod_wsgi, waitress and wsgiref do.
    * ``loop_mode="shared"``: one background loop thread per process; WSGI threads
      wait on it. Choose it when the app's resources are bound to one loop (an async
      DB pool created in lifespan and shared by all requests), when fire-and-forget
      tasks must keep running, or for servers that start a thread per request (in
      thread mode each such thread would build, start up and retire its own loop).
      Costs two thread hops per request.
    * ``lifespan="auto"|"on"|"off"``: "auto" runs the lifespan protocol and carries on
      (one info log) if the app does not support it (it raises before
      ``lifespan.startup.complete`` or answers with HTTP messages); "on" treats that as
      a failure. A failed startup is logged and every request is answered 500
      (``start()`` raises ``LifespanStartupFailed`` instead). ``lifespan_timeout``
      bounds startup/shutdown.
    * ``background_timeout``: seconds that work after the final body message (e.g.
      Starlette ``BackgroundTask``) may run once the response is complete before it is
      cancelled. In thread mode it runs inside the iterable's ``close()``.
    * ``chunk_size``: the most request-body bytes read per ``http.request`` message
      (and per block of a ``pathsend`` file).
    * ``request_timeout`` (off by default): seconds until the response must be complete.
      Past it the app is cancelled and the request answered 504, or, once the head is
      out, the iterable raises ``RequestTimeout`` so the server aborts the connection.

    Responses are framed here (``_framing.py``), because WSGI servers trust the app's:
    no body for HEAD, 204 and 304, one digits-only Content-Length counted against the
    body, bytes-only bodies. An app error before the head (framing or an exception)
    reaches the WSGI server as the exception itself; after it, the iterable raises.

    Body chunks the app sends are handed to the server as they come; an app that
    gets 16 chunks ahead of the server is paused in ``send()`` until it catches up.
    ``receive()`` after the body waits until the response ends, then reports
    ``http.disconnect`` (WSGI tells us about a gone client no sooner); ``send()``
    after the server closed the response raises ``ClientDisconnected``.

    Startup happens lazily before the first request. To start eagerly and fail fast,
    and to shut down cleanly, use gunicorn hooks in ``gunicorn.conf.py``::

        def post_worker_init(worker):  # runs in the worker process, in its main thread
            worker.wsgi.start()
        def worker_exit(server, worker):
            worker.wsgi.close()

    (``start()`` in thread mode starts the calling thread's loop only; it is the one
    serving requests under the sync worker.) ``close()`` also runs at interpreter
    exit, and the adapter is a context manager.
    """

    def __init__(
        self,
        asgi_app: ASGIApp | ASGI2App,
        *,
        loop_mode: LoopMode = "thread",
        lifespan: LifespanMode = "auto",
        lifespan_timeout: float = 60.0,
        background_timeout: float = 30.0,
        chunk_size: int = 64 * 1024,
        request_timeout: float | None = None,
    ) -> None:
        require_interface(asgi_app, "asgi", "ASGIToWSGI")
        if loop_mode not in ("thread", "shared"):
            raise ValueError(f"loop_mode must be 'thread' or 'shared', not {loop_mode!r}")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        require_int(chunk_size, "chunk_size", "ASGIToWSGI", unit="bytes", minimum=1)
        _require_seconds("lifespan_timeout", lifespan_timeout)
        _require_seconds("background_timeout", background_timeout)
        if request_timeout is not None:
            _require_seconds("request_timeout", request_timeout)
        self.app: ASGIApp = cast(ASGIApp, guarantee_single_callable(asgi_app))  # type: ignore[no-untyped-call]
        self.app = thread_sensitive_if_django(self.app)  # Django's sync work: per WSGI thread
        self.request_timeout = request_timeout
        self.loop_mode = loop_mode
        self.lifespan = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.background_timeout = background_timeout
        self.chunk_size = chunk_size
        self._state = _State.OPEN
        self._shared = loop_mode == "shared"
        self._settings = _Settings(self._shared, chunk_size, background_timeout)
        self._threads: PerThreadLoops[_LoopContext] = PerThreadLoops(
            self._new_loop_context, self._retire_loop_context
        )
        self._shared_loop = SharedLoop(name="asgi-to-wsgi-loop")
        # "off" once the app has shown it does not support lifespan, so that loops
        # created later (thread mode) do not ask again.
        self._lifespan_mode: LifespanMode = lifespan
        self._report_lock = threading.Lock()
        self._shared_lock = threading.Lock()
        self._shared_lifespan = self._new_lifespan()
        _LIVE.add(self)

    def _new_lifespan(self) -> _Lifespan:
        return _Lifespan(
            self.app, self._lifespan_mode, self.lifespan_timeout, self._lifespan_unsupported
        )

    def _lifespan_unsupported(self, error: BaseException | None) -> None:
        with self._report_lock:
            if self._lifespan_mode == "off":
                return
            self._lifespan_mode = "off"
        if error is None or isinstance(error, _LifespanUnsupported):
            reason = f" ({error})" if error is not None else ""
        else:
            reason = f" ({type(error).__name__}: {error})"
        logger.info("ASGI app does not support lifespan; serving it without%s", reason)

    def _forget_after_fork(self) -> None:
        self._report_lock = threading.Lock()
        self._shared_lock = threading.Lock()
        self._shared_lifespan = self._new_lifespan()

    # --- loops and lifespan ------------------------------------------------------------

    def _new_loop_context(self, loop: TaskLoop) -> _LoopContext:
        return _LoopContext(loop, self._new_lifespan())

    def _retire_loop_context(self, context: _LoopContext) -> None:
        loop = context.loop
        if loop.is_closed():
            return
        if loop.is_running():  # pragma: no cover - close() while a request is in flight
            logger.warning("close(): a thread's loop is still serving a request; leaving it")
            return
        try:
            loop.run_until_complete(context.lifespan.shutdown())
        finally:
            leftover = close_loop(loop, _CANCEL_GRACE)
        if leftover:
            # A per-thread loop only runs while its thread serves a request, so tasks
            # that outlive their request (fire-and-forget create_task) may never have run.
            logger.warning(
                "%d task(s) outlived their request on a per-thread loop and were cancelled; "
                "await them, use a BackgroundTask, or use loop_mode='shared'",
                leftover,
            )

    def _thread_context(self) -> _LoopContext:
        if asyncio._get_running_loop() is not None:
            # Checked before any coroutine exists, so none is left "never awaited".
            raise RuntimeError(
                "ASGIToWSGI(loop_mode='thread') was called from a thread that is running "
                "an event loop (an async test, a notebook); call it from a WSGI server "
                "thread (e.g. await asyncio.to_thread(...)), or use loop_mode='shared'"
            )
        context = self._threads.current()
        if context.lifespan.phase is _LifespanPhase.NOT_STARTED:
            context.loop.run_until_complete(context.lifespan.startup())
        return context

    def _shared_ready(self) -> _Lifespan:
        lifespan = self._shared_lifespan
        if lifespan.phase is _LifespanPhase.NOT_STARTED:
            with self._shared_lock:
                if lifespan.phase is _LifespanPhase.NOT_STARTED:
                    self._shared_loop.run(lifespan.startup())
        return lifespan

    def start(self) -> None:
        """Start eagerly: create this thread's (or the shared) loop and run lifespan startup.

        Raises ``LifespanStartupFailed`` when startup fails.
        """
        if self._state is _State.CLOSED:
            raise RuntimeError("ASGIToWSGI.start() after close()")
        lifespan = self._shared_ready() if self._shared else self._thread_context().lifespan
        if lifespan.phase is _LifespanPhase.FAILED:
            raise LifespanStartupFailed(lifespan.failure)

    def close(self) -> None:
        """Run lifespan shutdown and close every loop this adapter created. Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        _LIVE.discard(self)
        self._threads.close_all()
        if self._shared_loop.started:
            try:
                self._shared_loop.run(self._shared_lifespan.shutdown(), self.lifespan_timeout + 10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                logger.exception("ASGI lifespan shutdown on the shared loop failed")
            finally:
                self._shared_loop.stop(_CANCEL_GRACE)

    def __enter__(self) -> ASGIToWSGI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self._state is _State.CLOSED:
            logger.error("request after ASGIToWSGI.close(); answering 503")
            return _plain_response(start_response, "503 Service Unavailable", "Unavailable")
        if self._shared:
            lifespan = self._shared_ready()
            loop: asyncio.AbstractEventLoop = self._shared_loop.get()
            context = None
        else:
            context = self._thread_context()
            lifespan = context.lifespan
            loop = context.loop
        if lifespan.phase is not _LifespanPhase.READY:
            logger.error("ASGI lifespan startup failed; answering 500: %s", lifespan.failure)
            return _plain_response(
                start_response, "500 Internal Server Error", "Internal Server Error"
            )
        try:
            scope = http_scope(
                environ,
                state=lifespan.state.copy(),
                extensions={"http.response.pathsend": {}},
            )
        except ScopeError as exc:
            logger.info("bad request: %s", exc)
            return _plain_response(start_response, "400 Bad Request", "Bad Request")
        ex = _Exchange(environ, scope, loop, self._settings)
        coro = ex.run(self.app, scope)
        if context is not None:
            ex.mark = context.loop.scheduled
            ex.task = context.loop.start_task(coro)
        else:
            ex.future = asyncio.run_coroutine_threadsafe(coro, loop)

        if self.request_timeout is not None:
            ex.deadline = time.monotonic() + self.request_timeout
        try:
            while ex.phase is _Phase.AWAITING_START and not ex.finished:
                ex.wait_progress()
        except RequestTimeout as exc:
            finish_exchange(ex)  # cancels the task
            logger.warning("%s; answering 504", exc)
            return _plain_response(start_response, "504 Gateway Timeout", "Gateway Timeout")
        except BaseException:  # KeyboardInterrupt, SystemExit, a broken loop: no orphans
            finish_exchange(ex)
            raise

        phase = ex.phase
        if phase is _Phase.REJECTED or (ex.finished and phase is not _Phase.COMPLETE):
            # Nothing has reached the server yet: it gets the app's own exception, so it
            # answers 500 and logs it, and enclosing WSGI apps and tracers see it.
            error = incomplete_error(ex)
            finish_exchange(ex)
            logger.debug("ASGI app failed before the response started: %s", ex.request_line)
            raise error

        if ex.finished and ex.phase is _Phase.COMPLETE and ex.path is None:
            # The whole response is known and nothing runs after it: a plain list.
            if context is not None and context.loop.scheduled != ex.mark:
                context.loop.run_ready()  # let what the request spawned start now
            start_response(ex.status, ex.headers)
            return list(ex.chunks)

        body = _ResponseBody(ex)
        if ex.phase is _Phase.COMPLETE and ex.path is not None and not ex.chunks:
            file_wrapper = environ.get("wsgi.file_wrapper")
            if file_wrapper is not None:
                path = ex.path
                try:
                    file = _PathFile(path, body.close)
                except OSError:
                    body.close()
                    logger.exception("http.response.pathsend: cannot open %r", path)
                    return _plain_response(
                        start_response, "500 Internal Server Error", "Internal Server Error"
                    )
                size = os.fstat(file.fileno()).st_size
                if ex.expected is not None and size != ex.expected:
                    file.close()  # which also ends the request
                    raise InvalidResponse(
                        f"http.response.pathsend file {path!r} has {size} bytes, "
                        f"not its Content-Length {ex.expected}"
                    )
                try:
                    start_response(ex.status, ex.headers)
                except BaseException:
                    file.close()  # which also ends the request
                    raise
                return cast(Iterable[bytes], file_wrapper(file, self.chunk_size))
        self._start(start_response, ex, body)
        return body

    @staticmethod
    def _start(start_response: StartResponse, ex: _Exchange, body: _ResponseBody) -> None:
        try:
            start_response(ex.status, ex.headers)
        except BaseException:  # the server refused the head: end the request here
            body.close()
            raise
