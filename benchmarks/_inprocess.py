"""Microseconds an adapter adds per request, in process (no sockets, no server).

W->A: each ASGI app (``WSGIToASGI``, a2wsgi, asgiref, Starlette around the raw WSGI
app) is awaited on a uvloop loop, the way a server awaits it, one request at a time
("sequential": latency, thread hand-offs included) and 16 at a time ("16 in flight":
throughput). The baseline is the raw native ASGI app driven by the same code, so the
driver's own cost cancels out. A->W: each WSGI app (``ASGIToWSGI`` in both loop modes,
a2wsgi) is called, iterated and closed on the calling thread, the way a WSGI server
does; the baseline is the raw native WSGI app. Requests: ``GET /`` (13-byte answer)
and ``POST /echo`` with 64 KiB.
"""

from __future__ import annotations

import asyncio
import io
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks._apps import a2wsgi_available, build, starlette_wsgi_available
from benchmarks._config import Config
from benchmarks._measure import Sampler, drain_wsgi, interleave, median
from benchmarks._report import Section, Table, Target, bar_plot, fmt

ECHO_SIZE = 64 * 1024
INFLIGHT = 16
# The targets of issue #15 (performance, round two).
W2A_LIMIT_US = 25.0
A2W_LIMIT_US = 8.0
# The figure for a2wsgi (both directions): the µs limits as ratios to it.
A2WSGI_US = 150.0

_BODY = bytes(ECHO_SIZE)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _scope(path: str, method: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"content-type", b"application/octet-stream"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 54321),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _one_asgi(app: Any, scope: dict[str, Any], body: bytes) -> None:
    """One request the way a server runs it: disconnect only after the response."""
    done = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(dict(scope), receive, send)


def _asgi_sampler(
    loop: asyncio.AbstractEventLoop, app: Any, scope: dict[str, Any], body: bytes, inflight: int
) -> Sampler:
    async def worker(n: int) -> None:
        for _ in range(n):
            await _one_asgi(app, scope, body)

    async def many(n: int) -> None:
        share, rest = divmod(n, inflight)
        await asyncio.gather(*(worker(share + (i < rest)) for i in range(inflight)))

    def sample(n: int) -> float:
        start = time.perf_counter()
        loop.run_until_complete(worker(n) if inflight == 1 else many(n))
        return time.perf_counter() - start

    return sample


def _environ(path: str, method: str, body: bytes) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "54321",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = "application/octet-stream"
    return environ


