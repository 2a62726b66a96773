"""Where thread-sensitive sync work runs under ``ASGIToWSGI`` (``bridge/_thread_sensitive.py``).

The fake app does what Django's ``ASGIHandler`` does: it enters asgiref's
``ThreadSensitiveContext()`` around the request and runs sync work with
``sync_to_async`` (thread-sensitive by default), before and after its response. It
records the name of the thread each call ran on; thread names are unique (asgiref's
executors and ours are numbered), so reused thread idents cannot hide a new thread.

The real project (ORM on sqlite, ``CONN_MAX_AGE``) runs in a subprocess, because the
test process configures other Django settings: see the last tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, async_to_sync, sync_to_async

import bridge._thread_sensitive as thread_sensitive_module
from bridge import ASGIToWSGI, thread_sensitive
from bridge._thread_sensitive import ThreadSensitiveApp, thread_sensitive_if_django
from tests.servers import ROOT
from tests.wsgi_call import call_wsgi_app

WSGI_THREADS = 4
REQUESTS = 40

# Thread mode runs the work inline only with asgiref's ThreadSensitiveContext(executor=)
# (3.13+); older asgiref gets the pool in both modes.
inline_only = pytest.mark.skipif(
    not thread_sensitive_module._HAS_EXECUTOR_API,
    reason="asgiref < 3.13: thread mode uses the executor pool",
)


def _name() -> str:
    return threading.current_thread().name


class DjangoLike:
    """Sync work inside the app's own ``ThreadSensitiveContext()``, as Django does it."""

    def __init__(self, sync_calls: int = 3, work: Callable[[], Any] = _name) -> None:
        self.sync_calls = sync_calls
        self.work = work
        self.seen: list[tuple[str, list[Any]]] = []  # (path, results of each sync call)
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        async with ThreadSensitiveContext():
            await receive()
            results = [await sync_to_async(self.work)() for _ in range(self.sync_calls)]
            body = b"ok"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            # After the response, like Django's response.close() and request_finished.
            results.append(await sync_to_async(self.work)())
        with self.lock:
            self.seen.append((scope["path"], results))


def _call(app: Any, path: str = "/") -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    return call_wsgi_app(app, environ)


