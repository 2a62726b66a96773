"""The ``websocket`` scenario: echo messages per second through ``WSGIToASGI``.

One uvicorn process (pinned to core 0) serves ``benchmarks/_websocket_apps.py``: the
same echo as a native ASGI endpoint (the baseline) and as a WSGI app behind
``WSGIToASGI``. The client (the ``websockets`` package on asyncio, pinned to core 1)
sends a 32-byte text message and waits for its echo, over and over, on one connection
and on 100 concurrent connections. Rounds alternate native and bridged points; a
ratio is the bridged rate over the mean of the native points just before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator

from benchmarks._config import Config
from benchmarks._measure import median
from benchmarks._report import Section, Table, Target, fmt
from benchmarks._servers import LOAD_CPU, ROOT, Server, pinned, running

ONE_CONNECTION_RATIO = 0.5
_MESSAGE = "x" * 32


class _EchoServer(Server):
    """uvicorn (uvloop, websockets) serving both echo endpoints."""

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "uvicorn", "benchmarks._websocket_apps:app"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--log-level", "warning", "--no-access-log"]
        argv += ["--loop", "uvloop", "--ws", "websockets"]
        return pinned("0", argv)


@contextlib.contextmanager
def _client_core() -> Iterator[None]:
    """Run the client on the load generator's core while measuring."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _echo_rate(url: str, connections: int, seconds: float) -> float:
    """Messages per second echoed over ``connections`` connections for ``seconds``."""
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None) for _ in range(connections)]
    counts = [0] * connections
    try:
        for ws in sockets:  # warm up each connection (and its server thread)
            await ws.send(_MESSAGE)
            await ws.recv()
        stop = time.monotonic() + seconds

        async def loop(index: int) -> None:
            ws = sockets[index]
            while time.monotonic() < stop:
                await ws.send(_MESSAGE)
                if await ws.recv() != _MESSAGE:
                    raise RuntimeError("echo mismatch")
                counts[index] += 1

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(loop(i) for i in range(connections))), 60)
        return sum(counts) / (time.monotonic() - started)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _point(url: str, connections: int, seconds: float) -> float:
    try:
        import uvloop

        return uvloop.run(_echo_rate(url, connections, seconds))
    except ImportError:
        return asyncio.run(_echo_rate(url, connections, seconds))


def run(cfg: Config) -> Section:
    started = time.monotonic()
    server = _EchoServer("websocket-echo", "uvicorn")
    rounds = 2 if cfg.quick else 5
    seconds = cfg.duration
    table = Table(["connections", "native msg/s", "WSGIToASGI msg/s", "ratio"], [])
    data: dict[str, dict[str, float]] = {}
    targets: list[Target] = []
    with running([server], cfg.logs), _client_core():
        base = server.url.replace("http://", "ws://")
        for connections in (1, 100):
            native: list[float] = []
            bridged: list[float] = []
            ratios: list[float] = []
            before = _point(base + "/native", connections, seconds)
            native.append(before)
            for _ in range(rounds):
                ours = _point(base + "/wsgi", connections, seconds)
                after = _point(base + "/native", connections, seconds)
                bridged.append(ours)
                native.append(after)
                ratios.append(ours / ((before + after) / 2))
                before = after
            ratio = median(ratios)
            data[str(connections)] = {
                "native": median(native),
                "bridged": median(bridged),
                "ratio": ratio,
            }
            table.rows.append(
                [str(connections), fmt(median(native)), fmt(median(bridged)), f"{fmt(ratio)}x"]
            )
            if connections == 1:
                targets.append(
                    Target(
                        "WebSocket echo, 1 connection, WSGIToASGI vs native ASGI",
                        ratio,
                        ONE_CONNECTION_RATIO,
                        ">=",
                        "x",
                        f"ratios per round: {', '.join(fmt(r) for r in ratios)}",
                    )
                )
    section = Section(
        "websocket",
        "WebSockets: echo through WSGIToASGI vs a native ASGI endpoint",
        "A 32-byte text message sent and its echo awaited, repeatedly, over one connection "
        "and over 100 at once, on one uvicorn process (uvloop, `websockets`). The WSGI echo "
        "runs on `WSGIToASGI`'s WebSocket pool, one thread per connection.",
        [table],
        targets=targets,
        notes=[
            f"{rounds} rounds of {fmt(seconds)} s points, native and bridged alternating; "
            "the ratio is the median over rounds of bridged / mean(native before, after).",
            f"Client: the `websockets` package in the harness process, pinned to core "
            f"{LOAD_CPU}; it is part of every round trip, so the ratio understates the "
            "server-side gap.",
            f"Code: `{(ROOT / 'benchmarks' / '_websocket_apps.py').relative_to(ROOT)}`.",
        ],
        data=data,
    )
    section.seconds = time.monotonic() - started
    return section
