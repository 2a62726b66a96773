"""One ``ASGIToWSGI`` request: the ASGI side (``receive``/``send``, on the loop) and the
WSGI side's view of it (``wait``, ``take``, ``finish``, in the WSGI thread).

Its state is one machine, ``State``, written only by the loop side (except through
``on_left``, which the WSGI side schedules onto the loop):

    AWAITING_START --start--> STREAMING --body, more--> STREAMING
    STREAMING --last body or pathsend--> COMPLETE (the app may still run: background work)
    AWAITING_START / STREAMING --framing error--> REJECTED
    any running state --the WSGI side ends the request--> GONE
    the app returns: COMPLETE --> DONE; any other running state --> FAILED

The loop side writes chunks (or the file path) before it moves the state on, so the WSGI
side reads the state first and the chunks after it. Where the app runs (the WSGI
thread's own loop or the shared loop) is the ``Link``'s business, never asked here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from enum import Enum, auto
from typing import Any, NoReturn

from bridge._a2w_runners import Link
from bridge._framing import content_length, has_no_body
from bridge._http import ClientDisconnected, InvalidResponse
from bridge._scope import early_hint_headers, response_head
from bridge._types import ASGIApp, Environ, Message, Scope

logger = logging.getLogger("bridge.asgi_to_wsgi")

# A sending app is paused once this many body bytes, or this many chunks, wait for the
# WSGI server (bytes bound the memory; the count bounds the per-chunk overhead of tiny
# chunks). Each pause is a hand-off between threads in shared mode, a loop pass in thread
# mode: the wider the window, the more chunks go over per hand-off.
MAX_BUFFERED_BYTES = 2 * 1024 * 1024
MAX_BUFFERED_CHUNKS = 64
# ... and resumed once the server has taken all of it (the last chunk is then still
# being written, so the app refills the buffer meanwhile). Resuming at half, as before,
# made a hand-off between threads per half-window in shared mode instead of one per
# window, which cost a gunicorn worker more than the overlap gained (thread mode only
# resumes the app once the buffer is empty anyway).
_LOW_WATER = 0
_LOW_WATER_BYTES = 0
# How long a cancelled task may take to unwind before it is abandoned (and logged).
_CANCEL_GRACE = 5.0


class RequestTimeout(TimeoutError):
    """The ASGI app did not complete its response within ``request_timeout``."""


class State(Enum):
    """Where one request is (see the module docstring for the transitions)."""

    # Members are singletons compared by identity; the C-level identity hash keeps the
    # _SEND lookup off Enum's Python-level __hash__ on the per-message path.
    __hash__ = object.__hash__

    AWAITING_START = auto()  # the app runs; no head yet
    STREAMING = auto()  # head accepted; body under way
    COMPLETE = auto()  # the whole response accepted; the app still runs
    REJECTED = auto()  # the app broke HTTP framing: 500 before the head, abort after
    GONE = auto()  # the WSGI side ended the request while the app still ran
    DONE = auto()  # the app returned after a whole response
    FAILED = auto()  # the app returned (or raised) without a whole response


# Module-level names for the members, used everywhere below: ``State.X`` runs the Enum
# metaclass's Python code (over 100 ns a lookup), and a request reads states a dozen times.
AWAITING_START = State.AWAITING_START
STREAMING = State.STREAMING
COMPLETE = State.COMPLETE
REJECTED = State.REJECTED
GONE = State.GONE
DONE = State.DONE
FAILED = State.FAILED

ENDED = frozenset({DONE, FAILED})

# (state, message type, more_body) -> next state. Anything missing is an app error.
_SEND: dict[tuple[State, str, bool], State] = {
    (AWAITING_START, "http.response.start", False): STREAMING,
    (STREAMING, "http.response.body", True): STREAMING,
    (STREAMING, "http.response.body", False): COMPLETE,
    (STREAMING, "http.response.pathsend", False): COMPLETE,
}


class _Body(Enum):
    """The request body, as ``receive()`` hands it out."""

    EMPTY = auto()  # no request body: the first receive() says so, once
    READING = auto()  # chunks still to read from wsgi.input
    DONE = auto()  # everything delivered (or the client went away)


_EMPTY = _Body.EMPTY
_READING = _Body.READING
_BODY_DONE = _Body.DONE

_GONE_READ: tuple[bytes, bool, bool] = (b"", False, True)


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


def _too_long(expected: int) -> InvalidResponse:
    return InvalidResponse(f"response body longer than its Content-Length {expected}")


def _too_short(sent: int, expected: int) -> InvalidResponse:
    return InvalidResponse(
        f"response body ended after {sent} of its Content-Length {expected} bytes"
    )


# (status, *header pairs) of a response head -> its WSGI status line, headers and
# Content-Length. Most apps answer with the same few heads over and over; bounded in
# entries and in the bytes of each key, and started over when full.
_HEADS: dict[tuple[Any, ...], tuple[str, tuple[tuple[str, str], ...], int | None]] = {}
HEAD_MEMO_ENTRIES = 256
HEAD_MEMO_KEY_BYTES = 4096


def _response_head(message: Message) -> tuple[str, list[tuple[str, str]], int | None]:
    """``response_head()`` and ``content_length()`` of an ``http.response.start``, from
    the memo when the same head was seen before. Raises ``InvalidResponse`` as they do."""
    status = message.get("status")
    raw = message.get("headers", ())
    key = None
    # An exact int (200.0 == 200 would hit) and a list or tuple (iterating anything
    # else could consume it); unhashable pairs (lists, bytearray) just miss.
    if type(status) is int and (type(raw) is list or type(raw) is tuple):
        try:
            key = (status, *raw)
            head = _HEADS.get(key)
        except TypeError:
            key = head = None
        if head is not None:
            return head[0], list(head[1]), head[2]
    line, headers = response_head(message)
    headers, expected = content_length(headers)
    # response_head() accepted every pair: each is a (bytes name, bytes value).
    if key is not None and sum(len(name) + len(value) for name, value in raw) <= (
        HEAD_MEMO_KEY_BYTES
    ):
        if len(_HEADS) >= HEAD_MEMO_ENTRIES:
            _HEADS.clear()
        _HEADS[key] = (line, tuple(headers), expected)
    return line, headers, expected


class Settings:
    """The adapter options a request needs, gathered once per adapter."""

    __slots__ = ("background_timeout", "chunk_size")

    def __init__(self, chunk_size: int, background_timeout: float) -> None:
        self.chunk_size = chunk_size
        self.background_timeout = background_timeout


class Exchange:
    """One request between an ASGI app and the WSGI server (see the module docstring)."""

    # Defaults live on the class: most requests never touch most of these, and not
    # assigning them per request is measurably cheaper on the hot path.
    status = ""
    headers: list[tuple[str, str]] = []  # noqa: RUF012 - replaced, never mutated
    path: str | None = None  # the http.response.pathsend file
    error: Exception | None = None  # what the app raised, or why it failed
    invalid: Exception | None = None  # the framing error that rejected the response
    no_body = False  # HEAD, 204 or 304: body messages are accepted and dropped
    expected: int | None = None  # the response's Content-Length
    sent = 0  # body bytes accepted so far
    queued_bytes = 0  # streamed body bytes queued for the WSGI side (written on the loop side)
    taken_bytes = 0  # body bytes the WSGI side has taken (written on the WSGI side)
    deadline: float | None = None  # time.monotonic() by which the response must end
    timer: asyncio.TimerHandle | None = None  # bounds work after the response (shared loop)
    drain: asyncio.Future[None] | None = None  # send() waits here for the server
    disconnect: asyncio.Future[None] | None = None  # receive() waits here for the end
    remaining: int | None = 0  # request body bytes still to read (None: to EOF)
    early_hints: Callable[[list[tuple[str, str]]], object] | None = None  # the server's

    body = _EMPTY  # the request body, as receive() hands it out
    input: Any = None  # wsgi.input, when there is a body to read
    # Body chunks read ahead in the WSGI thread, for the next receive() calls (only
    # read_body() appends, only receive() takes, and never at the same time).
    ahead: deque[tuple[bytes, bool, bool]] | None = None

    def __init__(self, environ: Environ, scope: Scope, link: Link, settings: Settings) -> None:
        self.scope = scope
        self.link = link
        self.settings = settings
        self.state = AWAITING_START
        self.chunks: deque[bytes] = deque()
        if "http.response.early_hint" in scope["extensions"]:
            self.early_hints = environ["wsgi.early_hints"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            # ASCII digits only: int() would also take "-5" (read to EOF) or non-ASCII digits.
            length = length.strip()
            remaining = int(length) if length.isascii() and length.isdigit() else 0
            if remaining:
                self.remaining = remaining
                self.input = environ["wsgi.input"]
                self.body = _READING
        elif environ.get("wsgi.input_terminated"):
            # Chunked upload: the server ends the stream at the end of the body.
            self.remaining = None
            self.input = environ["wsgi.input"]
            self.body = _READING
        # Else no body: PEP 3333 says not to read past what was declared.

    @property
    def chunk_size(self) -> int:
        return self.settings.chunk_size

    @property
    def background_timeout(self) -> float:
        return self.settings.background_timeout

    @property
    def request_line(self) -> str:
        """``"METHOD /path"`` for log messages."""
        return f"{self.scope.get('method')} {self.scope.get('path')}"

    # --- ASGI side (runs on the event loop) ----------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """The app's task: the app called with this request's scope, receive and send."""
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected as exc:
            # Our own send() telling the app the client left, and the app letting it
            # propagate: the normal end of an abandoned response, not an app failure.
            self.error = exc
            logger.debug("client went away: %s", self.request_line, exc_info=exc)
        except Exception as exc:
            self.error = exc
            if self.state is COMPLETE or self.state is GONE:
                # The response is over, so no WSGI frame is left to report this.
                logger.error(
                    "ASGI app raised after its response ended (complete or client gone): %s",
                    self.request_line,
                    exc_info=exc,
                )
        finally:
            # The app returned: COMPLETE -> DONE, any other state -> FAILED. (Inline, not
            # a method: this runs for every request.)
            state = self.state
            if state is COMPLETE:
                self.state = DONE
            else:
                if self.error is None and self.invalid is None:
                    what = "sending a" if state is AWAITING_START else "completing the"
                    self.error = RuntimeError(
                        f"ASGI app returned without {what} response: {self.request_line}"
                    )
                self.state = FAILED
            if self.timer is not None:
                self.timer.cancel()
            self.link.notify_end()

    async def receive(self) -> Message:
        if self.state is GONE:
            return _disconnect()  # the WSGI side is done with this request
        body = self.body
        if body is _EMPTY:
            self.body = _BODY_DONE
            return {"type": "http.request", "body": b"", "more_body": False}
        if body is _READING:
            ahead = self.ahead
            if ahead:
                data, more, gone = ahead.popleft()
            else:
                data, more, gone = await self.link.in_wsgi_thread(self.read_body, _GONE_READ)
            if gone:
                self.body = _BODY_DONE
                return _disconnect()
            if not more:
                self.body = _BODY_DONE
            return {"type": "http.request", "body": data, "more_body": more}
        if self.state is STREAMING or self.state is AWAITING_START:
            # Body consumed, response still running: the client may yet disconnect, and
            # we only learn whether when the response ends (WSGI reports nothing sooner).
            if self.disconnect is None:
                self.disconnect = self.link.loop.create_future()
            await asyncio.shield(self.disconnect)
        return _disconnect()

    async def send(self, message: Message) -> None:
        # The two messages of almost every response, each in its expected state, take
        # the straight paths here; everything else (and every error) goes through
        # _send(), which is the full state machine.
        kind = message["type"]
        state = self.state
        if kind == "http.response.body":
            if state is STREAMING:
                body = message.get("body", b"")
                if type(body) is not bytes:
                    await self._send(message)
                    return
                if message.get("more_body", False):
                    # One chunk of a streamed body (a download sends thousands).
                    if body and not self.no_body:
                        self._take(body)
                    if (
                        len(self.chunks) >= MAX_BUFFERED_CHUNKS
                        or self.queued_bytes - self.taken_bytes >= MAX_BUFFERED_BYTES
                    ):
                        await self._pause()
                        return
                    self.link.notify()
                    return
                if not self.no_body:
                    # _take() spelled out: the last body message of every response.
                    expected = self.expected
                    if expected is None:
                        if body:
                            self.chunks.append(body)
                    else:
                        sent = self.sent + len(body)
                        if sent > expected:
                            self._reject(_too_long(expected))
                        self.sent = sent
                        if body:
                            self.chunks.append(body)
                        if sent < expected:
                            self._reject(_too_short(sent, expected))
                self.state = COMPLETE
                if self.disconnect is not None:
                    _resolve(self.disconnect)
                self.link.notify()
                return
        elif kind == "http.response.start" and state is AWAITING_START:
            try:
                self.status, self.headers, self.expected = _response_head(message)
            except InvalidResponse as exc:
                self._reject(exc)
            status = message["status"]
            if status == 200:
                # Only HEAD of a 200 has no body (has_no_body() spelled out).
                self.no_body = self.scope.get("method") == "HEAD"
            else:
                self.no_body = has_no_body(self.scope.get("method"), status)
            self.state = STREAMING
            self.link.notify()
            return
        await self._send(message)

    async def _send(self, message: Message) -> None:
        """``send()`` for any message in any state."""
        kind = message["type"]
        state = self.state
        if state is GONE:
            raise ClientDisconnected("the client went away before the response was complete")
        more = kind == "http.response.body" and bool(message.get("more_body", False))
        next_state = _SEND.get((state, kind, more))
        if next_state is None:
            if kind == "http.response.early_hint":
                await self._early_hint(message)
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} in response phase {state.name}")
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
                self._take(body)
            if (
                not more
                and not self.no_body
                and self.expected is not None
                and self.sent < self.expected
            ):
                self._reject(_too_short(self.sent, self.expected))
            self.state = next_state
            if not more:
                if self.disconnect is not None:
                    _resolve(self.disconnect)
            elif (
                len(self.chunks) >= MAX_BUFFERED_CHUNKS
                or self.queued_bytes - self.taken_bytes >= MAX_BUFFERED_BYTES
            ):
                await self._pause()
                return
            self.link.notify()
            return
        if kind == "http.response.start":
            try:
                self.status, self.headers, self.expected = _response_head(message)
            except InvalidResponse as exc:
                self._reject(exc)
            self.no_body = has_no_body(self.scope.get("method"), message["status"])
            self.state = next_state
            self.link.notify()
            return
        path = message.get("path")
        if not isinstance(path, str):
            raise RuntimeError(f"http.response.pathsend needs a str path, got {path!r}")
        if not self.no_body:
            self.path = path
        self.state = next_state
        if self.disconnect is not None:
            _resolve(self.disconnect)
        self.link.notify()

    async def _pause(self) -> None:
        """Backpressure: wait until the WSGI server has taken what we hold. The drain
        future exists before notify(), so a WSGI thread that already emptied the buffer
        sees it when it wakes and releases it."""
        drain = self.drain = self.link.loop.create_future()
        self.link.notify()
        await drain

    async def _early_hint(self, message: Message) -> None:
        # Only before the head, and only where the server can send a 103; else dropped.
        if self.state is not AWAITING_START or self.early_hints is None:
            return
        headers = early_hint_headers(message)
        if headers:
            # The server's socket is the WSGI thread's to write, before the head.
            await self.link.in_wsgi_thread(functools.partial(self.send_hint, headers), None)

    def _take(self, body: bytes) -> None:
        """Queue ``body`` for the WSGI side, counted against the declared length: bytes
        past it are never queued (the response is rejected instead)."""
        expected = self.expected
        if expected is not None:
            sent = self.sent + len(body)
            if sent > expected:
                self._reject(_too_long(expected))
            self.sent = sent
        self.queued_bytes += len(body)
        self.chunks.append(body)

    def _reject(self, error: Exception) -> NoReturn:
        """The app broke HTTP framing: the response is refused before its head reaches
        the server, or aborted after; ``send()`` raises ``error`` to the app."""
        self.invalid = error
        self.state = REJECTED
        self.link.notify()
        raise error

    def _bound_background(self) -> None:
        """Cancel work after the response once ``background_timeout`` has passed, where
        the loop runs it on its own (loop side, once the server closed the response)."""
        if self.state not in ENDED:
            loop = self.link.loop
            self.timer = loop.call_later(self.background_timeout, self._background_expired)

    def _background_expired(self) -> None:
        if self.state not in ENDED:
            logger.warning(
                "ASGI background work exceeded background_timeout=%ss; cancelling: %s",
                self.background_timeout,
                self.request_line,
            )
            self.link.cancel_on_loop()

    def on_left(self) -> None:
        """The WSGI side is done with this request (runs on the loop)."""
        if self.state not in ENDED:
            self.state = GONE
        for future in (self.disconnect, self.drain):
            if future is not None:
                _resolve(future)
        self.link.release()

    def _abandon(self) -> None:
        """The WSGI side ends a running request (runs on the loop): it leaves and the
        task is cancelled in one step, so the app meets the cancellation wherever it
        waits, not first the disconnect that leaving reports (as in thread mode)."""
        self.on_left()
        self.link.cancel_on_loop()

    # --- WSGI side (runs in the WSGI thread) -------------------------------------------

    def read_body(self) -> tuple[bytes, bool, bool]:
        """``read_chunk()``, and then, where the link asks for it, more chunks while
        under its ``read_ahead`` bytes in all (so at most ``chunk_size`` past it),
        kept for the next ``receive()`` calls: a link whose every call into the WSGI
        thread is a hand-off between threads (shared mode) then makes one per that
        many bytes, not one per chunk."""
        chunk = self.read_chunk()
        budget = self.link.read_ahead - len(chunk[0])
        if budget > 0 and chunk[1]:
            ahead = self.ahead
            if ahead is None:
                ahead = self.ahead = deque()
            more = True
            while more and budget > 0:
                later = self.read_chunk()
                ahead.append(later)
                budget -= len(later[0])
                more = later[1]
        return chunk

    def read_chunk(self) -> tuple[bytes, bool, bool]:
        """``(data, more_body, client_gone)`` for the next body chunk from wsgi.input."""
        remaining = self.remaining
        size = self.chunk_size if remaining is None else min(remaining, self.chunk_size)
        try:
            data = self.input.read(size)
        except Exception:  # each server has its own "client went away" error
            logger.debug("reading wsgi.input failed; treating as disconnect", exc_info=True)
            return _GONE_READ
        if remaining is None:
            return data, bool(data), False
        if not data:
            return _GONE_READ  # EOF before CONTENT_LENGTH: the client gave up
        remaining -= len(data)
        self.remaining = remaining
        return data, remaining > 0, False

    def send_hint(self, headers: list[tuple[str, str]]) -> None:
        """Have the server send a 103 with ``headers``."""
        assert self.early_hints is not None  # advertised only with it
        try:
            self.early_hints(headers)
        except Exception:  # advisory: the response itself reports a broken connection
            logger.debug("wsgi.early_hints failed; hint dropped", exc_info=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the app reports progress (or ``timeout`` passes)."""
        drain = self.drain
        if drain is not None and not self.chunks:
            self.drain = None
            self.link.call_on_loop(_resolve, drain)
        self.link.wait(timeout)

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

    def ended(self) -> bool:
        return self.state in ENDED

    def wait_ended(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.state not in ENDED:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait(remaining)
        return True

    def take(self) -> bytes:
        chunks = self.chunks
        chunk = chunks.popleft()
        # Counts the last chunk too, which queued_bytes does not (it never pauses): harmless,
        # what is still queued only reads less.
        taken = self.taken_bytes = self.taken_bytes + len(chunk)
        drain = self.drain
        if (
            drain is not None
            and len(chunks) <= _LOW_WATER
            and self.queued_bytes - taken <= _LOW_WATER_BYTES
        ):
            # The app refills the buffer while the server writes the chunk taken last
            # (in shared mode, on the other core), instead of after it is written.
            self.drain = None
            self.link.call_on_loop(_resolve, drain)
        return chunk

    def failure(self) -> Exception:
        """The exception that reports a response the app failed to complete."""
        if self.error is not None:
            return self.error
        if self.invalid is not None:
            return self.invalid
        return RuntimeError(  # pragma: no cover - FAILED always sets error
            f"ASGI app did not complete the response: {self.request_line}"
        )

    def finish(self) -> None:
        """End the request from the WSGI side: background work or cancellation, cleanup."""
        link = self.link
        state = self.state
        if state not in ENDED:
            if state is COMPLETE:
                if not link.let_run(self.ended, self.background_timeout, self._bound_background):
                    logger.warning(
                        "ASGI background work exceeded background_timeout=%ss; cancelling: %s",
                        self.background_timeout,
                        self.request_line,
                    )
                    link.cancel()
                    self._wait_cancelled()
            else:
                link.call_on_loop(self._abandon)
                self._wait_cancelled()
        link.call_on_loop(self.on_left)
        link.settle()

    def _wait_cancelled(self) -> None:
        if not self.wait_ended(_CANCEL_GRACE):
            logger.error("ASGI task ignored cancellation; abandoning it: %s", self.request_line)
