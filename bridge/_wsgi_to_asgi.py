"""``WSGIToASGI``: a synchronous WSGI app behind any ASGI 3 server.

The app runs on a bounded thread pool; the event loop never blocks. The whole of a
request's traffic between the two sides goes through one ``_Exchange``:

- the loop reads the first body message itself (so a body that fits in one message
  needs no trip back to the loop) and submits the request to a worker;
- the worker runs the app and *posts* ASGI messages to the exchange's outbox, waking
  the loop only when it is waiting; a short response is usually posted whole before the
  loop wakes, so it costs one hop each way;
- the loop's pump sends what was posted; a worker a window (64 chunks or 4 MiB) ahead
  of the client waits (backpressure) until half of it has gone out, and a client that
  goes away (``http.disconnect``, ``send()`` raising, the task cancelled) aborts the
  exchange, which wakes the worker and makes its next post raise, so the app's
  iterable is closed in its own thread.

PEP 3333 rules live in ``_response`` and ``_environ``; this module only moves data.
The loop is asyncio's running loop, or under trio the stand-in in ``_trio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from typing import Any, Final, Protocol

from bridge._disconnect import DisconnectSignal
from bridge._environ import RequestRejected, build_environ
from bridge._http import (
    ClientDisconnected,
    InvalidResponse,
    invalid_value_reason,
    is_token,
    reason_phrase,
)
from bridge._input import BodyStream, BodyTooLarge
from bridge._interface import require_int, require_interface
from bridge._pool import Job, ThreadPool, default_pool
from bridge._response import (
    AWAITING_START,
    HEADERS_PENDING,
    HEADERS_SENT,
    FileWrapper,
    StartResponse,
    close_app_iterable,
)
from bridge._types import Message, Receive, Scope, Send, WSGIApp
from bridge._websocket_session import WebSocketServer

logger = logging.getLogger("bridge.wsgi_to_asgi")
_new: Final = object.__new__  # an instance without its __init__ (see _Exchange)

#: Body bytes received ahead of the app's reads before we stop listening for more.
_STASH_LIMIT: Final = 1 << 20
#: Response body bytes the app may post beyond what the server has taken before it
#: waits, whatever ``max_chunks_in_flight`` allows: big chunks cost memory, not hops.
#: Each wait is a round of thread hand-offs (on uvicorn pinned to one core, about six
#: context switches), so the window sets how often a fast download pays for one:
#: 4 MiB, 64 chunks of 64 KiB, took a 64 MiB download from ~690 switches to ~108 and
#: from 0.81-0.91x to 0.96-1.01x native in runs under load (512 KiB before); 2 MiB
#: measured 0.87-0.96x (~205 switches). A slow client's memory stays bounded by it.
_BYTES_IN_FLIGHT: Final = 4 * 1024 * 1024


class _End:
    """The worker's last post: the app is finished and its iterable closed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


_END: Final = _End(None)  # the usual end, shared: no object made per request


class _Waiter(Protocol):
    """What the loop awaits until a worker posts (an ``asyncio.Future[None]`` on asyncio)."""

    def done(self) -> bool: ...
    def set_result(self, result: None, /) -> None: ...
    def __await__(self) -> Generator[Any, None, None]: ...


class _Task(Protocol):
    def done(self) -> bool: ...
    def cancel(self) -> object: ...


class _Timer(Protocol):
    def cancel(self) -> object: ...


class _Loop(Protocol):
    """The part of ``asyncio.AbstractEventLoop`` an exchange uses: the running asyncio
    loop itself, or ``bridge._trio.TrioLoop`` under trio."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> object: ...
    def create_future(self) -> _Waiter: ...
    def create_task(self, coro: Coroutine[Any, Any, None]) -> _Task: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Timer: ...


def _trio_loop() -> _Loop:
    """No asyncio loop runs: the trio run's stand-in, or a clear error."""
    if "trio" in sys.modules:  # a running trio has been imported
        from bridge._trio import current_loop

        return current_loop()
    raise RuntimeError("WSGIToASGI must be called from a running asyncio or trio event loop")


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _to_thread(fn: Callable[[], object]) -> object:
    """Run a sync lifespan hook in a thread, on whichever loop runs us."""
    if _on_asyncio():
        return await asyncio.to_thread(fn)
    _trio_loop()  # a clear error unless trio runs
    from bridge._trio import to_thread

    return await to_thread(fn)


