"""Where ``ASGIToWSGI`` runs the app: the loop mode, as a runner injected into the adapter.

A runner hands each WSGI call a ready loop context (a loop whose lifespan has started);
the context makes one link per request. A link is all that depends on where the app runs:
it starts the app's task, lets the loop side wake the WSGI thread (``notify``), lets
the WSGI thread block until then (``wait``), and carries calls across both ways
(``call_on_loop``, ``in_wsgi_thread``). The exchange uses only these, so it never asks
which mode it is in.

* ``ThreadRunner`` (``loop_mode="thread"``): one ``TaskLoop`` per WSGI thread. The WSGI
  thread runs its loop while it waits, so the app runs in that thread and a call into
  the WSGI thread is a plain call.
* ``SharedRunner`` (``loop_mode="shared"``): one loop thread per process. The WSGI thread
  blocks on a doorbell and runs what the loop side asks of it (reading ``wsgi.input``,
  sending a 103) when it wakes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from bridge._a2w_lifespan import CANCEL_GRACE, Lifespan, LifespanPhase
from bridge._loops import PerThreadLoops, SharedLoop, TaskLoop, close_loop, forget_after_fork

logger = logging.getLogger("bridge.asgi_to_wsgi")

T = TypeVar("T")

_set_running_loop = asyncio._set_running_loop
_get_running_loop = asyncio._get_running_loop

# How far shared mode reads a request body ahead per hand-off (see SharedLink).
READ_AHEAD_BYTES = 512 * 1024


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class Link(Protocol):
    """One request's way between the WSGI thread and the loop that runs its app."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the app runs on (for futures made on the loop side)."""

    @property
    def read_ahead(self) -> int:
        """Request-body bytes worth reading past the chunk asked for, per call into the
        WSGI thread (0 where such a call costs nothing)."""

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start the app's task (WSGI side)."""

    def notify(self) -> None:
        """Wake the WSGI thread: something changed (loop side)."""

    def notify_end(self) -> None:
        """Wake the WSGI thread: the app's task is ending, nothing changes after this
        (loop side)."""

    def wait(self, timeout: float | None) -> None:
        """Block until notified or ``timeout`` passes (WSGI side)."""

    def call_on_loop(self, function: Callable[..., object], *args: Any) -> None:
        """Run ``function(*args)`` on the loop (WSGI side)."""

    async def in_wsgi_thread(self, function: Callable[[], T], default: T) -> T:
        """``function()``, run in the WSGI thread; ``default`` once the WSGI side left."""

    def release(self) -> None:
        """The WSGI side left: calls still waiting for it get their default (loop side)."""

    def cancel(self) -> None:
        """Cancel the app's task (WSGI side)."""

    def cancel_on_loop(self) -> None:
        """Cancel the app's task now (loop side)."""

    def let_run(self, ended: Callable[[], bool], seconds: float, bound: Callable[[], None]) -> bool:
        """The server closed a complete response and the app still runs (WSGI side): let
        it run up to ``seconds``; ``False`` if it must now be cancelled. A loop that runs
        it on its own gets ``bound()`` (which sets a timer there) and ``True`` at once."""

    def settle(self) -> None:
        """The request is over (WSGI side): let what it spawned start."""


class ThreadLink:
    """A request on its WSGI thread's own loop: the loop runs only inside ``wait``.

    One class for every thread's loop, the loop set per request: a class per loop
    (which made a link without running ``__init__``) made each call on a link see
    another type as the server's threads took turns, and the interpreter's
    type-specialised attribute lookups kept missing (callgrind, hello app, 8 loops used
    in turn: about 2.1k instructions per request, against 0.1k for ``__init__``).
    The other fields start as class defaults.
    """

    read_ahead = 0  # in_wsgi_thread() is a plain call: read what the app asks, when
    task: asyncio.Task[None] | None = None
    _wake: asyncio.Future[None] | None = None
    _notified = False
    _mark = 0

    def __init__(self, loop: TaskLoop) -> None:
        self.loop = loop

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        # Most apps finish in their first step: then they need no task of their own.
        loop = self.loop
        self._mark = loop.scheduled
        self.task = loop.run_first_step(coro)

    def notify(self) -> None:
        self._notified = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    notify_end = notify

    def wait(self, timeout: float | None) -> None:
        loop = self.loop
        self._notified = False
        if loop.ready:
            # Something is ready (say the app's task, its drain released): one pass
            # over it, with no select() and no loop start, often brings the news.
            loop.run_ready_once()
            if self._notified:
                return
        wake = loop.create_future()
        self._wake = wake
        try:
            if timeout is None:
                loop.run_until_complete(wake)
            else:
                loop.run_until_complete(asyncio.wait([wake], timeout=timeout))
        finally:
            self._wake = None

    def call_on_loop(self, function: Callable[..., object], *args: Any) -> None:
        function(*args)  # this thread is the loop's

    async def in_wsgi_thread(self, function: Callable[[], T], default: T) -> T:
        return function()  # this thread is the WSGI thread

    def release(self) -> None:
        return None

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    cancel_on_loop = cancel  # this thread is the loop's

    def let_run(self, ended: Callable[[], bool], seconds: float, bound: Callable[[], None]) -> bool:
        # The work runs only while this thread runs the loop: here, bounded by seconds.
        deadline = time.monotonic() + seconds
        while not ended():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait(remaining)
        return True

    def settle(self) -> None:
        loop = self.loop
        if loop.scheduled != self._mark:
            loop.run_ready()  # let what the request spawned start now


