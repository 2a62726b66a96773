"""Event loops for ``ASGIToWSGI``: one per WSGI worker thread, or one shared loop thread.

This module and ``_a2w_runners.py`` are the only places in the ASGI-on-WSGI direction
that own threads or event loops. Nothing here starts at import or construction time:
loops and threads appear lazily, in the process and thread that serves requests, so
pre-fork servers (gunicorn ``--preload``, uWSGI) never inherit a running loop. After a
fork the child forgets every loop it inherited (``os.register_at_fork``) and builds its
own; the inherited objects are parked, never closed or collected, because closing would
act on file descriptors the parent still uses and collecting them would report the
parent's pending tasks as "destroyed but pending".

The process-wide hooks live here too: ``forget_after_fork`` registers an owner of loop
state whose ``forget_after_fork()`` runs in a forked child, and ``close_at_exit`` an
owner whose ``close()`` runs at interpreter exit, before ``concurrent.futures`` shuts its
thread pools down.

It knows nothing about HTTP or ASGI messages: it hands out loops and runs callables.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401 - registers its exit hook before ours (below)
import contextvars
import os
import threading
import types
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class _ForgetsAfterFork(Protocol):
    def forget_after_fork(self) -> None: ...


class _Closes(Protocol):
    def close(self) -> None: ...


# Objects inherited across fork(): referenced forever so they are never finalized.
_INHERITED: list[object] = []
_FORK_AWARE: weakref.WeakSet[_ForgetsAfterFork] = weakref.WeakSet()
_CLOSE_AT_EXIT: weakref.WeakSet[_Closes] = weakref.WeakSet()


def forget_after_fork(owner: _ForgetsAfterFork) -> None:
    """Call ``owner.forget_after_fork()`` in every forked child while ``owner`` lives."""
    _FORK_AWARE.add(owner)


def close_at_exit(owner: _Closes) -> None:
    """Call ``owner.close()`` at interpreter exit while ``owner`` lives and is registered."""
    _CLOSE_AT_EXIT.add(owner)


def closed(owner: _Closes) -> None:
    """``owner`` closed itself: nothing to do for it at exit."""
    _CLOSE_AT_EXIT.discard(owner)


def _after_fork_in_child() -> None:
    for owner in list(_FORK_AWARE):
        owner.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit() -> None:
    for owner in list(_CLOSE_AT_EXIT):
        owner.close()


# Close (lifespan shutdown) at interpreter exit, before concurrent.futures shuts its
# thread pools down: threading's exit hooks run in reverse order and before atexit, and
# shutdown handlers often use run_in_executor (Django's sync_to_async, Starlette's
# threadpool). concurrent.futures.thread is imported above, so its hook runs after ours.
_register_threading_atexit = getattr(threading, "_register_atexit", None)
if _register_threading_atexit is not None:
    _register_threading_atexit(_close_at_exit)
else:  # pragma: no cover - interpreters without the hook
    atexit.register(_close_at_exit)


_set_running_loop = asyncio._set_running_loop
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_CancelledError = asyncio.CancelledError

# What a spare task's host coroutine is handed when the app it stands for must go on:
# the app's coroutine, the context it runs in, and what its first step yielded.
# (The app's coroutine inside the stepper that ran its first step.)
_Handoff = tuple[Generator[Any, Any, None], contextvars.Context, Any]


def _nothing() -> None:
    return None


# What a stepper yields once the coroutine it was sent has returned.
_FINISHED: Any = object()


@types.coroutine
def _stepper() -> Generator[Any, Any, None]:
    """Drives each coroutine sent in (after a first ``send(None)``) until it waits or
    returns; when it returns, yields ``_FINISHED`` and takes the next one.

    ``coro.send(None)`` ends a coroutine by raising ``StopIteration``, and catching it
    costs a request that finishes in its first step more than a generator frame does
    (callgrind: about 1.3k instructions). ``yield from`` takes the return in C, with no
    exception. A coroutine that waits keeps the stepper (it is then driven as a
    ``_resume`` coroutine, and yields ``_FINISHED`` where it would have returned), and
    one that raises ends it: either way the loop makes a new one.
    """
    coro = yield None
    while True:
        yield from coro
        coro = yield _FINISHED


@types.coroutine
def _resume(
    coro: Generator[Any, Any, None] | Coroutine[Any, Any, None],
    context: contextvars.Context,
    yielded: Any,
) -> Generator[Any, None, None]:
    """Go on driving ``coro`` (stepped once already, which yielded ``yielded``) for the
    task awaiting this, each step in ``context``: what the task yields and throws in
    (cancellation) reaches ``coro`` as if the task drove it from the start."""
    while yielded is not _FINISHED:  # coro is a stepper: the app's coroutine returned
        try:
            yield yielded
        except BaseException as exc:  # thrown in by the task: CancelledError and the like
            try:
                yielded = context.run(coro.throw, exc)
            except StopIteration:
                return
        else:
            try:
                yielded = context.run(coro.send, None)
            except StopIteration:
                return


async def _one_step() -> None:
    return None


async def _host(wake: asyncio.Future[None], handoff: list[_Handoff]) -> None:
    """A spare task's coroutine: waits until an app's first step needs the task to go on
    (``handoff`` then holds it), and drives the app from there."""
    try:
        await wake
    except _CancelledError as exc:
        if not handoff:
            raise  # a retired spare: it stood in for no app that goes on
        # The app cancelled its own task in its first step, then awaited something. A
        # task would cancel what it awaits (the app then sees CancelledError from it),
        # or, when that cannot be cancelled, throw CancelledError in at once.
        coro, context, yielded = handoff.pop()
        cancel = getattr(yielded, "cancel", None)
        if cancel is None or not cancel():
            try:
                yielded = context.run(coro.throw, exc)
            except StopIteration:
                return
    else:
        coro, context, yielded = handoff.pop()
    await _resume(coro, context, yielded)


class TaskLoop(asyncio.SelectorEventLoop):
    """A selector event loop that can run a new task's first step inline.

    ``loop.run_until_complete`` costs a full loop turn (a ``select()`` call, asyncgen
    hooks, running-loop bookkeeping): about ten microseconds, most of the adapter's
    budget. Most requests finish without ever awaiting a real future, so ``start_task``
    creates a genuine ``asyncio.Task`` (``current_task()``, cancellation and anyio all
    work as usual) but runs its first step right here instead of scheduling it. Only a
    task that then waits on something needs the loop to run.
    """

    # While start_task() creates a task: the step Task.__init__ schedules, kept here
    # (callback, context) instead of being scheduled.
    _capturing = False
    _step: tuple[Callable[..., object], contextvars.Context] | None = None
    # Counts callbacks scheduled through call_soon, so that the adapter can tell whether
    # a request left work behind (a fire-and-forget task) that deserves a loop pass.
    scheduled = 0
    # run_first_step()'s stand-in task, and the future that hands it an app to drive.
    spare: asyncio.Task[None] | None = None
    _spare_wake: asyncio.Future[None] | None = None
    _spare_handoff: list[_Handoff] | None = None
    # run_first_step()'s driver of first steps (see _stepper), idle between them.
    _stepper: Generator[Any, Any, None] | None = None
    # While run_first_step() runs a step: the timers it sets (call_at, call_later).
    _step_timers: list[asyncio.TimerHandle] | None = None

    def __init__(self, *, dedicated: bool = False) -> None:
        super().__init__()
        #: The loop serves one WSGI thread and runs only while that thread waits on it
        #: (thread mode), so blocking work may run inline; not so for the shared loop.
        self.dedicated = dedicated
        # Returned for the captured step; Task.__init__ ignores the handle it gets.
        self._unscheduled = asyncio.Handle(_nothing, (), self)
        self._incoming = deque()
        self._incoming_handle = asyncio.Handle(self._run_incoming, (), self)
        # BaseEventLoop's queue of ready callbacks, which run_ready_once() runs.
        self.ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        if self._capturing and context is not None and not args:
            # The one call_soon made by Task.__init__ while start_task() listens: keep
            # the step to run it inline. The handle is never scheduled.
            self._capturing = False
            self._step = (callback, context)
            return self._unscheduled
        self.scheduled += 1
        return super().call_soon(callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        timers = self._step_timers
        if timers is not None:
            timers.append(handle)
        return handle

    # Callbacks from other threads waiting for one shared wake-up (call_soon_batched).
    _incoming: deque[tuple[contextvars.Context, Callable[..., object], tuple[Any, ...]]]
    _incoming_pending = False

    def call_soon_batched(self, callback: Callable[..., object], *args: Any) -> None:
        """``call_soon_threadsafe`` for many threads: a callback queued while another's
        wake-up is still pending rides on it (one self-pipe write and one handle for
        the lot, not one each). Each runs in a copy of its caller's context, as
        ``call_soon_threadsafe`` would run it."""
        self._incoming.append((contextvars.copy_context(), callback, args))
        if not self._incoming_pending:
            self._incoming_pending = True
            # call_soon_threadsafe() spelled out, with one handle made once instead of
            # a new one per wake-up (a deque append is atomic; each callback runs in
            # its own context anyway).
            self._check_closed()  # type: ignore[attr-defined]
            self.ready.append(self._incoming_handle)
            self._write_to_self()  # type: ignore[attr-defined]

    def _run_incoming(self) -> None:
        # Cleared before the queue is emptied: a caller that still saw it set has
        # already queued its callback, which this run then takes.
        self._incoming_pending = False
        incoming = self._incoming
        while incoming:
            context, callback, args = incoming.popleft()
            try:
                context.run(callback, *args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.call_exception_handler(
                    {"message": f"Exception in callback {callback!r}", "exception": exc}
                )

    def _read_from_self(self) -> None:
        # One recv() per wake-up, where asyncio's loops until recv() raises
        # BlockingIOError: that second call and its exception cost every wake-up of the
        # shared loop (one per request). The selector is level-triggered, so bytes left
        # after one read (over 4096 wake-ups at once) wake the next select() at once.
        try:
            data = self._ssock.recv(4096)  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError):
            return
        if data:
            self._process_self_data(data)  # type: ignore[attr-defined]

    def run_ready(self) -> None:
        """Run the callbacks that are ready now (one short loop run), then return."""
        self.run_until_complete(_one_step())

    def run_ready_once(self) -> None:
        """Run each callback that is ready now once, in this thread, without polling
        I/O or timers: a resumed task's step costs no ``select()`` and no loop start.

        For a dedicated loop whose thread runs it only while it waits, between runs
        (the caller makes sure that no event loop runs in this thread). What the
        callbacks schedule runs on the next pass; callers then run the loop as usual
        if what they wait for has not happened.
        """
        ready = self.ready
        _set_running_loop(self)
        try:
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            _set_running_loop(None)

    def start_task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Wrap ``coro`` in a task on this loop and run its first step in this thread.

        The caller makes sure that no event loop runs in this thread (this loop then
        briefly counts as running, for the app's ``get_running_loop()``).
        """
        # _task_and_step() spelled out: this runs for every request.
        self._capturing = True
        try:
            # A name given saves formatting a unique "Task-N" for every request.
            task: asyncio.Task[None] = asyncio.Task(coro, loop=self, name=name)
        finally:
            self._capturing = False
        step = self._step
        if step is not None:
            self._step = None
            _set_running_loop(self)
            try:
                step[1].run(step[0])
            finally:
                _set_running_loop(None)
        return task

    def run_first_step(
        self, coro: Coroutine[Any, Any, None], *, on_loop: bool = False
    ) -> asyncio.Task[None] | None:
        """Run ``coro``'s first step in this thread; ``None`` if it finished there, else
        the task that now drives it.

        Creating a task costs about 7% of what the adapter adds to a hello request
        (asyncio's WeakSet of all tasks is Python code on 3.11, and the task's own
        step), so the step runs without one of its own: a spare
        task, pending on a future of ours, stands in as ``current_task()`` (so
        ``asyncio.timeout``, anyio and asgiref see a real task), and the step runs in a
        fresh copy of the caller's context, as a new task's would. When the step
        finishes the coroutine and leaves nothing that could still reach the spare
        (nothing scheduled, no timer, no cancellation, no callback on it), the spare
        serves the next request. Otherwise the spare becomes the coroutine's task,
        which goes on driving it from where the step left it (a new spare is made when
        next needed), so whatever captured ``current_task()`` holds the task that runs
        it to the end. Same conditions as ``start_task``; or, with ``on_loop``, from a
        callback on this loop while it runs (the shared loop), like ``create_task_now``.
        """
        spare = self.spare
        if spare is None:
            spare = self._new_spare(on_loop)
        # Taken while it runs (a step that reached run_first_step() again would find
        # none and make its own), and given back once its coroutine has returned.
        stepper = self._stepper
        if stepper is None:
            stepper = _stepper()
            stepper.send(None)
        else:
            self._stepper = None
        mark = self.scheduled
        timers: list[asyncio.TimerHandle] = []
        self._step_timers = timers
        context = contextvars.copy_context()
        if not on_loop:
            _set_running_loop(self)
        _enter_task(self, spare)
        try:
            yielded = context.run(stepper.send, coro)
        except _CancelledError:
            pass  # the app cancelled itself and returned: a task would end cancelled
        except BaseException:
            self._retire_spare(spare)
            raise
        else:
            if yielded is _FINISHED:
                self._stepper = stepper
            else:
                # It waits for something: the spare takes over from here, driving the
                # stepper (which holds the coroutine) from where the step left it.
                wake, handoff = self._spare_wake, self._spare_handoff
                assert wake is not None
                assert handoff is not None
                self.spare = self._spare_wake = self._spare_handoff = None
                handoff.append((stepper, context, yielded))
                if not wake.done():  # else the app cancelled its task: _host() sees to it
                    wake.set_result(None)
                return spare
        finally:
            self._step_timers = None
            _leave_task(self, spare)
            if not on_loop:
                _set_running_loop(None)
        # The spare waits on its wake future all along, so cancel() cancels that. A timer
        # set and cancelled in the step (asyncio.timeout around work that never waited)
        # cannot reach it; one still live might.
        wake = self._spare_wake
        if (
            self.scheduled != mark
            or (timers and not all(timer.cancelled() for timer in timers))
            or (wake is not None and wake.done())
            or spare._callbacks
        ):
            self._retire_spare(spare)
        return None

    def _new_spare(self, on_loop: bool) -> asyncio.Task[None]:
        wake: asyncio.Future[None] = self.create_future()
        handoff: list[_Handoff] = []
        # Its first step (up to awaiting wake) runs now.
        host = _host(wake, handoff)
        if on_loop:
            spare = self.create_task_now(host, "ASGIToWSGI request")
        else:
            spare = self.start_task(host, "ASGIToWSGI request")
        self.spare = spare
        self._spare_wake = wake
        self._spare_handoff = handoff
        return spare

    def _retire_spare(self, spare: asyncio.Task[None]) -> None:
        """Something may still reach ``spare``: make a new one for the next request,
        and end this one (cancelled, on the next pass of the loop)."""
        if self.spare is spare:
            self.spare = self._spare_wake = self._spare_handoff = None
        spare.cancel()

    def create_task_now(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """From a callback on this loop while it runs: a task whose first step runs now,
        not on the next pass of the loop."""
        task, step = self._task_and_step(coro, name)
        if step is not None:
            step[1].run(step[0])
        return task

    def _task_and_step(
        self, coro: Coroutine[Any, Any, None], name: str
    ) -> tuple[asyncio.Task[None], tuple[Callable[..., object], contextvars.Context] | None]:
        self._capturing = True
        try:
            task: asyncio.Task[None] = asyncio.Task(coro, loop=self, name=name)
        finally:
            self._capturing = False
        step, self._step = self._step, None
        return task, step


def close_loop(loop: asyncio.AbstractEventLoop, grace: float = 5.0) -> int:
    """Cancel what is left on an idle ``loop``, finish async generators, close it.

    Returns how many tasks were still pending (and so were cancelled).
    """
    if loop.is_closed():
        return 0
    spare = getattr(loop, "spare", None)
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=grace))
    for task in pending:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the adapter already logged what mattered
    loop.run_until_complete(loop.shutdown_asyncgens())
    # Each per-thread loop has its own default executor; do not leak its threads.
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    return sum(task is not spare for task in pending)  # the spare stood in for no request


