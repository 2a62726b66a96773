"""One ``ASGIToWSGI`` request: the ASGI side (``receive``/``send``, on the loop) and the
WSGI side's view of it (``wait``, ``take``, ``cancel``, in the WSGI thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from enum import Enum, auto
from typing import Any, NoReturn

from bridge._framing import content_length, has_no_body
from bridge._http import ClientDisconnected, InvalidResponse
from bridge._loops import TaskLoop
from bridge._scope import early_hint_headers, response_head
from bridge._types import ASGIApp, Environ, Message, Scope

logger = logging.getLogger("bridge.asgi_to_wsgi")

# A sending app is paused once this many body chunks wait for the WSGI server.
MAX_BUFFERED_CHUNKS = 16
# How long a cancelled task may take to unwind before it is abandoned (and logged).
_CANCEL_GRACE = 5.0


class RequestTimeout(TimeoutError):
    """The ASGI app did not complete its response within ``request_timeout``."""


# --- the response state machine --------------------------------------------------------


class Phase(Enum):
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
_SEND: dict[tuple[Phase, str, bool], Phase] = {
    (Phase.AWAITING_START, "http.response.start", False): Phase.STREAMING,
    (Phase.STREAMING, "http.response.body", True): Phase.STREAMING,
    (Phase.STREAMING, "http.response.body", False): Phase.COMPLETE,
    (Phase.STREAMING, "http.response.pathsend", False): Phase.COMPLETE,
}


class _Body(Enum):
    EMPTY = auto()  # no request body: the first receive() says so, once
    READING = auto()  # chunks still to read from wsgi.input
    DONE = auto()  # everything delivered (or the client went away)


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


# --- one request ------------------------------------------------------------------------


class Settings:
    """The adapter options a request needs, gathered once per adapter."""

    __slots__ = ("background_timeout", "chunk_size", "shared")

    def __init__(self, shared: bool, chunk_size: int, background_timeout: float) -> None:
        self.shared = shared
        self.chunk_size = chunk_size
        self.background_timeout = background_timeout


class Exchange:
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
    early_hints: Callable[[list[tuple[str, str]]], object] | None = None  # the server's
    hints: deque[list[tuple[str, str]]] | None = None  # 103s the WSGI thread has to send

    def __init__(
        self, environ: Environ, scope: Scope, loop: asyncio.AbstractEventLoop, settings: Settings
    ) -> None:
        self.scope = scope
        self.loop = loop
        self.shared = shared = settings.shared
        self.chunk_size = settings.chunk_size
        self.background_timeout = settings.background_timeout
        self.phase = Phase.AWAITING_START
        self.chunks: deque[bytes] = deque()
        if shared:
            self.doorbell = queue.SimpleQueue()
        self.input = environ["wsgi.input"]
        if "http.response.early_hint" in scope["extensions"]:
            self.early_hints = environ["wsgi.early_hints"]
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
            if self.phase is Phase.COMPLETE or self.phase is Phase.DISCONNECTED:
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
        if self.phase is Phase.STREAMING or self.phase is Phase.AWAITING_START:
            # Body consumed, response still running: the client may yet disconnect, and
            # we only learn whether when the response ends (WSGI reports nothing sooner).
            if self.disconnect is None:
                self.disconnect = self.loop.create_future()
            await asyncio.shield(self.disconnect)
        return _disconnect()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        phase = self.phase
        if phase is Phase.DISCONNECTED:
            raise ClientDisconnected("the client went away before the response was complete")
        more = kind == "http.response.body" and bool(message.get("more_body", False))
        next_phase = _SEND.get((phase, kind, more))
        if next_phase is None:
            if kind == "http.response.early_hint":
                self._early_hint(message)
                return
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
            elif len(self.chunks) >= MAX_BUFFERED_CHUNKS:
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

    def _early_hint(self, message: Message) -> None:
        # Only before the head, and only where the server can send a 103; else dropped.
        if self.phase is not Phase.AWAITING_START or self.early_hints is None:
            return
        headers = early_hint_headers(message)
        if headers:
            # Written by the WSGI thread (the server's socket is its to write), before
            # it moves on to the head: queued before the phase can change.
            if self.hints is None:
                self.hints = deque()
            self.hints.append(headers)
            self.notify()

    def _reject(self, error: Exception) -> NoReturn:
        """The app broke HTTP framing: the response is refused before its head reaches
        the server, or aborted after; ``send()`` raises ``error`` to the app."""
        self.invalid = error
        self.phase = Phase.REJECTED
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
        if self.phase is not Phase.COMPLETE:
            self.phase = Phase.DISCONNECTED
        for future in (self.disconnect, self.drain):
            if future is not None:
                _resolve(future)
        if self.read_request is not None:
            _resolve(self.read_request, (b"", False, True))

    # --- WSGI side (runs in the WSGI thread) -------------------------------------------

    def read_chunk(self) -> tuple[bytes, bool, bool]:
        """``(data, more_body, client_gone)`` for the next body chunk from wsgi.input."""
        if self.hints:  # a client may wait for its 103 before it sends the body
            self.send_hints()
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

    def send_hints(self) -> None:
        """Have the server send the 103s the app asked for so far (WSGI thread)."""
        hints, send = self.hints, self.early_hints
        if hints is None or send is None:
            return
        while hints:
            headers = hints.popleft()
            try:
                send(headers)
            except Exception:  # advisory: the response itself reports a broken connection
                logger.debug("wsgi.early_hints failed; hint dropped", exc_info=True)

    def cancel(self) -> None:
        if self.future is not None:
            self.future.cancel()  # thread-safe: cancels the task on the shared loop
        elif self.task is not None:
            self.task.cancel()


def incomplete_error(ex: Exchange) -> Exception:
    """The exception that reports a response the app failed to complete."""
    if ex.error is not None:
        return ex.error
    if ex.invalid is not None:
        return ex.invalid
    if ex.phase is Phase.AWAITING_START:
        return RuntimeError(f"ASGI app returned without sending a response: {ex.request_line}")
    return RuntimeError(f"ASGI app returned without completing the response: {ex.request_line}")


def finish_exchange(ex: Exchange) -> None:
    """End a request from the WSGI side: background work or cancellation, then cleanup."""
    if not ex.finished:
        if ex.phase is Phase.COMPLETE:
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