class SharedLink:
    """A request on the shared loop thread: the WSGI thread waits on a doorbell."""

    # Each call into the WSGI thread is a round trip between threads (a few tens of
    # µs of CPU): a request body is read up to this far ahead per trip, bounded in bytes
    # (RFC 9112 servers' read() of a Content-Length body waits for the bytes anyway).
    read_ahead = READ_AHEAD_BYTES

    __slots__ = (
        "_calls",
        "_changed",
        "_doorbell",
        "_ended",
        "_first_step",
        "_ringing",
        "loop",
        "task",
    )

    def __init__(self, loop: TaskLoop) -> None:
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self._doorbell: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._ringing = False
        self._ended = False
        self._first_step = False
        self._changed = False
        # (function, future, default): what the loop side waits for the WSGI thread to run.
        self._calls: deque[tuple[Callable[[], Any], asyncio.Future[Any], Any]] = deque()

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        # No concurrent.futures.Future chained to the task (run_coroutine_threadsafe):
        # the doorbell already reports the task's progress. Requests that start while
        # the loop has yet to wake share its wake-up.
        self.loop.call_soon_batched(self._create_task, coro)

    def _create_task(self, coro: Coroutine[Any, Any, None]) -> None:
        # Its first step runs in this callback (one pass of the loop less per request),
        # without a task of its own unless it waits (run_first_step).
        self._first_step = True
        try:
            self.task = self.loop.run_first_step(coro, on_loop=True)
        finally:
            self._first_step = False
        if self._changed and not self._ended:
            self._changed = False
            self._doorbell.put(None)  # the first step is over and did not end the task

    def notify(self) -> None:
        # Wake-ups are coalesced: one ring after everything the loop does now (say the
        # head and the body sent in one step), instead of one per change. The WSGI
        # thread reads the state after every ring, so none is lost. During the first
        # step, _create_task() rings right after it (or notify_end() does): no ring is
        # scheduled at all for a response made in one step.
        if self._first_step:
            self._changed = True
        elif not self._ringing:
            self._ringing = True
            self.loop.call_soon(self._ring)

    def _ring(self) -> None:
        self._ringing = False
        if not self._ended:
            self._doorbell.put(None)

    def notify_end(self) -> None:
        # At once, not on the loop's next pass: the WSGI thread waits for nothing else.
        self._ended = True
        self._doorbell.put(None)

    def wait(self, timeout: float | None) -> None:
        try:
            self._doorbell.get(timeout=timeout)
        except queue.Empty:
            return
        calls = self._calls
        while calls:
            try:
                function, future, _ = calls.popleft()
            except IndexError:  # release() on the loop took it
                return
            try:
                result = function()
            except Exception as exc:
                self.loop.call_soon_batched(_fail, future, exc)
            else:
                self.loop.call_soon_batched(_resolve, future, result)

    def call_on_loop(self, function: Callable[..., object], *args: Any) -> None:
        self.loop.call_soon_batched(function, *args)

    async def in_wsgi_thread(self, function: Callable[[], T], default: T) -> T:
        future: asyncio.Future[T] = self.loop.create_future()
        self._calls.append((function, future, default))
        self.notify()
        return await future

    def release(self) -> None:
        calls = self._calls
        while calls:
            try:
                _, future, default = calls.popleft()
            except IndexError:
                return
            _resolve(future, default)

    def cancel(self) -> None:
        # Thread-safe, and queued after start()'s callback (one FIFO for every call from
        # WSGI threads), so the task exists by then.
        self.loop.call_soon_batched(self._cancel)

    def cancel_on_loop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    _cancel = cancel_on_loop

    def let_run(self, ended: Callable[[], bool], seconds: float, bound: Callable[[], None]) -> bool:
        # Background work runs on the shared loop by itself; bound it there.
        self.loop.call_soon_batched(bound)
        return True

    def settle(self) -> None:
        return None


