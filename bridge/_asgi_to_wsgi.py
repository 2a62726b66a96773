"""``ASGIToWSGI``: serve an ASGI 3 (or 2) application from any WSGI server.

Each WSGI call becomes one ASGI ``http`` connection (ASGI spec "HTTP & WebSocket" 2.4,
lifespan per "Lifespan" 2.0). Where a request's response is produced: ``__call__``
below starts the app's task and waits for its head, then hands the server either the
whole body or a ``ResponseBody`` that pulls chunks as the app sends them.

The parts, one file each:

* ``_a2w_lifespan.py``: the lifespan protocol on one loop.
* ``_a2w_runners.py``: the loop mode (a loop per WSGI thread, or one shared loop),
  injected here as a runner; each request gets a ``Link`` to its loop.
* ``_a2w_exchange.py``: one request, its state machine and both of its sides.
* ``_a2w_body.py``: the WSGI response iterable.
* ``_loops.py``: loops, threads, and the fork and exit hooks.

Nothing starts in ``__init__``: loops, threads and lifespan start lazily in the process
and thread that serves requests (pre-fork servers, ``--preload``). Failures are logged on
the ``bridge.asgi_to_wsgi`` logger; never printed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from asgiref.compatibility import guarantee_single_callable

from bridge._a2w_body import PathFile, ResponseBody
from bridge._a2w_exchange import (
    AWAITING_START,
    DONE,
    FAILED,
    REJECTED,
    STREAMING,
    Exchange,
    RequestTimeout,
    Settings,
)
from bridge._a2w_lifespan import (
    Lifespan,
    LifespanMode,
    LifespanPhase,
    LifespanStartupFailed,
    LifespanUnsupported,
)
from bridge._a2w_runners import Runner, SharedRunner, ThreadRunner
from bridge._a2w_scope import a2w_scope
from bridge._http import InvalidResponse
from bridge._interface import require_int, require_interface
from bridge._loops import close_at_exit, closed, forget_after_fork
from bridge._scope import ScopeError
from bridge._thread_sensitive import thread_sensitive_if_django
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

# Read on every request: a module-level name, not an Enum attribute lookup (Python code).
_READY = LifespanPhase.READY


def _plain_response(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _require_seconds(name: str, value: object) -> None:
    # Seconds may be fractional, so this is not _interface.require_int.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"ASGIToWSGI({name}={value!r}): expected a number of seconds (int or float), "
            f"got {type(value).__name__}; pass e.g. {name}=30.0"
        )
    if not value > 0:
        raise ValueError(f"ASGIToWSGI({name}={value!r}): must be positive")


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
    gets 2 MiB (or 64 chunks) ahead of the server is paused in ``send()`` until the
    server has taken all of it.
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
        self._closed = False
        self._settings = Settings(chunk_size, background_timeout)
        # "off" once the app has shown it does not support lifespan, so that loops
        # created later (thread mode) do not ask again.
        self._lifespan_mode: LifespanMode = lifespan
        self._report_lock = threading.Lock()
        runner = SharedRunner if loop_mode == "shared" else ThreadRunner
        self._runner: Runner = runner(self._new_lifespan)
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
        """In a forked child (``_loops`` calls it): locks held in the parent are fresh."""
        self._report_lock = threading.Lock()

    def start(self) -> None:
        """Start eagerly: create this thread's (or the shared) loop and run lifespan startup.

        Raises ``LifespanStartupFailed`` when startup fails.
        """
        if self._closed:
            raise RuntimeError("ASGIToWSGI.start() after close()")
        lifespan = self._runner.ready().lifespan
        if lifespan.phase is LifespanPhase.FAILED:
            raise LifespanStartupFailed(lifespan.failure)

    def close(self) -> None:
        """Run lifespan shutdown and close every loop this adapter created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        closed(self)
        self._runner.close(self.lifespan_timeout)

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
        if self._closed:
            logger.error("request after ASGIToWSGI.close(); answering 503")
            return _plain_response(start_response, "503 Service Unavailable", "Unavailable")
        context = self._runner.ready()
        lifespan = context.lifespan
        if lifespan.phase is not _READY:
            logger.error("ASGI lifespan startup failed; answering 500: %s", lifespan.failure)
            return _plain_response(
                start_response, "500 Internal Server Error", "Internal Server Error"
            )
        extensions: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
        if callable(environ.get("wsgi.early_hints")):  # gunicorn: 103 Early Hints
            extensions["http.response.early_hint"] = {}
        try:
            scope = a2w_scope(environ, lifespan.state.copy(), extensions)
        except ScopeError as exc:
            logger.info("bad request: %s", exc)
            return _plain_response(start_response, "400 Bad Request", "Bad Request")
        ex = Exchange(environ, scope, context.link(), self._settings)
        # The one place a request's app coroutine is created and started.
        ex.link.start(ex.run(self.app))

        if self.request_timeout is not None:
            ex.deadline = time.monotonic() + self.request_timeout
        try:
            while ex.state is AWAITING_START:
                ex.wait_progress()
        except RequestTimeout as exc:
            ex.finish()  # cancels the task
            logger.warning("%s; answering 504", exc)
            return _plain_response(start_response, "504 Gateway Timeout", "Gateway Timeout")
        except BaseException:  # KeyboardInterrupt, SystemExit, a broken loop: no orphans
            ex.finish()
            raise

        state = ex.state
        if state is REJECTED or state is FAILED:
            # Nothing has reached the server yet: it gets the app's own exception, so it
            # answers 500 and logs it, and enclosing WSGI apps and tracers see it.
            error = ex.failure()
            ex.finish()
            logger.debug("ASGI app failed before the response started: %s", ex.request_line)
            raise error

        if state is DONE and ex.path is None:
            # The whole response is known and nothing runs after it: a plain list.
            ex.link.settle()
            start_response(ex.status, ex.headers)
            return list(ex.chunks)

        body = ResponseBody(ex)
        if state is not STREAMING and ex.path is not None and not ex.chunks:
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