def _resolve(waiter: _Waiter) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _plain_response(
    status: int, text: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> list[Message]:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


async def _send_plain(
    send: Send, status: int, text: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    for message in _plain_response(status, text, extra):
        await send(message)


class _Exchange(StartResponse):
    """One request's traffic between the event loop and the worker running the app.

    It is also the response head (``start_response`` is its method): one object a
    request fewer, and no bound method held in a head to point back at it. The head's
    state is set up by the worker in :meth:`serve`; only the worker's side reads it.
    """

    __slots__ = (
        "_abort",
        "_answered",
        "_asked_for_body",
        "_body_complete",
        "_disconnected",
        "_head_only",
        "_held",
        "_lock",
        "_loop",
        "_outbox",
        "_pathsend",
        "_pull_gate",
        "_pulled",
        "_receive",
        "_receiver",
        "_receiving",
        "_returned",
        "_send",
        "_sent",
        "_space_gate",
        "_space_waiter",
        "_stash",
        "_stashed",
        "_unsent",
        "_unsent_bytes",
        "_waiter",
        "_watching",
        "_window",
    )

    # Positional for the adapter's call: keywords to a Python __init__ cost a dict per
    # request on the loop thread.
    def __init__(  # noqa: PLR0917
        self,
        loop: _Loop,
        receive: Receive,
        send: Send,
        body_complete: bool,
        asked_for_body: bool,
        head_only: bool,
        pathsend: bool,
        window: int,
    ) -> None:
        self._loop = loop
        self._window = window  # body chunks the app may run ahead of the client
        self._receive = receive
        self._send = send
        self._lock = threading.Lock()
        # The worker's wait for room (backpressure): a lock the worker holds from its
        # first wait on and acquires again to wait, which the loop releases once per
        # wait. One lock per exchange (made when backpressure first bites), where
        # Condition.wait() made a lock per wait. _space_waiter is the gate while the
        # worker waits on it (or is about to): what the loop must release.
        self._space_gate: threading.Lock | None = None
        self._space_waiter: threading.Lock | None = None
        # Lists, not deques: only appended to and swapped whole, and cheaper to make.
        self._outbox: list[Message | _End] = []
        # The worker's own list while it answers with a one-chunk list: posted with the
        # end, in one locked step and one wake-up (see serve()).
        self._held: list[Message] | None = None
        self._unsent = 0  # body messages posted and not yet sent
        self._unsent_bytes = 0  # their bytes
        self._waiter: _Waiter | None = None
        self._abort: ClientDisconnected | None = None
        # A waiting pull: a held lock the loop releases once it has put the next chunk
        # in _pulled (or the exchange is aborted). Cheaper than a concurrent.futures
        # Future, whose condition, waiter list and callbacks a chunk does not need.
        self._pull_gate: threading.Lock | None = None
        self._pulled: tuple[bytes, bool] | None = None
        self._body_complete = body_complete
        self._asked_for_body = asked_for_body  # receive() was called for the body
        # Body received while no pull was waiting; made for the first such chunk (most
        # requests have none).
        self._stash: deque[bytes] | None = None
        self._stashed = 0  # bytes in the stash
        self._receiver: _Task | None = None
        # A receiver task runs and will serve a waiting pull (read and written under
        # the lock): while it does, a pull needs no wake-up of the loop.
        self._receiving = False
        self._head_only = head_only
        self._pathsend = pathsend
        self._sent = 0  # body bytes posted
        # The view asked about disconnects: keep receiving for them (None: exchange over).
        self._watching: bool | None = False
        self._answered = False  # the response's last message went out
        # environ["bridge.disconnected"]. Made here, before the worker can exist, so the
        # loop always finds it: made later it needed a locked step and a "left before"
        # flag for a client leaving while the job waits (~5k instructions a request).
        # DisconnectSignal.__init__'s fields, set here without running it: the class
        # call and its frame cost more than the stores (callgrind: ~0.6k instructions a
        # request, on the loop thread). Keep in step with that __init__.
        signal = self._disconnected = _new(DisconnectSignal)
        signal._listen = self._ask_to_watch
        signal._lock = self._lock
        signal._set = False
        signal._event = None
        signal._callbacks = None

    # -- worker side ---------------------------------------------------------------

    def _wake(self, waiter: _Waiter) -> None:
        try:
            self._loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:  # the loop is closed: nobody is left to send to
            self._abort = ClientDisconnected("the server's event loop has closed")

    def _post(self, message: Message, *, body: bool, wake: bool = True) -> None:
        held = self._held
        if held is not None:
            held.append(message)
            return
        gate = None
        with self._lock:
            if self._abort is not None:
                raise self._abort
            self._outbox.append(message)
            if wake:
                waiter, self._waiter = self._waiter, None
            else:
                waiter = None
            if body:
                self._unsent += 1
                self._unsent_bytes += len(message["body"])
                if self._unsent > self._window or self._unsent_bytes > _BYTES_IN_FLIGHT:
                    # Too far ahead of the client: wait, decided in the same locked
                    # step as the post, so the pump's release cannot come in between.
                    gate = self._space_gate
                    if gate is None:
                        gate = self._space_gate = threading.Lock()
                        gate.acquire()
                    self._space_waiter = gate
        if waiter is not None:
            self._wake(waiter)
        if gate is not None:
            gate.acquire()  # released once: by the pump at low water, or by abort()
            if self._abort is not None:
                raise self._abort

    def _post_end(self, error: BaseException | None, whole: list[Message] | None = None) -> None:
        """Post the end, after what the worker held back, or after ``whole``: a whole
        response (no body message with more to come) that was never held."""
        # The call is over: drop the signal's reference back to the exchange (listening
        # now would start nothing). With it, an exchange and all it holds, the server's
        # receive and send included, sat in a reference cycle that only the cyclic
        # collector could free. Done before the post, so that nothing is left for the
        # worker once the loop has the end.
        self._disconnected._listen = None  # its _detach(), without a call
        held, self._held = self._held, None
        with self._lock:
            if whole is not None:
                self._outbox += whole  # nothing the pump counts: no look at each message
            elif held:
                for message in held:
                    if message["type"] == "http.response.body" and message["more_body"]:
                        self._unsent += 1  # the pump counts these as it sends them
                        self._unsent_bytes += len(message["body"])
                self._outbox += held
            self._outbox.append(_END if error is None else _End(error))
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _send_head(self) -> None:
        self.mark_sent()
        # No wake-up for the head alone: a post with body (or the end) follows at once,
        # and one wake-up for both saves the loop a round.
        self._post(
            {"type": "http.response.start", "status": self.status, "headers": self.headers},
            body=False,
            wake=False,
        )

    def write(self, data: bytes) -> None:
        """The ``write()`` callable of PEP 3333, and the path of every body chunk."""
        if self._returned:
            raise RuntimeError("write() called after the WSGI app's call returned")
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if not data:
            return
        if self.phase is not HEADERS_SENT:
            self._send_head()
        if self._head_only:
            return
        limit = self.content_length
        if limit is not None and self._sent + len(data) > limit:
            logger.error(
                "WSGI app sent more than its Content-Length of %d bytes; the excess was dropped",
                limit,
            )
            data = data[: limit - self._sent]
            if not data:
                return
        self._sent += len(data)
        if limit is not None and self._sent == limit:
            # The declared length is reached: this is the last chunk whatever the app
            # does next, so say so now instead of in a separate empty message later.
            self._post({"type": "http.response.body", "body": data, "more_body": False}, body=False)
            return
        self._post({"type": "http.response.body", "body": data, "more_body": True}, body=True)

    def early_hints(self, headers: Iterable[tuple[str | bytes, str | bytes]]) -> None:
        """``environ["wsgi.early_hints"]`` (gunicorn's convention): a 103 with these headers.

        The ASGI extension carries ``Link`` values only: other headers are dropped.
        Hints after the response head went out, or to a client that left, are dropped.
        """
        links: list[bytes] = []
        for raw_name, raw_value in headers:
            # gunicorn's callable takes bytes too.
            name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
            value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
            if not isinstance(name, str) or not is_token(name):
                raise InvalidResponse(f"invalid early hint header name {name!r}")
            if not isinstance(value, str):
                raise InvalidResponse(f"value of early hint {name!r} must be a str, not {value!r}")
            reason = invalid_value_reason(value)
            if reason is not None:
                raise InvalidResponse(f"early hint {name!r} has a {reason}: {value!r}")
            if name.lower() == "link":
                links.append(value.strip(" \t").encode("latin-1"))
            else:
                logger.debug("dropped early hint header %r: only Link can be sent", name)
        if not links or self.phase is HEADERS_SENT:
            return
        # A client that left gets no hint; the view finds out at its next write.
        with contextlib.suppress(ClientDisconnected):
            self._post({"type": "http.response.early_hint", "links": links}, body=False)

    def _respond(self, iterable: Iterable[bytes]) -> None:
        if (
            self._pathsend
            and type(iterable) is FileWrapper
            and self.phase is HEADERS_PENDING
            and not self._head_only
        ):
            path = iterable.sendable_path(self.content_length)
            if path is not None:
                self._send_head()
                self._post({"type": "http.response.pathsend", "path": path}, body=False)
                return
        for chunk in iterable:
            self.write(chunk)
            if self.phase is HEADERS_SENT and (
                self._head_only
                or (self.content_length is not None and self._sent >= self.content_length)
            ):
                break  # nothing more may be sent: stop the app early
        if self.phase is not HEADERS_SENT:
            self._send_head()
        limit = self.content_length
        if (
            limit is not None
            and self._sent < limit
            and not self._head_only
            and self.status not in (204, 304)
        ):
            raise RuntimeError(
                f"WSGI app sent {self._sent} bytes but declared Content-Length: {limit}"
            )
        if limit is not None and self._sent == limit and limit and not self._head_only:
            return  # write() sent the last chunk with more_body False
        held = self._held
        if held:
            final = held[-1]
            if final["type"] == "http.response.body":
                final["more_body"] = False  # not posted yet: make it the final one
                return
        with self._lock:
            if self._abort is not None:
                raise self._abort
            last = self._outbox[-1] if self._outbox else None
            if isinstance(last, dict) and last["type"] == "http.response.body":
                last["more_body"] = False  # still unsent: make it the final one
                return
        self._post({"type": "http.response.body", "body": b"", "more_body": False}, body=False)

    def _fail(self, error: BaseException) -> BaseException | None:
        """Answer an app failure; returns the error the ASGI side must raise, if any.

        An app's exception goes to the host as itself, before or after the response
        started: the server (or an enclosing app, a test client, an error tracker)
        reports it and answers 500 or aborts the connection. So it is not logged here
        beyond DEBUG, or it would be logged twice.
        """
        if self._abort is not None:
            logger.debug("WSGI app stopped after the client went away: %r", error)
            return None
        started = self.phase is HEADERS_SENT
        if isinstance(error, BodyTooLarge) and not started:
            logger.warning("rejected request: %s", error)
            try:
                for message in _plain_response(413, "Request body too large"):
                    self._post(message, body=False)
            except ClientDisconnected:
                pass
            return None
        if isinstance(error, ClientDisconnected) and not started:
            logger.info("client disconnected before the request body was complete")
            return None
        logger.debug(
            "WSGI app raised %r %s; raised to the ASGI server",
            error,
            "after the response started" if started else "before the response started",
        )
        if not isinstance(error, Exception):
            # SystemExit or KeyboardInterrupt in a worker thread must not stop the
            # server's event loop: the host sees an ordinary error caused by it.
            wrapped = RuntimeError(f"WSGI app raised {type(error).__name__}")
            wrapped.__cause__ = error
            return wrapped
        return error

    def serve(self, adapter: WSGIToASGI, scope: Scope, first: bytes, more: bool) -> None:
        """Worker thread: build the environ, run the app, post its response and the end.

        Here rather than on the loop: the loop thread serves every connection, and the
        environ is the largest piece of per-request work the adapter does.
        """
        try:
            environ = build_environ(scope, None, max_header_repeats=adapter._max_header_repeats)
            # limit positionally: a keyword to a class call costs a dict (~1k instructions).
            environ["wsgi.input"] = BodyStream(first, more, self.pull, adapter._max_body_size)
        except (RequestRejected, BodyTooLarge) as refused:
            if isinstance(refused, RequestRejected):
                logger.warning("rejected request: %s", refused.reason)
                answer = _plain_response(refused.status, refused.reason)
            else:
                logger.warning("rejected request: %s", refused)
                answer = _plain_response(413, "Request body too large")
            self.answer_instead(answer)
            return
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["bridge.disconnected"] = self._disconnected
        extensions = scope.get("extensions")
        if extensions is not None and "http.response.early_hint" in extensions:
            environ["wsgi.early_hints"] = self.early_hints
        # Then run the app, post its response, close its iterable and post the end: in
        # this frame, a call fewer per request.
        iterable: Iterable[bytes] | None = None
        error: BaseException | None = None
        whole: list[Message] | None = None  # the usual short answer, posted with the end
        # The head's state (StartResponse._reset_head(), inline: no call).
        self.phase = AWAITING_START
        self.status = 500
        self.headers = []
        self.content_length = None
        self._returned = False
        try:
            iterable = adapter.app(environ, self.start_response)
            if type(iterable) is list and len(iterable) <= 1:
                # The usual short answer. A list has no close(): its whole response and
                # the end can cross to the loop together, taking the lock once and
                # waking the loop once, instead of a post per message.
                chunk = iterable[0] if iterable else b""
                if (
                    type(chunk) is bytes
                    and chunk
                    and self.phase is HEADERS_PENDING
                    and not self._head_only
                    and (self.content_length is None or self.content_length == len(chunk))
                ):
                    # One chunk that is the whole body: the head and the final body
                    # message, as _respond() would post them, without its calls
                    # (write, _send_head, mark_sent, two posts; ~8k instructions).
                    self.phase = HEADERS_SENT
                    self._sent = len(chunk)
                    whole = [
                        {
                            "type": "http.response.start",
                            "status": self.status,
                            "headers": self.headers,
                        },
                        {"type": "http.response.body", "body": chunk, "more_body": False},
                    ]
                else:
                    self._held = []
                    self._respond(iterable)
            else:
                self._respond(iterable)
        except BaseException as exc:
            error = self._fail(exc)
        finally:
            if type(iterable) is list:
                # No close() to call: only close_app_iterable()'s flush, without its call.
                errors = environ.get("wsgi.errors")
                if errors is not None:
                    errors.flush()
            else:
                close_app_iterable(iterable, environ)
            del iterable
            self._returned = True  # write() refuses from now on
            self._post_end(error, whole)

    def pull(self) -> tuple[bytes, bool]:
        """Worker side of ``wsgi.input``: block until the loop has received more body."""
        self._asked_for_body = True
        with self._lock:
            if self._stash:
                data = self._stash.popleft()
                self._stashed -= len(data)
                return data, bool(self._stash) or not self._body_complete
            if self._abort is not None:
                raise self._abort
            gate = self._pull_gate = threading.Lock()
            gate.acquire()
            # A running receiver hands this pull the next chunk it gets: waking the
            # loop to start one would cost a hop per chunk of an upload.
            start = not self._receiving
        if start:
            try:
                self._loop.call_soon_threadsafe(self._start_receiver, False)
            except RuntimeError:  # the loop is closed: nobody will send the body
                with self._lock:
                    self._pull_gate = None
                gate.release()
        gate.acquire()  # released once: by the receiver, by abort(), or just above
        with self._lock:
            pulled, self._pulled = self._pulled, None
        if pulled is None:
            raise ClientDisconnected("client disconnected before the request body was complete")
        return pulled

    # -- loop side ----------------------------------------------------------------

    @property
    def loop(self) -> _Loop:
        return self._loop

    def answer_instead(self, messages: Sequence[Message]) -> None:
        """Post ``messages`` and the end for a job that will never run (it expired)."""
        try:
            for message in messages:
                self._post(message, body=False)
        except ClientDisconnected:
            pass  # the client left while it waited: nothing to say to it
        self._post_end(None)

    @property
    def disconnected(self) -> DisconnectSignal:
        """``environ["bridge.disconnected"]``."""
        return self._disconnected

    def _client_gone(self) -> None:
        """Loop side: set the view's signal."""
        self._disconnected._fire()

    def _ask_to_watch(self) -> None:
        """Worker side: the view looked at ``disconnected``; have the loop listen."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the exchange is over
            self._loop.call_soon_threadsafe(self._watch)

    def _watch(self) -> None:
        if self._watching is None:
            return  # the pump is over: nobody would cancel a receiver started now
        self._watching = True
        self._start_receiver(True)

    def _start_receiver(self, watch: bool) -> None:
        """Make sure one task is receiving: for a waiting ``pull``, or to watch a stream."""
        if watch and (self._stashed > _STASH_LIMIT or not self._asked_for_body):
            # The app is not reading: leave the rest to the server's flow control. And
            # with "Expect: 100-continue" the first receive() would tell the client to
            # send a body the app may never want.
            return
        if self._receiver is None or self._receiver.done():
            with self._lock:
                self._receiving = True
            self._receiver = self._loop.create_task(self._receive_messages(watch))

    async def _receive_messages(self, watch: bool) -> None:
        """The only caller of ``receive()`` once the app runs.

        Body chunks go to a waiting ``pull``, or are stashed for the next one (read-ahead
        while the app reads). While a response streams (``watch``), or once the view
        asked about disconnects, it keeps listening, so a client that leaves is noticed
        at once. It stops when the stash is full (the app is not reading, so the
        server's flow control takes over), or once the body is complete unless
        watching, or when the server has nothing more to say.
        """
        try:
            while True:
                message = await self._receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    self.client_left(ClientDisconnected("client disconnected"))
                    return
                if kind != "http.request" or self._body_complete:
                    return  # this server will not tell us about disconnects
                body, more = message.get("body", b""), bool(message.get("more_body", False))
                with self._lock:
                    # Under the lock with the stash: a pull that empties the stash reads
                    # "no more body" from this flag, so it must not see it before the
                    # chunk that completes the body is stashed.
                    self._body_complete = not more
                    gate, self._pull_gate = self._pull_gate, None
                    if gate is None:
                        if self._stash is None:
                            self._stash = deque()
                        self._stash.append(body)
                        self._stashed += len(body)
                    else:
                        self._pulled = body, more
                    # Once the app reads, read one step ahead of it, so its next read
                    # finds the chunk already here instead of waiting a round trip
                    # through the loop. Decided under the lock: a pull that finds
                    # _receiving true counts on this task to serve it.
                    stop = (
                        self._body_complete and not (watch or self._watching)
                    ) or self._stashed > _STASH_LIMIT
                    if stop:
                        self._receiving = False
                if gate is not None:
                    gate.release()
                if stop:
                    return
        finally:
            with self._lock:
                # Any other way out (the server's odd message or error, cancellation):
                # a pull that counted on this task must not wait forever.
                gate = None
                if self._receiving:
                    self._receiving = False
                    gate, self._pull_gate = self._pull_gate, None
            if gate is not None:
                gate.release()  # _pulled is None: the pull raises ClientDisconnected

    def client_left(self, reason: ClientDisconnected) -> None:
        """Abort, and tell the view through ``environ["bridge.disconnected"]``.

        Not once the whole response is going out: servers report ``http.disconnect``
        then too, and the client did not leave early.
        """
        self.abort(reason)
        if not self._answered:
            self._client_gone()

    def abort(self, reason: ClientDisconnected) -> None:
        """Stop the exchange: the worker's next post raises, a blocked worker wakes."""
        with self._lock:
            if self._abort is None:
                self._abort = reason
            space, self._space_waiter = self._space_waiter, None
            gate, self._pull_gate = self._pull_gate, None
        if space is not None:
            space.release()  # the post sees _abort and raises
        if gate is not None:
            gate.release()  # _pulled is None: the pull raises

    def _count_sent(self, bodies: int, size: int) -> None:
        """Loop side: ``bodies`` chunks of ``size`` bytes in all went out; a waiting
        worker resumes once no more than half the window is left unsent.

        Half, not "within the window": let on at the first free slot, the worker would
        post a chunk or two and wait again, and every wait is a thread hand-off (on one
        core, context switches and a GIL hand-over each way).
        """
        space = None
        with self._lock:
            self._unsent -= bodies
            self._unsent_bytes -= size
            if self._unsent < 0:
                # More chunks sent than posted: a chunk went out twice.
                raise RuntimeError(f"pump sent {-self._unsent} body chunk(s) more than were posted")
            if (
                self._space_waiter is not None
                and self._unsent <= self._window // 2
                and self._unsent_bytes <= _BYTES_IN_FLIGHT // 2
            ):
                space, self._space_waiter = self._space_waiter, None
        if space is not None:
            space.release()

    async def pump(self) -> None:
        """Send what the worker posts until it posts its end."""
        loop = self._loop
        streaming = False
        finished = False  # the worker's end was taken: an error now is the app's
        try:
            while True:
                # Detach the batch under the lock and decide on it there: a worker may
                # post the moment the lock is released, into the fresh outbox only.
                with self._lock:
                    if self._outbox:
                        batch: list[Message | _End] | None = self._outbox
                        self._outbox = []
                    else:
                        batch = None
                        waiter = self._waiter = loop.create_future()
                if batch is None:
                    # A response still going after a body chunk went out is a stream:
                    # from now on watch for the client leaving, so the app stops promptly.
                    if streaming:
                        self._start_receiver(True)
                    await waiter
                    continue
                sent_bodies = sent_bytes = 0
                for message in batch:
                    if isinstance(message, _End):
                        finished = True
                        if message.error is not None:
                            raise message.error
                        return
                    kind = message["type"]
                    if kind == "http.response.body":
                        if message["more_body"]:
                            sent_bodies += 1
                            sent_bytes += len(message["body"])
                        else:
                            # Before the send: a server may report http.disconnect for
                            # the finished response while send() still runs.
                            self._answered = True
                    elif kind == "http.response.pathsend":
                        self._answered = True
                    if self._abort is None:
                        await self._send(message)
                if sent_bodies:
                    streaming = True
                    self._count_sent(sent_bodies, sent_bytes)
        except BaseException as exc:
            reason = ClientDisconnected(f"the response could not be sent: {exc!r}")
            self.abort(reason)
            if not finished:  # send() raised, or the server cancelled us: the client left
                self._client_gone()
            raise
        finally:
            self._watching = None
            if self._receiver is not None:
                self._receiver.cancel()


def _retry_after(pool: ThreadPool) -> tuple[bytes, bytes]:
    return (b"retry-after", str(pool.retry_after).encode("ascii"))


def _expire(pool: ThreadPool, job: Job, exchange: _Exchange) -> None:
    """The queue deadline passed: unless a worker took the job, answer 503 in its place."""
    if not pool.expire(job):
        return
    logger.warning(
        "a request waited %.1f s for one of %d busy worker threads: answered 503",
        pool.queue_timeout,
        pool.max_workers,
    )
    exchange.answer_instead(_plain_response(503, reason_phrase(503), (_retry_after(pool),)))


def _lifespan_hooks(
    hooks: Sequence[Callable[[], object]], name: str
) -> tuple[Callable[[], object], ...]:
    hooks = tuple(hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"{name} hooks must be callables, got {hook!r}")
    return hooks


class WSGIToASGI:
    """An ASGI 3 app that serves the WSGI app ``app`` on a bounded thread pool.

    Options:

    - ``pool``: the :class:`ThreadPool` to run on; by default one pool shared by every
      adapter in the process (40 workers; a request waits at most 30 s for one, at most
      16,384 wait). A request that waits longer, or finds the queue full, gets ``503``
      with ``Retry-After`` and never runs.
    - ``max_body_size``: bytes; a longer request body gets ``413`` (``None``: no limit).
    - ``max_header_repeats``: how often one request header may repeat (else ``431``).
    - ``on_startup`` / ``on_shutdown``: callables (sync ones run in a thread, coroutine
      functions are awaited) run on the ASGI lifespan events.
    - ``max_chunks_in_flight``: how many body chunks the app may produce beyond what the
      server has taken before it waits (backpressure); it also waits once more than
      4 MiB are waiting, so a slow client holds at most that plus one chunk. A waiting
      app resumes once half the window has gone out. The default, 64 (the window
      ``ASGIToWSGI`` keeps too), lets a download cross between the worker and the loop
      4 MiB per hand-off; a smaller window trades speed for memory.

    - ``websocket_pool``: the :class:`ThreadPool` WebSocket connections run on, one
      thread each for their whole life; by default one pool of 100 threads with no
      queue, shared by every adapter (a full pool refuses new connections).
    - ``websocket_queue`` / ``websocket_queue_bytes``: how many messages (and bytes)
      may wait in each direction before the sender waits (backpressure).

    WebSocket scopes reach the app as ``GET`` requests with a synchronous
    :class:`WebSocket` in ``environ["bridge.websocket"]``; other scope types raise.
    Passing an ASGI app (or a ``WSGIToASGI``) or a non-int option raises ``TypeError``.
    """

    #: Read by ``interface_of``: an instance is an ASGI 3 app, whatever it wraps.
    __bridge_interface__: Final = "asgi3"

    def __init__(
        self,
        app: WSGIApp,
        *,
        pool: ThreadPool | None = None,
        max_body_size: int | None = None,
        max_header_repeats: int = 100,
        on_startup: Sequence[Callable[[], object]] = (),
        on_shutdown: Sequence[Callable[[], object]] = (),
        max_chunks_in_flight: int = 64,
        websocket_pool: ThreadPool | None = None,
        websocket_queue: int = 16,
        websocket_queue_bytes: int = 1 << 20,
    ) -> None:
        require_interface(app, "wsgi", "WSGIToASGI")
        require_int(max_body_size, "max_body_size", "WSGIToASGI", unit="bytes", optional=True)
        require_int(max_header_repeats, "max_header_repeats", "WSGIToASGI", minimum=1)
        require_int(max_chunks_in_flight, "max_chunks_in_flight", "WSGIToASGI", minimum=1)
        if pool is not None and not isinstance(pool, ThreadPool):
            raise TypeError(
                f"WSGIToASGI(pool={pool!r}): expected a bridge.ThreadPool or None, got "
                f"{type(pool).__name__}; pass pool=ThreadPool(max_workers=...)"
            )
        self._max_chunks_in_flight = max_chunks_in_flight
        self.app = app
        self._pool = pool
        self._max_body_size = max_body_size
        self._max_header_repeats = max_header_repeats
        self._on_startup = _lifespan_hooks(on_startup, "on_startup")
        self._on_shutdown = _lifespan_hooks(on_shutdown, "on_shutdown")
        self._websockets = WebSocketServer(
            pool=websocket_pool, queue=websocket_queue, queue_bytes=websocket_queue_bytes
        )

    @property
    def pool(self) -> ThreadPool:
        """The thread pool requests run on (the shared default unless one was given)."""
        if self._pool is None:
            self._pool = default_pool()
        return self._pool

    def __repr__(self) -> str:
        return f"WSGIToASGI({self.app!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        # The HTTP request is served in this coroutine, not one of its own: a coroutine
        # object and a frame fewer on the loop thread for every request.
        # Only what the loop must know before the app runs is read here; the worker
        # builds the environ (and answers 431 if the headers are refused).
        limit = self._max_body_size
        expect = False
        for name, value in scope["headers"]:
            size = len(name)
            if size == 6 and name.lower() == b"expect":
                expect = True
            elif (
                size == 14
                and limit is not None
                and name.lower() == b"content-length"
                and value.isdigit()
                and int(value) > limit
            ):
                logger.warning(
                    "rejected request: Content-Length %s over %d", value.decode("ascii"), limit
                )
                await _send_plain(send, 413, "Request body too large")
                return
        first, more = b"", True
        # With "Expect: 100-continue" the client waits for our go-ahead, which the
        # server gives on the first receive(): leave that to the app's first read.
        if not expect:
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect: the client is gone before we began
            first, more = message.get("body", b""), bool(message.get("more_body", False))
        extensions = scope.get("extensions")
        try:
            loop: _Loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = _trio_loop()
        exchange = _Exchange(
            loop,
            receive,
            send,
            not more,  # body_complete
            not expect,  # asked_for_body
            scope["method"] == "HEAD",  # head_only
            extensions is not None and "http.response.pathsend" in extensions,  # pathsend
            self._max_chunks_in_flight,  # window
        )
        pool = self._pool or self.pool  # the property's call only until the pool is set
        context = contextvars.copy_context()
        job = pool.submit(context.run, exchange.serve, self, scope, first, more)
        if job is None:
            logger.warning(
                "all %d worker threads are busy and %d requests wait: answered 503",
                pool.max_workers,
                pool.max_queue,
            )
            await _send_plain(send, 503, reason_phrase(503), (_retry_after(pool),))
            return
        deadline: _Timer | None = None
        if job.queued and pool.queue_timeout is not None:
            # Only a request queued behind busy workers can wait long: only it pays
            # for a timer. A worker that takes the job first makes the timer a no-op.
            deadline = exchange.loop.call_later(pool.queue_timeout, _expire, pool, job, exchange)
        try:
            await exchange.pump()
        except BaseException:
            pool.expire(job)  # the task is gone: a job still waiting need never run
            raise
        finally:
            if deadline is not None:
                deadline.cancel()

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan and WebSocket scopes; anything else raises."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            if not _on_asyncio():
                raise RuntimeError(
                    "WSGIToASGI serves WebSocket connections on asyncio only, not trio: "
                    "run the server on asyncio (hypercorn -k asyncio) for WebSockets"
                )
            await self._websockets.serve(
                self.app, scope, receive, send, max_header_repeats=self._max_header_repeats
            )
        else:
            raise ValueError(f"WSGIToASGI cannot serve ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                hooks, phase = self._on_startup, "startup"
            elif kind == "lifespan.shutdown":
                hooks, phase = self._on_shutdown, "shutdown"
                await self._websockets.shutdown()  # close open connections with 1001
            else:
                raise ValueError(f"unexpected lifespan message {kind!r}")
            try:
                for hook in hooks:
                    if inspect.iscoroutinefunction(hook):
                        await hook()
                    else:
                        await _to_thread(hook)
            except Exception as exc:
                logger.exception("lifespan %s hook failed", phase)
                await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
                return
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return