def _serve(app: Any, requests: int = REQUESTS, threads: int = WSGI_THREADS) -> list[str]:
    """``requests`` calls from a fixed pool of named threads, like a WSGI server's."""
    left = [requests]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    number = left[0]
                status, body = _call(app, f"/{number}/{_name()}")
                assert (status, body) == ("200 OK", b"ok")
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    pool = [threading.Thread(target=worker, name=f"wsgi-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert not errors, errors
    return [thread.name for thread in pool]


def _settled(app: DjangoLike, count: int) -> None:
    """Wait until ``count`` requests ended: shared mode finishes post-response work after
    the WSGI side has moved on."""
    deadline = time.monotonic() + 20
    while len(app.seen) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(app.seen) == count


@pytest.fixture
def adapters() -> Iterator[Callable[..., ASGIToWSGI]]:
    made: list[ASGIToWSGI] = []

    def factory(app: Any, **options: Any) -> ASGIToWSGI:
        adapter = ASGIToWSGI(app, lifespan="off", **options)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()


# --- which apps are wrapped ------------------------------------------------------------


def test_other_apps_are_served_unwrapped(adapters: Callable[..., ASGIToWSGI]) -> None:
    app = DjangoLike()
    for mode in ("thread", "shared"):
        assert adapters(app, loop_mode=mode).app is app


def test_django_handler_is_found_directly_and_behind_wrappers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lookup goes through sys.modules (Django is never imported for it), so a stand-in
    # module does: importing Django's here would leave its unconfigured lazy settings in
    # this process for the leak checks of other tests to trip over.
    class ASGIHandler:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("never called")

    module = types.ModuleType("django.core.handlers.asgi")
    module.ASGIHandler = ASGIHandler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django.core.handlers.asgi", module)
    handler = ASGIHandler()

    class Middleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    class Router:
        def __init__(self, mapping: dict[str, Any]) -> None:
            self.application_mapping = mapping

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.application_mapping[scope["type"]](scope, receive, send)

    for app in (handler, Middleware(Middleware(handler)), Router({"http": handler})):
        wrapped = thread_sensitive_if_django(app)
        assert isinstance(wrapped, ThreadSensitiveApp)
        assert wrapped.app is app
        assert thread_sensitive_if_django(wrapped) is wrapped  # never twice
    assert thread_sensitive_if_django(Middleware(DjangoLike())).__class__ is Middleware


def test_marking_is_idempotent(adapters: Callable[..., ASGIToWSGI]) -> None:
    marked = thread_sensitive(DjangoLike())
    assert thread_sensitive(marked) is marked
    assert adapters(marked).app is marked


# --- where the work runs ----------------------------------------------------------------


def test_unmarked_app_keeps_asgirefs_thread_per_request(
    adapters: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    # The control: what Django gets without this module, and what the others avoid.
    app = DjangoLike()
    _serve(adapters(app, loop_mode=loop_mode))
    _settled(app, REQUESTS)
    threads = {name for _, results in app.seen for name in results}
    assert len(threads) == REQUESTS  # each request's own new thread


@inline_only
def test_thread_mode_runs_sync_work_on_the_wsgi_thread(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    app = DjangoLike()
    wsgi_threads = _serve(adapters(thread_sensitive(app)))
    assert len(app.seen) == REQUESTS
    for path, results in app.seen:
        served_by = path.rsplit("/", 1)[1]
        assert results == [served_by] * 4, (path, results)
    assert {name for _, results in app.seen for name in results} <= set(wsgi_threads)


def test_shared_mode_reuses_a_bounded_pool(adapters: Callable[..., ASGIToWSGI]) -> None:
    app = DjangoLike()
    adapter = adapters(thread_sensitive(app), loop_mode="shared")
    _serve(adapter)
    _settled(app, REQUESTS)
    first = {name for _, results in app.seen for name in results}
    _serve(adapter)
    _settled(app, 2 * REQUESTS)
    second = {name for _, results in app.seen for name in results}
    for _, results in app.seen:
        assert len(set(results)) == 1  # one request, one thread
        assert results[0].startswith("bridge-sync-")
    # At most one executor per request in flight (the WSGI threads, plus requests whose
    # post-response work still runs); the second batch reuses them.
    assert len(second) <= 2 * WSGI_THREADS
    assert len(second) < REQUESTS
    pool = adapter.app
    assert isinstance(pool, ThreadSensitiveApp)
    assert pool._pool.size == len(second) >= len(first)


def test_older_asgiref_gets_the_pool_through_its_executor_map(
    adapters: Callable[..., ASGIToWSGI], loop_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asgiref < 3.13 has no ThreadSensitiveContext(executor=...): the pooled executor is
    # put where it looks, and asgiref's shutdown of it is a no-op.
    monkeypatch.setattr(thread_sensitive_module, "_HAS_EXECUTOR_API", False)
    app = DjangoLike()
    adapter = adapters(thread_sensitive(app), loop_mode=loop_mode)
    _serve(adapter)
    _serve(adapter)
    _settled(app, 2 * REQUESTS)
    threads = {name for _, results in app.seen for name in results}
    assert all(name.startswith("bridge-sync-") for name in threads)
    assert len(threads) <= 2 * WSGI_THREADS
    for _, results in app.seen:
        assert len(set(results)) == 1


@inline_only
def test_inline_work_sees_a_plain_sync_thread(adapters: Callable[..., ASGIToWSGI]) -> None:
    def probe() -> tuple[bool, bool]:
        # Django refuses ORM calls where a loop runs; asgiref's note points at our loop.
        running = asyncio._get_running_loop() is not None
        noted = getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None
        return running, noted

    app = DjangoLike(sync_calls=1, work=probe)
    adapter = adapters(thread_sensitive(app))
    assert _call(adapter) == ("200 OK", b"ok")
    assert app.seen[0][1] == [(False, True), (False, True)]
    # Afterwards the WSGI thread is as it was: no note of the (idle) loop, which a later
    # async_to_sync in this thread would otherwise wait on forever, and the loop's
    # call_soon_threadsafe is its own again.
    assert getattr(SyncToAsync.threadlocal, "main_event_loop", None) is None
    loop = adapter._runner.ready().loop
    assert "call_soon_threadsafe" not in vars(loop)


@pytest.mark.timeout(30)
def test_nested_async_to_sync_in_inline_work(
    adapters: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    # sync -> async_to_sync -> sync_to_async: the inner sync call comes back to the
    # thread of the outer one, as asgiref promises, and nothing deadlocks on the blocked
    # per-thread loop.
    async def inner() -> str:
        return await sync_to_async(_name)()

    def outer() -> tuple[str, str]:
        return _name(), async_to_sync(inner)()

    app = DjangoLike(sync_calls=2, work=outer)
    _serve(adapters(thread_sensitive(app), loop_mode=loop_mode), requests=8)
    _settled(app, 8)
    for _, results in app.seen:
        for outer_thread, inner_thread in results:
            assert inner_thread == outer_thread


def test_sync_errors_reach_the_app(adapters: Callable[..., ASGIToWSGI], loop_mode: str) -> None:
    class Failing(DjangoLike):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            def fail() -> None:
                raise LookupError("from the sync side")

            async with ThreadSensitiveContext():
                try:
                    await sync_to_async(fail)()
                except LookupError as exc:
                    body = str(exc).encode()
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": body})

    adapter = adapters(thread_sensitive(Failing()), loop_mode=loop_mode)
    assert _call(adapter) == ("500 Internal Server Error", b"from the sync side")


def test_lifespan_passes_through(loop_mode: str) -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await DjangoLike()(scope, receive, send)

    with ASGIToWSGI(thread_sensitive(app), loop_mode=loop_mode, lifespan="on") as adapter:
        assert _call(adapter) == ("200 OK", b"ok")
    assert events == ["lifespan.startup", "lifespan.shutdown"]


# --- the real project, in process (a subprocess with its own Django settings) ----------


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("django")
    path = tmp_path_factory.mktemp("djproject") / "db.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "tests.apps.djproject.orm.prepare", str(path)],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    return path


def _probe(database: Path, app: str, requests: int = 300, threads: int = 8) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.apps.djproject.orm.probe",
            str(database),
            app,
            str(requests),
            str(threads),
        ],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["statuses"] == {"200 OK": requests}, result
    return result


@inline_only
def test_django_conn_max_age_holds_through_the_bridge(database: Path) -> None:
    native = _probe(database, "wsgi")["after"]
    assert native["connections_opened"] == 8  # one per WSGI thread, kept (CONN_MAX_AGE)
    for app in ("thread", "marked"):
        bridged = _probe(database, app)["after"]
        # The same connections, handles and threads as the native WSGI app.
        assert bridged["connections_opened"] == native["connections_opened"], app
        assert bridged["sqlite_handles_open"] == native["sqlite_handles_open"], app
        assert bridged["threads"] == native["threads"], app


def test_django_shared_mode_pool_is_bounded(database: Path) -> None:
    after = _probe(database, "shared")["after"]
    # One connection per pool thread; the pool tracks requests in flight (8 threads,
    # plus those in their post-response work), not requests served.
    assert 8 <= after["connections_opened"] <= 16
    assert after["sqlite_handles_open"] == after["connections_opened"]
    # main, the loop thread, 8 WSGI threads, the pool.
    assert after["threads"] == 2 + 8 + after["connections_opened"]


def test_django_unmarked_opens_a_connection_per_request(database: Path) -> None:
    # The control: Django hidden in a plain function and not marked (asgiref's default).
    after = _probe(database, "unmarked")["after"]
    assert after["connections_opened"] == 300


@inline_only
def test_request_timeout_does_not_interrupt_inline_sync_work(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    # Thread mode runs sync work on the WSGI thread itself, as native WSGI does: nothing
    # interrupts it, and a response completed without waiting on the loop is delivered
    # (request_timeout bounds time the app spends awaiting, not sync calls).
    def slow() -> str:
        time.sleep(0.5)
        return _name()

    app = DjangoLike(sync_calls=1, work=slow)
    adapter = adapters(thread_sensitive(app), request_timeout=0.1)
    started = time.monotonic()
    assert _call(adapter) == ("200 OK", b"ok")
    assert time.monotonic() - started >= 0.5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
# Python 3.12+ warns on fork() with threads alive (the pool's); that is the point.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.timeout(60)
def test_a_forked_child_builds_its_own_pool(adapters: Callable[..., ASGIToWSGI]) -> None:
    app = DjangoLike(sync_calls=1)
    adapter = adapters(thread_sensitive(app), loop_mode="shared")
    assert _call(adapter) == ("200 OK", b"ok")
    _settled(app, 1)
    parent_thread = app.seen[0][1][0]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        signal.alarm(20)  # a child stuck on a dead executor dies instead of lingering
        try:
            # The inherited executor's thread does not exist here: without a fresh pool
            # this request would wait for it forever (the parent sees the exit status).
            served = _call(adapter) == ("200 OK", b"ok")
            _settled(app, 2)
            fresh = app.seen[1][1][0] != parent_thread
            code = 0 if served and fresh else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _call(adapter) == ("200 OK", b"ok")  # the parent is unaffected
    _settled(app, 2)
    assert app.seen[1][1][0] == parent_thread


@inline_only
@pytest.mark.timeout(30)
def test_scheduling_onto_the_blocked_loop_is_refused(adapters: Callable[..., ASGIToWSGI]) -> None:
    # Sync code that hands a coroutine to the request's own loop and waits for it would
    # wait forever (that loop's thread is running the sync code): it gets an error.
    class Scheduling(DjangoLike):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            loop = asyncio.get_running_loop()

            async def nothing() -> None:
                return None

            def schedule() -> str:
                coro = nothing()
                try:
                    asyncio.run_coroutine_threadsafe(coro, loop).result(5)
                except RuntimeError as exc:
                    coro.close()
                    return str(exc)
                return "scheduled"

            async with ThreadSensitiveContext():
                body = (await sync_to_async(schedule)()).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    adapter = adapters(thread_sensitive(Scheduling()))
    assert _call(adapter) == (
        "200 OK",
        b"this thread's event loop is blocked by the sync call it runs",
    )