class _ThreadContext:
    """A WSGI thread's loop and that loop's lifespan."""

    __slots__ = ("lifespan", "link", "loop")

    def __init__(self, loop: TaskLoop, lifespan: Lifespan) -> None:
        self.loop = loop
        self.lifespan = lifespan
        self.link: Callable[[], ThreadLink] = functools.partial(ThreadLink, loop)


class _SharedContext:
    """The shared loop and its lifespan."""

    __slots__ = ("lifespan", "link", "loop")

    def __init__(self, loop: TaskLoop, lifespan: Lifespan) -> None:
        self.loop = loop
        self.lifespan = lifespan
        self.link: Callable[[], SharedLink] = functools.partial(SharedLink, loop)


class LoopContext(Protocol):
    """A loop ready for requests: its lifespan has run startup (or failed)."""

    @property
    def lifespan(self) -> Lifespan: ...

    @property
    def link(self) -> Callable[[], Link]:
        """Makes the link of a new request."""


class Runner(Protocol):
    """A loop mode: hands out ready loop contexts, and closes what it started."""

    def ready(self) -> LoopContext: ...

    def close(self, timeout: float) -> None: ...


class ThreadRunner:
    """``loop_mode="thread"``: a loop per WSGI thread, each with its own lifespan."""

    def __init__(self, new_lifespan: Callable[[], Lifespan]) -> None:
        self._new_lifespan = new_lifespan
        self._loops: PerThreadLoops[_ThreadContext] = PerThreadLoops(self._new, self._retire)
        # This thread's context once its lifespan has run: one lookup per request.
        self._ready = threading.local()
        forget_after_fork(self)

    def _new(self, loop: TaskLoop) -> _ThreadContext:
        return _ThreadContext(loop, self._new_lifespan())

    def ready(self) -> _ThreadContext:
        if _get_running_loop() is not None:
            # Checked before any coroutine exists, so none is left "never awaited".
            raise RuntimeError(
                "ASGIToWSGI(loop_mode='thread') was called from a thread that is running "
                "an event loop (an async test, a notebook); call it from a WSGI server "
                "thread (e.g. await asyncio.to_thread(...)), or use loop_mode='shared'"
            )
        try:
            return self._ready.context  # type: ignore[no-any-return]
        except AttributeError:  # this thread's first request
            pass
        context = self._loops.current()
        if context.lifespan.phase is LifespanPhase.NOT_STARTED:
            context.loop.run_until_complete(context.lifespan.startup())
        self._ready.context = context
        return context

    def close(self, timeout: float) -> None:
        self._ready = threading.local()
        self._loops.close_all()

    def forget_after_fork(self) -> None:
        # A forked child's thread would see its parent thread's context (and loop).
        self._ready = threading.local()

    @staticmethod
    def _retire(context: _ThreadContext) -> None:
        loop = context.loop
        if loop.is_closed():
            return
        if loop.is_running():  # pragma: no cover - close() while a request is in flight
            logger.warning("close(): a thread's loop is still serving a request; leaving it")
            return
        try:
            loop.run_until_complete(context.lifespan.shutdown())
        finally:
            leftover = close_loop(loop, CANCEL_GRACE)
        if leftover:
            # A per-thread loop only runs while its thread serves a request, so tasks
            # that outlive their request (fire-and-forget create_task) may never have run.
            logger.warning(
                "%d task(s) outlived their request on a per-thread loop and were cancelled; "
                "await them, use a BackgroundTask, or use loop_mode='shared'",
                leftover,
            )


class SharedRunner:
    """``loop_mode="shared"``: one loop thread per process, one lifespan."""

    def __init__(self, new_lifespan: Callable[[], Lifespan]) -> None:
        self._new_lifespan = new_lifespan
        self._loop = SharedLoop(name="asgi-to-wsgi-loop")
        self._lock = threading.Lock()
        self._lifespan = new_lifespan()
        self._context: _SharedContext | None = None
        forget_after_fork(self)

    def ready(self) -> _SharedContext:
        context = self._context
        if context is not None:
            return context
        with self._lock:
            if self._context is None:
                lifespan = self._lifespan
                if lifespan.phase is LifespanPhase.NOT_STARTED:
                    self._loop.run(lifespan.startup())
                self._context = _SharedContext(self._loop.get(), lifespan)
            return self._context

    def close(self, timeout: float) -> None:
        self._context = None
        if self._loop.started:
            try:
                self._loop.run(self._lifespan.shutdown(), timeout + 10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                logger.exception("ASGI lifespan shutdown on the shared loop failed")
            finally:
                self._loop.stop(CANCEL_GRACE)

    def forget_after_fork(self) -> None:
        # The parent's lifespan state (and the task that owned it) stayed with its loop,
        # which _loops has forgotten: a child runs its own startup.
        self._lock = threading.Lock()
        self._lifespan = self._new_lifespan()
        self._context = None
