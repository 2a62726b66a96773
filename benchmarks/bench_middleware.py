"""Per-request cost of the middleware, in process, beside Starlette's middleware.

Run: ``python benchmarks/bench_middleware.py [--rounds N] [--quick]``

Each scenario times a bare app and the same app wrapped, on ASGI (driven without an
event loop: the apps never wait, so ``coroutine.send(None)`` runs a request to the end)
and on WSGI (call, iterate, close). Variants are timed in interleaved rounds and the
medians compared, so drift on a shared machine hits every variant alike; time is the
thread's CPU time (see :func:`measure`). "added" is the median minus the bare app's
median. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import logging
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from benchmarks._measure import drain_wsgi
from middleware import CORS, AccessLog, GZip
from middleware._encodings import gzip_parameters
from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, RequestHead


class _NothingCore(Core):
    def on_request(self, head: RequestHead) -> None:
        return None


class DoNothing(CoreMiddleware):
    """A middleware written on the public API that leaves every request alone."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, _NothingCore())


class _ForwardASGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _ForwardWSGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


class _HeldHead(Handler):
    """Holds the head, then sends bytes and headers made in advance: all a driver costs
    for a handler that rewrites a whole body (GZip's shape), with no work of its own."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, body: bytes, headers: HeaderList) -> None:
        self._body = body
        self._headers = headers
        self._status = 0

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        self._status = status
        return None

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        return self._body

    def pending_head(self) -> Head | None:
        return self._status, self._headers


class _HeldHeadCore(Core):
    def __init__(self, body: bytes, headers: HeaderList) -> None:
        self._body = body
        self._headers = headers

    def on_request(self, head: RequestHead) -> Handler:
        return _HeldHead(self._body, list(self._headers))


def held_head(body: bytes) -> Callable[[Any], Any]:
    """The driver's floor for GZip: the same compressed bytes and head, made in advance."""
    compressed = zlib.compress(body, 9, wbits=31)
    headers: HeaderList = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(compressed)).encode()),
        (b"content-encoding", b"gzip"),
        (b"vary", b"Accept-Encoding"),
    ]

    class HeldHead(CoreMiddleware):
        def __init__(self, app: Any) -> None:
            super().__init__(app, _HeldHeadCore(compressed, headers))

    return HeldHead


class _Completing(Handler):
    __slots__ = ()

    def on_complete(self, outcome: Any) -> None:
        return None


class _CompletingCore(Core):
    def on_request(self, head: RequestHead) -> Handler:
        return _Completing()


