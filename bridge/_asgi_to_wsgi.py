"""``ASGIToWSGI``: serve an ASGI 3 (or 2) application from any WSGI server.

Each WSGI call becomes one ASGI ``http`` connection (ASGI spec "HTTP & WebSocket" 2.4,
lifespan per "Lifespan" 2.0). The WSGI thread drives the ASGI task itself: it runs the
event loop only while it needs something from the app (the response head, the next
body chunk, the end of background work), and the WSGI response iterable pulls body
chunks out as the app sends them, so responses stream.

Rules of this file:

* Pure translation (environ -> scope, response head -> WSGI) lives in ``_scope.py``;
  the lifespan protocol in ``_a2w_lifespan.py``; loop and thread machinery, and the
  fork and exit hooks, in ``_loops.py``. This file wires them to one request.
* Per-request state lives in ``Exchange`` (``_a2w_exchange.py``), the WSGI response
  iterable in ``_a2w_body.py``; the adapter holds configuration and loops.
* The response side is an explicit state machine (``Phase`` and ``_SEND``).
* Nothing starts in ``__init__``: loops, threads and lifespan start lazily in the
  process and thread that serves requests (pre-fork servers, ``--preload``).
* Failures are logged on the ``bridge.asgi_to_wsgi`` logger; never printed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum, auto
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from asgiref.compatibility import guarantee_single_callable

from bridge._a2w_body import PathFile, ResponseBody
from bridge._a2w_exchange import (
    Exchange,
    Phase,
    RequestTimeout,
    Settings,
    finish_exchange,
    incomplete_error,
)
from bridge._a2w_lifespan import (
    CANCEL_GRACE,
    Lifespan,
    LifespanMode,
    LifespanPhase,
    LifespanStartupFailed,
    LifespanUnsupported,
)
from bridge._http import InvalidResponse
from bridge._interface import require_int, require_interface
from bridge._loops import (
    PerThreadLoops,
    SharedLoop,
    TaskLoop,
    close_at_exit,
    close_loop,
    closed,
    forget_after_fork,
)
from bridge._scope import ScopeError, http_scope
from bridge._types import ASGIApp, Environ, Receive, Scope, Send

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


def _plain_response(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


class _LoopContext:
    """What a per-thread loop carries: the loop and that loop's lifespan."""

    __slots__ = ("lifespan", "loop")

    def __init__(self, loop: TaskLoop, lifespan: Lifespan) -> None:
        self.loop = loop
        self.lifespan = lifespan


