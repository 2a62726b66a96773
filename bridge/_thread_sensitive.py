"""Where Django's thread-sensitive sync work runs when its ASGI app is served by ``ASGIToWSGI``.

Django's ``ASGIHandler`` wraps each request in asgiref's ``ThreadSensitiveContext()``,
and asgiref gives each such context a brand-new one-thread executor: every request's
ORM calls (``sync_to_async(thread_sensitive=True)``) run on a thread that dies with the
request, so the per-thread database connections die with it (``CONN_MAX_AGE`` never
reuses one, and the sqlite handles wait for the garbage collector) and a thread is
created per request.

asgiref lets the outermost ``ThreadSensitiveContext`` decide, so this module enters one
around the app with an executor that lives as long as the process; Django's own
context then nests inside it and changes nothing. Which executor:

* Per-thread loop (``loop_mode="thread"``), asgiref with ``ThreadSensitiveContext(
  executor=...)``: the work runs inline, on the WSGI thread itself, exactly where native
  WSGI would run it. The loop there belongs to that thread and serves only its request,
  so nothing else waits while it runs. (Measured against a per-WSGI-thread one-thread
  executor: see ``_INLINE`` below.)
* Otherwise (the shared loop, or an older asgiref): a pool of one-thread executors, each
  lent to one request at a time, most recently returned first. The pool grows to the
  peak number of requests in flight (at most the WSGI server's threads, plus requests
  whose background work is still running) and its threads live on, so connections are
  per pool thread and reused.

Only Django's handler (found through the usual wrapper attributes) is wrapped unless
the app is marked with :func:`thread_sensitive`: other apps keep asgiref's default and
pay nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, ThreadSensitiveContext

from bridge._loops import TaskLoop
from bridge._types import ASGIApp, Receive, Scope, Send

__all__ = ["ThreadSensitiveApp", "thread_sensitive", "thread_sensitive_if_django"]

T = TypeVar("T")

# asgiref >= 3.13: ThreadSensitiveContext(executor=...) is the supported way to choose the
# executor, and it also hides an inherited CurrentThreadExecutor. Older releases take
# the executor from context_to_thread_executor, filled here before Django looks.
_HAS_EXECUTOR_API = "executor" in inspect.signature(ThreadSensitiveContext.__init__).parameters

# Inline on the WSGI thread (per-thread loop) rather than on a one-thread executor per
# WSGI thread: the same thread affinity as native WSGI, no thread left to count, and
# faster. The project's ORM JSON view (16 sync hops per request), in one process,
# sequential, per request: native WSGI 1780 us; inline with an already-done asyncio
# future 3432 us; inline with a concurrent future (a loop turn per hop) 5514 us; a
# one-thread executor 5724 us. Safe there because that loop serves one request.
_INLINE = True

# Attributes under which ASGI wrappers keep the app they wrap (``.app`` for
# Starlette-style middleware, ``.application`` for Django's static files handler),
# searched for Django's handler.
_WRAPPED_ATTRS = ("app", "application", "asgi_app", "inner", "__wrapped__")
_SEARCH_DEPTH = 6


def _django_handler_class() -> type | None:
    # Only if Django is already imported: never import it for an app that is not Django.
    module = sys.modules.get("django.core.handlers.asgi")
    handler = getattr(module, "ASGIHandler", None)
    return handler if isinstance(handler, type) else None


def _is_django(app: object) -> bool:
    handler = _django_handler_class()
    if handler is None:
        return False
    for _ in range(_SEARCH_DEPTH):
        if isinstance(app, handler):
            return True
        # Channels' ProtocolTypeRouter keeps its apps by scope type.
        mapping = getattr(app, "application_mapping", None)
        if isinstance(mapping, dict) and isinstance(mapping.get("http"), handler):
            return True
        inner = next(
            (getattr(app, name) for name in _WRAPPED_ATTRS if hasattr(app, name)),
            None,
        )
        if inner is None or inner is app:
            return False
        app = inner
    return False


class _InlineExecutor(concurrent.futures.Executor):
    """Runs each call at once, on the calling thread: the per-thread loop's WSGI thread.

    While the call runs, the thread looks like a plain sync thread, as under native
    WSGI: no running loop (Django refuses ORM calls where a loop runs), and asgiref's
    per-thread notes are put back afterwards (they would otherwise point a later
    ``async_to_sync`` in this thread at an idle loop). A nested ``async_to_sync`` cannot
    use this thread's loop, which is blocked by the very call it would serve, so
    ``call_soon_threadsafe`` from this thread is refused for the duration: asgiref then
    runs that coroutine on a loop of its own in a new thread (its documented fallback).

    The result comes back as an asyncio future that is already done: ``run_in_executor``
    passes asyncio futures through as they are, so the awaiting coroutine resumes at
    once instead of after a loop turn (a self-pipe write, a ``select()``, three
    callbacks), which is most of what a hop costs once no thread is involved.
    """

    def submit(  # type: ignore[override]
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[T]:
        loop = asyncio._get_running_loop()
        if loop is None:  # pragma: no cover - only run_in_executor calls this
            raise RuntimeError("the inline executor runs work for a running loop only")
        future: asyncio.Future[T] = loop.create_future()
        local = SyncToAsync.threadlocal
        saved = local.__dict__.copy()
        loop.call_soon_threadsafe = _RefuseFromThread(loop)  # type: ignore[method-assign,assignment]
        asyncio._set_running_loop(None)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # delivered to the awaiting coroutine, as an executor does
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            asyncio._set_running_loop(loop)
            del loop.call_soon_threadsafe
            local.__dict__.clear()
            local.__dict__.update(saved)
        return future


class _RefuseFromThread:
    """``loop.call_soon_threadsafe`` while its own thread runs inline sync work."""

    __slots__ = ("_ident", "_real")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ident = threading.get_ident()
        self._real = type(loop).call_soon_threadsafe.__get__(loop)

    def __call__(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == self._ident:
            raise RuntimeError("this thread's event loop is blocked by the sync call it runs")
        return self._real(callback, *args, **kwargs)


class _Borrowed(concurrent.futures.Executor):
    """A pooled executor as handed to asgiref < 3.13, which shuts down what it finds."""

    __slots__ = ("_executor",)

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None  # the pool owns it


class _Pool:
    """One-thread executors lent to one request at a time, most recently returned first."""

    def __init__(self) -> None:
        self._idle: list[concurrent.futures.ThreadPoolExecutor] = []
        self._lock = threading.Lock()
        self.size = 0
        _POOLS.add(self)

    def forget_after_fork(self) -> None:
        # A forked child has none of the parent's threads, but each inherited executor
        # believes its worker exists and would queue work for it forever.
        _INHERITED.append(self._idle)
        self._idle = []
        self._lock = threading.Lock()
        self.size = 0

    def take(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.size += 1
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"bridge-sync-{next(_NUMBERS)}"
        )

    def give(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        with self._lock:
            self._idle.append(executor)


_INLINE_EXECUTOR = _InlineExecutor()
_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()
_NUMBERS = itertools.count(1)  # thread names unique in the process, and in its children
# The parent's executors, kept from the collector in a child (as _loops does with loops).
_INHERITED: list[object] = []


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ThreadSensitiveApp:
    """An ASGI app whose thread-sensitive sync work runs per WSGI thread (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._pool = _Pool()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # The lifespan task outlives every request; asgiref's default suits it.
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if _INLINE and _HAS_EXECUTOR_API and type(loop) is TaskLoop and loop.dedicated:
            async with ThreadSensitiveContext(executor=_INLINE_EXECUTOR):
                await self.app(scope, receive, send)
            return
        executor = self._pool.take()
        try:
            if _HAS_EXECUTOR_API:
                async with ThreadSensitiveContext(executor=executor):
                    await self.app(scope, receive, send)
            else:
                context = ThreadSensitiveContext()
                async with context:
                    SyncToAsync.context_to_thread_executor[context] = _Borrowed(executor)
                    await self.app(scope, receive, send)
        finally:
            self._pool.give(executor)


def thread_sensitive(app: ASGIApp) -> ThreadSensitiveApp:
    """Mark ``app`` so that ``ASGIToWSGI`` runs its thread-sensitive sync work (asgiref's
    ``sync_to_async``, Django's ORM) per WSGI thread rather than on a thread per request.

    Django's own ASGI handler is found without it (also behind wrappers that keep it as
    ``.app``/``.application``); use this for one wrapped where it cannot be seen, e.g. by a
    plain function that adds lifespan.
    """
    if isinstance(app, ThreadSensitiveApp):
        return app
    return ThreadSensitiveApp(app)


def thread_sensitive_if_django(app: ASGIApp) -> ASGIApp:
    """``ASGIToWSGI``'s hook: ``app`` wrapped when it is (or wraps) Django's ASGI handler."""
    if isinstance(app, ThreadSensitiveApp) or not _is_django(app):
        return app
    return ThreadSensitiveApp(app)