def _wsgi_sampler(app: Callable[..., Any], environ: dict[str, Any], body: bytes) -> Sampler:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def sample(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            env = environ.copy()
            env["wsgi.input"] = io.BytesIO(body)
            drain_wsgi(app(env, start_response))
        return time.perf_counter() - start

    return sample


FLOOR = "thread round trip (floor)"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _HopFloor:
    """The native ASGI app behind one bare thread round trip: a job put on a queue, a
    waiting thread takes it and resolves the loop's future with ``call_soon_threadsafe``.

    No WSGI, no request or response crossing: what any adapter that runs the app on
    another thread pays at least, on this machine, in this run.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, Any] | None]
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="bench-floor", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future = job
            loop.call_soon_threadsafe(_resolve, future)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future))
        await future
        await self.app(scope, receive, send)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


REQUESTS = {"GET / (13 B)": ("/", "GET", b""), "POST /echo 64 KiB": ("/echo", "POST", _BODY)}


def _w2a_contenders() -> list[str]:
    names = ["WSGIToASGI"]
    if a2wsgi_available():
        names.append("a2wsgi WSGIMiddleware")
    names.append("asgiref WsgiToAsgi")
    if starlette_wsgi_available() is None:
        names.append("Starlette WSGIMiddleware")
    return names


def _a2w_contenders() -> list[str]:
    names = ["ASGIToWSGI thread", "ASGIToWSGI shared"]
    if a2wsgi_available():
        names.append("a2wsgi ASGIMiddleware")
    return names


def run(cfg: Config) -> Section:
    section = Section(
        "inprocess",
        "In-process overhead per request",
        "µs per request, median of interleaved rounds; *added* = contender minus the native "
        "app of the interface the server speaks, driven by the same code. "
        "W->A apps are awaited on a uvloop loop; A->W apps are called on the calling thread.",
    )
    results: dict[str, dict[str, dict[str, float]]] = {}

    # --- W->A --------------------------------------------------------------------------
    loop = _new_loop()
    apps = {name: build(f"{name}:raw") for name in ["native ASGI", *_w2a_contenders()]}
    apps[FLOOR] = _HopFloor(apps["native ASGI"])
    try:
        for label, (path, method, body) in REQUESTS.items():
            for inflight in (1, INFLIGHT):
                scope = _scope(path, method, body)
                samplers = {
                    name: _asgi_sampler(loop, app, scope, body, inflight)
                    for name, app in apps.items()
                }
                medians = {
                    name: median(values)
                    for name, values in interleave(
                        samplers, cfg.rounds * 2 + 1, cfg.inprocess_target
                    ).items()
                }
                mode = "sequential" if inflight == 1 else f"{inflight} in flight"
                results[f"W->A {label}, {mode}"] = _rows(medians, "native ASGI")
    finally:
        for app in apps.values():
            close = getattr(app, "close", None)
            if callable(close):
                close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    # --- A->W --------------------------------------------------------------------------
    wsgi_apps = {name: build(f"{name}:raw") for name in ["native WSGI", *_a2w_contenders()]}
    try:
        for label, (path, method, body) in REQUESTS.items():
            environ = _environ(path, method, body)
            samplers = {name: _wsgi_sampler(app, environ, body) for name, app in wsgi_apps.items()}
            medians = {
                name: median(values)
                for name, values in interleave(
                    samplers, cfg.rounds * 2 + 1, cfg.inprocess_target
                ).items()
            }
            results[f"A->W {label}"] = _rows(medians, "native WSGI")
    finally:
        for app in wsgi_apps.values():
            close = getattr(app, "close", None)
            if callable(close):
                close()

    # --- tables, targets, plot -----------------------------------------------------------
    for title, rows in results.items():
        reference = "a2wsgi WSGIMiddleware" if title.startswith("W->A") else "a2wsgi ASGIMiddleware"
        ref_added = rows.get(reference, {}).get("added", float("nan"))
        table = Table(["contender", "µs / request", "µs added", "added vs a2wsgi"], [], title)
        for name, row in rows.items():
            ratio = row["added"] / ref_added if ref_added > 0 else float("nan")
            table.rows.append(
                [
                    name,
                    fmt(row["us"]),
                    "baseline" if name.startswith("native") else fmt(row["added"]),
                    "" if name.startswith("native") else f"{fmt(ratio)}x",
                ]
            )
        section.tables.append(table)
    section.targets += _targets(results)
    section.data = results
    labels, added = [], []
    for title, rows in results.items():
        for name, row in rows.items():
            if not name.startswith("native") and "16 in flight" not in title:
                labels.append(f"{name} | {title.split(',')[0]}")
                added.append(row["added"])
    section.plots.append(
        bar_plot(
            cfg.out,
            "inprocess_added_us",
            title="µs added per request in process (sequential), lower is better",
            labels=labels,
            series={"µs added": added},
            xlabel="µs added over the native app",
        )
    )
    return section


def _rows(medians: dict[str, float], baseline: str) -> dict[str, dict[str, float]]:
    base = medians[baseline]
    return {name: {"us": us, "added": us - base} for name, us in medians.items()}


def _targets(results: dict[str, dict[str, dict[str, float]]]) -> list[Target]:
    targets = []
    checks = [
        ("W->A", "WSGIToASGI", "a2wsgi WSGIMiddleware", W2A_LIMIT_US, ", sequential"),
        ("A->W", "ASGIToWSGI thread", "a2wsgi ASGIMiddleware", A2W_LIMIT_US, ""),
    ]
    for direction, ours, theirs, limit, suffix in checks:
        for label in REQUESTS:
            rows = results.get(f"{direction} {label}{suffix}")
            if not rows or ours not in rows:
                continue
            added = rows[ours]["added"]
            ref = rows.get(theirs, {}).get("added", float("nan"))
            ratio = added / ref if ref > 0 else float("nan")
            context = f"{theirs}: {fmt(ref)} µs; ours/a2wsgi = {fmt(ratio)}x"
            targets.append(
                Target(f"{ours} µs added, {label} (in process)", added, limit, "<=", " µs", context)
            )
            targets.append(
                Target(
                    f"{ours} added ÷ a2wsgi's added, {label} (same run)",
                    ratio,
                    limit / A2WSGI_US,
                    "<=",
                    "x",
                    f"{fmt(limit)} µs / {fmt(A2WSGI_US)} µs",
                )
            )
    return targets


if __name__ == "__main__":  # pragma: no cover - handy for a single scenario
    from benchmarks.run import main

    main(["--only", "inprocess", *sys.argv[1:]])