class _ThreadToken:
    """Lives in a thread's ``threading.local``; its death means the thread is gone."""

    __slots__ = ("__weakref__",)


class PerThreadLoops(Generic[T]):
    """One ``TaskLoop`` per thread, created on first use, with a per-loop value ``T``.

    ``factory(loop)`` builds the value kept beside each loop (the adapter's lifespan);
    ``retire(value)`` runs when that loop's thread has died, or at ``close_all()``, from
    whichever thread notices, while the loop is idle.
    """

    def __init__(self, factory: Callable[[TaskLoop], T], retire: Callable[[T], None]) -> None:
        self._factory = factory
        self._retire = retire
        self._local = threading.local()
        self._lock = threading.Lock()
        self._live: dict[int, T] = {}
        self._dead: list[T] = []
        self._next_key = 0
        forget_after_fork(self)

    def current(self) -> T:
        """This thread's value, creating its loop on first use."""
        value: T | None = getattr(self._local, "value", None)
        if value is not None:
            return value
        if self._dead:
            self.reap()
        value = self._factory(TaskLoop(dedicated=True))
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._live[key] = value
        token = _ThreadToken()
        # threading.local drops the token when the thread exits; the loop is then
        # retired by the next thread that asks (thread-per-request servers make many).
        weakref.finalize(token, self._thread_died, key)
        self._local.value = value
        self._local.token = token
        return value

    def _thread_died(self, key: int) -> None:
        with self._lock:
            value = self._live.pop(key, None)
            if value is not None:
                self._dead.append(value)

    def reap(self) -> None:
        """Retire the loops of threads that have exited."""
        with self._lock:
            dead, self._dead = self._dead, []
        for value in dead:
            self._retire(value)

    def close_all(self) -> None:
        """Retire every loop (call when no request is in flight)."""
        with self._lock:
            values = [*self._dead, *self._live.values()]
            self._dead = []
            self._live = {}
        self._local = threading.local()
        for value in values:
            self._retire(value)

    def forget_after_fork(self) -> None:
        _INHERITED.append((self._local, self._live, self._dead))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._live = {}
        self._dead = []


class SharedLoop:
    """One event loop running in a daemon thread, started on first ``get()``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: TaskLoop | None = None
        self._thread: threading.Thread | None = None
        forget_after_fork(self)

    def get(self) -> TaskLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = TaskLoop()
                running = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, running), name=self._name, daemon=True
                )
                thread.start()
                running.wait()
                self._thread = thread
                self._loop = loop
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(running.set)
        loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the shared loop and wait for its result in this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.get()).result(timeout)

    @property
    def started(self) -> bool:
        return self._loop is not None

    def stop(self, grace: float = 5.0) -> None:
        """Stop the loop thread, cancelling leftover tasks, and close the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("SharedLoop.stop() called from the loop thread")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(grace + 5.0)
        if thread.is_alive():  # pragma: no cover - a callback blocking the loop thread
            _INHERITED.append(loop)
            return
        close_loop(loop, grace)

    def forget_after_fork(self) -> None:
        _INHERITED.append((self._loop, self._thread))
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