# --- the adapter ------------------------------------------------------------------------


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
        self.request_timeout = request_timeout
        self.loop_mode = loop_mode
        self.lifespan = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.background_timeout = background_timeout
        self.chunk_size = chunk_size
        self._state = _State.OPEN
        self._shared = loop_mode == "shared"
        self._settings = Settings(self._shared, chunk_size, background_timeout)
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
        forget_after_fork(self)
        close_at_exit(self)

    def _new_lifespan(self) -> Lifespan:
        return Lifespan(
            self.app, self._lifespan_mode, self.lifespan_timeout, self._lifespan_unsupported
        )

    def _lifespan_unsupported(self, error: BaseException | None) -> None:
        with self._report_lock:
            if self._lifespan_mode == "off":
                return
            self._lifespan_mode = "off"
        if error is None or isinstance(error, LifespanUnsupported):
            reason = f" ({error})" if error is not None else ""
        else:
            reason = f" ({type(error).__name__}: {error})"
        logger.info("ASGI app does not support lifespan; serving it without%s", reason)

    def forget_after_fork(self) -> None:
        """In a forked child (``_loops`` calls it): the parent's lifespan stayed with its
        loop, which ``_loops`` has forgotten, so a child runs its own startup."""
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
            leftover = close_loop(loop, CANCEL_GRACE)
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
        if context.lifespan.phase is LifespanPhase.NOT_STARTED:
            context.loop.run_until_complete(context.lifespan.startup())
        return context

    def _shared_ready(self) -> Lifespan:
        lifespan = self._shared_lifespan
        if lifespan.phase is LifespanPhase.NOT_STARTED:
            with self._shared_lock:
                if lifespan.phase is LifespanPhase.NOT_STARTED:
                    self._shared_loop.run(lifespan.startup())
        return lifespan

    def start(self) -> None:
        """Start eagerly: create this thread's (or the shared) loop and run lifespan startup.

        Raises ``LifespanStartupFailed`` when startup fails.
        """
        if self._state is _State.CLOSED:
            raise RuntimeError("ASGIToWSGI.start() after close()")
        lifespan = self._shared_ready() if self._shared else self._thread_context().lifespan
        if lifespan.phase is LifespanPhase.FAILED:
            raise LifespanStartupFailed(lifespan.failure)

    def close(self) -> None:
        """Run lifespan shutdown and close every loop this adapter created. Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        closed(self)
        self._threads.close_all()
        if self._shared_loop.started:
            try:
                self._shared_loop.run(self._shared_lifespan.shutdown(), self.lifespan_timeout + 10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                logger.exception("ASGI lifespan shutdown on the shared loop failed")
            finally:
                self._shared_loop.stop(CANCEL_GRACE)

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
        if lifespan.phase is not LifespanPhase.READY:
            logger.error("ASGI lifespan startup failed; answering 500: %s", lifespan.failure)
            return _plain_response(
                start_response, "500 Internal Server Error", "Internal Server Error"
            )
        extensions: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
        if callable(environ.get("wsgi.early_hints")):  # gunicorn: 103 Early Hints
            extensions["http.response.early_hint"] = {}
        try:
            scope = http_scope(environ, state=lifespan.state.copy(), extensions=extensions)
        except ScopeError as exc:
            logger.info("bad request: %s", exc)
            return _plain_response(start_response, "400 Bad Request", "Bad Request")
        ex = Exchange(environ, scope, loop, self._settings)
        coro = ex.run(self.app, scope)
        if context is not None:
            ex.mark = context.loop.scheduled
            ex.task = context.loop.start_task(coro)
        else:
            ex.future = asyncio.run_coroutine_threadsafe(coro, loop)

        if self.request_timeout is not None:
            ex.deadline = time.monotonic() + self.request_timeout
        try:
            while ex.phase is Phase.AWAITING_START and not ex.finished:
                if ex.hints:
                    ex.send_hints()
                ex.wait_progress()
        except RequestTimeout as exc:
            finish_exchange(ex)  # cancels the task
            logger.warning("%s; answering 504", exc)
            return _plain_response(start_response, "504 Gateway Timeout", "Gateway Timeout")
        except BaseException:  # KeyboardInterrupt, SystemExit, a broken loop: no orphans
            finish_exchange(ex)
            raise

        # Shared mode: the loop thread sets the phase before ``finished``, so ``finished``
        # is read first; a phase read before it could be stale once ``finished`` is true.
        finished = ex.finished
        phase = ex.phase
        if ex.hints:  # queued before the phase moved on, so all of them are here
            ex.send_hints()
        if phase is Phase.REJECTED or (finished and phase is not Phase.COMPLETE):
            # Nothing has reached the server yet: it gets the app's own exception, so it
            # answers 500 and logs it, and enclosing WSGI apps and tracers see it.
            error = incomplete_error(ex)
            finish_exchange(ex)
            logger.debug("ASGI app failed before the response started: %s", ex.request_line)
            raise error

        if ex.finished and ex.phase is Phase.COMPLETE and ex.path is None:
            # The whole response is known and nothing runs after it: a plain list.
            if context is not None and context.loop.scheduled != ex.mark:
                context.loop.run_ready()  # let what the request spawned start now
            start_response(ex.status, ex.headers)
            return list(ex.chunks)

        body = ResponseBody(ex)
        if ex.phase is Phase.COMPLETE and ex.path is not None and not ex.chunks:
            file_wrapper = environ.get("wsgi.file_wrapper")
            if file_wrapper is not None:
                path = ex.path
                try:
                    file = PathFile(path, body.close)
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
    def _start(start_response: StartResponse, ex: Exchange, body: ResponseBody) -> None:
        try:
            start_response(ex.status, ex.headers)
        except BaseException:  # the server refused the head: end the request here
            body.close()
            raise