class Completing(CoreMiddleware):
    """The driver's floor for AccessLog: a handler told when the response is complete
    (``on_complete``), which does nothing."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, _CompletingCore())


def forward(app: Any) -> Any:
    """The least any middleware object costs: an instance whose ``__call__`` calls the app.

    Measured beside the do-nothing middleware, whose figure reads against this floor (on
    ASGI the extra coroutine of ``async def __call__``, on WSGI a call through an instance).
    """
    return _ForwardASGI(app) if asyncio.iscoroutinefunction(app) else _ForwardWSGI(app)


def json_body(size: int) -> bytes:
    # Doubling the item count keeps this linear (1 MiB bodies); the prefix, and so the
    # truncated body, is the same whatever the count.
    count = 1
    while True:
        items = [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(count)]
        body = json.dumps({"items": items}).encode()
        if len(body) >= size:
            return body[:size]
        count *= 2


def asgi_app(body: bytes) -> Any:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # A fresh list each time: Starlette's middleware edits headers in place.
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return app


def wsgi_app(body: bytes) -> Any:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", list(headers))
        return [body]

    return app


def scope_for(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"api.example.com"), (b"user-agent", b"bench/1.0"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def environ_for(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/items",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "api.example.com",
        "HTTP_USER_AGENT": "bench/1.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        environ["HTTP_" + name.decode().upper().replace("-", "_")] = value.decode()
    return environ


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def asgi_caller(app: Any, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    scope = scope_for(headers)

    def call() -> None:
        coro = app(dict(scope), _receive, _send)
        try:
            coro.send(None)
        except StopIteration:
            return
        raise RuntimeError("the app waited on something; cannot drive it without a loop")

    return call


def wsgi_caller(app: Any, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    environ = environ_for(headers)

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def call() -> None:
        drain_wsgi(app(dict(environ), start_response))

    return call


CLOCK = time.thread_time


def measure(
    variants: dict[str, Callable[[], None]], rounds: int, target: float
) -> dict[str, float]:
    """Median µs per call of each variant, timed in interleaved rounds.

    Timed in the thread's CPU time: every variant is single-threaded, never waits and
    does no I/O, so CPU time is its whole cost, and unlike wall time it leaves out the
    moments a busy machine gives the core to another process.
    """
    loops: dict[str, int] = {}
    for name, call in variants.items():
        call()  # warm up, and fail early
        n, elapsed = 1, 0.0
        while elapsed < target:
            n *= 2
            start = CLOCK()
            for _ in range(n):
                call()
            elapsed = CLOCK() - start
        loops[name] = n
    samples: dict[str, list[float]] = {name: [] for name in variants}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, call in variants.items():
                n = loops[name]
                start = CLOCK()
                for _ in range(n):
                    call()
                samples[name].append((CLOCK() - start) / n * 1e6)
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


RAW_SIZED = "raw zlib, GZip's own parameters"


def raw_zlib(body: bytes, level: int = 9) -> dict[str, Callable[[], None]]:
    """zlib alone at its default parameters (the issue's baseline), and at the window and
    memLevel GZip picks for this body when they differ (the same compressing work as
    GZip's, so GZip's added minus it is what the middleware itself costs)."""

    def compressobj() -> None:
        z = zlib.compressobj(level, zlib.DEFLATED, 31)
        z.compress(body)
        z.flush()

    def one_call() -> None:
        zlib.compress(body, level, wbits=31)

    raw = {"raw zlib.compressobj": compressobj, "raw zlib.compress": one_call}
    wbits, mem_level = gzip_parameters(len(body), level)
    if (wbits, mem_level) != (31, zlib.DEF_MEM_LEVEL):

        def sized() -> None:
            z = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level)
            z.compress(body)
            z.flush()

        raw[RAW_SIZED] = sized
    return raw


class _Sink:
    """A text stream that drops what it is given: the handler formats, nothing is written."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


# What AccessLog writes for the benchmark's request, as one finished line.
ACCESS_LINE = (
    '127.0.0.1 - - [01/Dec/2026:02:00:00 +0000] "GET /items HTTP/1.1" 200 64 "-" "bench/1.0"'
)


def raw_record(logger: logging.Logger) -> dict[str, Callable[[], None]]:
    """The stdlib floors for an access log, through the same logger and handler: one bare
    ``logger.info`` of the finished line (the issue's baseline), and one record made and
    handled without the caller lookup ``logger.info`` does."""

    def info() -> None:
        logger.info(ACCESS_LINE)

    def record() -> None:
        logger.handle(
            logger.makeRecord(logger.name, logging.INFO, __file__, 0, ACCESS_LINE, (), None)
        )

    return {
        "raw logger.info of the same line": info,
        "raw logging record (makeRecord + handle)": record,
    }


FLOOR_HELD = "floor: a held-head handler, output made in advance"
FLOOR_COMPLETING = "floor: a handler with an empty on_complete"
ORIGIN = [(b"origin", b"https://app.example.com")]
GZIP = [(b"accept-encoding", b"gzip, deflate, br")]


Row = tuple[str, str, str, float, float, str]


def collect(rounds: int, target: float, only: str = "") -> list[Row]:
    """Every scenario whose title contains ``only``, as rows of
    (scenario, interface, variant, µs / request, µs added, note)."""
    logger = logging.getLogger("bench.access")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        # A handler that formats every record (as a real one does) into a sink.
        handler = logging.StreamHandler(_Sink())
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    quiet = logging.getLogger("bench.quiet")
    quiet.setLevel(logging.WARNING)

    small, big, tiny = json_body(1024), json_body(100 * 1024), json_body(64)
    huge = json_body(1024 * 1024)
    cors_options: dict[str, Any] = {
        "allow_origins": ["https://app.example.com"],
        "allow_methods": ["GET", "POST"],
    }
    rows: list[Row] = []

    def scenario(
        title: str,
        *,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        ours: dict[str, Callable[[Any], Any]],
        starlette: dict[str, Callable[[Any], Any]],
        extra: dict[str, Callable[[], None]] | None = None,
    ) -> None:
        if only.lower() not in title.lower():
            return
        for interface in ("asgi", "wsgi"):
            make, caller = (
                (asgi_app, asgi_caller) if interface == "asgi" else (wsgi_app, wsgi_caller)
            )
            variants = {"bare app": caller(make(body), headers)}
            for name, wrap in ours.items():
                variants[name] = caller(wrap(make(body)), headers)
            if interface == "asgi":
                for name, wrap in starlette.items():
                    variants[name] = caller(wrap(make(body)), headers)
            variants.update(extra or {})
            result = measure(variants, rounds, target)
            bare = result.pop("bare app")
            raw = result.get("raw zlib.compressobj")
            theirs = [result[name] - bare for name in starlette if name in result]
            for name, value in result.items():
                if name.startswith("raw"):
                    rows.append((title, interface, name, value, value, ""))
                    continue
                added = value - bare
                notes = []
                if raw:
                    notes.append(f"{added / raw:.2f}x raw compressobj")
                if theirs and name not in starlette:
                    notes.append(f"{added / theirs[0]:.2f}x Starlette's added")
                rows.append((title, interface, name, value, added, ", ".join(notes)))
            rows.append((title, interface, "bare app", bare, 0.0, ""))

    scenario(
        "Do-nothing middleware",
        body=tiny,
        headers=[],
        ours={"DoNothing (public API)": DoNothing, "floor: a class that calls the app": forward},
        starlette={},
    )
    scenario(
        "CORS simple request",
        body=tiny,
        headers=ORIGIN,
        ours={"CORS": lambda app: CORS(app, **cors_options)},
        starlette={"Starlette CORSMiddleware": lambda app: CORSMiddleware(app, **cors_options)},
    )
    scenario(
        "GZip 1 KiB JSON",
        body=small,
        headers=GZIP,
        ours={"GZip": GZip, FLOOR_HELD: held_head(small)},
        starlette={"Starlette GZipMiddleware": GZipMiddleware},
        extra=raw_zlib(small),
    )
    scenario(
        "GZip 100 KiB JSON",
        body=big,
        headers=GZIP,
        ours={"GZip": GZip},
        starlette={"Starlette GZipMiddleware": GZipMiddleware},
        extra=raw_zlib(big),
    )
    scenario(
        "GZip 1 MiB JSON",
        body=huge,
        headers=GZIP,
        ours={"GZip": GZip},
        # Not Starlette's: it compresses bodies this large in a worker thread (anyio),
        # which needs a running event loop that this loop-free driver does not have.
        starlette={},
        extra=raw_zlib(huge),
    )
    scenario(
        "AccessLog",
        body=tiny,
        headers=[],
        ours={
            "AccessLog (formatted, to a sink)": lambda app: AccessLog(app, logger=logger),
            "AccessLog (logger disabled)": lambda app: AccessLog(app, logger=quiet),
            FLOOR_COMPLETING: Completing,
        },
        starlette={},
        extra=raw_record(logger),
    )

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", default="", help="run the scenarios whose title has this")
    args = parser.parse_args()
    rounds, target = (5, 0.02) if args.quick else (args.rounds, 0.05)
    load_at_start = os.getloadavg()[0]
    rows = collect(rounds, target, args.only)

    load = os.getloadavg()[0]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f} "
        f"(end) / {load_at_start:.2f} (start), {rounds} interleaved rounds, medians in µs\n"
    )
    print("| scenario | interface | variant | µs / request | µs added | note |")
    print("|---|---|---|---:|---:|---|")
    for title, interface, name, value, added, note in rows:
        print(f"| {title} | {interface} | {name} | {value:.2f} | {added:.2f} | {note} |")


if __name__ == "__main__":
    main()
