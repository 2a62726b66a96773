"""Microseconds ASGIToWSGI adds per request, measured in-process (no sockets).

Calls a native WSGI hello app, ``ASGIToWSGI`` around a native ASGI hello app (both loop
modes) and ``a2wsgi.ASGIMiddleware`` around the same ASGI app, with one shared environ
template, in interleaved rounds so that machine noise hits every contender alike.
Prints the median microseconds per request and the microseconds added over native
WSGI as a markdown table.

    python benchmarks/bench_asgi_to_wsgi.py [--rounds 15] [--requests 2000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge._asgi_to_wsgi import ASGIToWSGI

BODY = b"Hello, world!"


def wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", "13")])
    return [BODY]


async def asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: returning without messages means "not supported"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/hello",
        "QUERY_STRING": "a=1",
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
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def one_round(app: Callable[..., Iterable[bytes]], requests: int) -> float:
    """Median-free single timing: microseconds per request over ``requests`` calls."""
    template = environ()
    start = time.perf_counter()
    for _ in range(requests):
        env = template.copy()
        result = app(env, _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    contenders: dict[str, Callable[..., Iterable[bytes]]] = {
        "native WSGI hello": wsgi_hello,
        "ASGIToWSGI (loop_mode='thread')": ASGIToWSGI(asgi_hello),
        "ASGIToWSGI (loop_mode='shared')": ASGIToWSGI(asgi_hello, loop_mode="shared"),
    }
    try:
        from a2wsgi import ASGIMiddleware

        contenders["a2wsgi.ASGIMiddleware"] = ASGIMiddleware(asgi_hello)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - optional contender
        print("a2wsgi not installed; skipping it", file=sys.stderr)

    for app in contenders.values():  # warm up: loops, lifespan, caches
        one_round(app, 200)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, app in contenders.items():
            samples[name].append(one_round(app, args.requests))

    native = statistics.median(samples["native WSGI hello"])
    python = sys.version.split()[0]
    print(f"{args.rounds} interleaved rounds x {args.requests} requests, Python {python}")
    print()
    print("| contender | median µs/request | µs added vs native WSGI |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median - native:+.2f} |")

    for app in contenders.values():
        close = getattr(app, "close", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
