"""Throughput and latency against concurrency, for each adapter beside its alternatives.

Two groups, each on one server kind so only the adapter differs: the raw WSGI hello
app through ``WSGIToASGI`` and a2wsgi on uvicorn, beside the raw native ASGI hello app
on the same uvicorn; the raw ASGI hello app through ``ASGIToWSGI`` (thread loops) and
a2wsgi on gunicorn gthread, beside the raw native WSGI hello app on the same gunicorn.
Each contender is loaded with 1, 4, 16, 64 and 256 keep-alive connections (``wrk
--latency``); every point gives req/s, p50 and p99. Contenders take turns level by
level, so drift hits all three alike.
"""

from __future__ import annotations

import time

from benchmarks._apps import a2wsgi_available
from benchmarks._config import Config
from benchmarks._curves import Point, concurrency_plot, latency_load
from benchmarks._measure import median
from benchmarks._report import Section, Table, fmt
from benchmarks._servers import GTHREAD_THREADS, Server, running

LEVELS = (1, 4, 16, 64, 256)
QUICK_LEVELS = (1, 16, 256)

# (key, title, server kind, [ours, alternative, native])
GROUPS = [
    (
        "concurrency_w2a",
        "WSGI hello on uvicorn",
        "uvicorn",
        ["WSGIToASGI:raw", "a2wsgi WSGIMiddleware:raw", "native ASGI:raw"],
    ),
    (
        "concurrency_a2w",
        "ASGI hello on gunicorn gthread",
        "gunicorn",
        ["ASGIToWSGI thread:raw", "a2wsgi ASGIMiddleware:raw", "native WSGI:raw"],
    ),
]


def _name(spec: str) -> str:
    return spec.partition(":")[0]


def run(cfg: Config) -> Section:
    started = time.monotonic()
    levels = QUICK_LEVELS if cfg.quick else LEVELS
    rounds = 1 if cfg.quick else 2
    duration = cfg.duration
    section = Section(
        "concurrency",
        "How cost grows with concurrency",
        "Requests/s and p50/p99 latency of a hello app against the number of keep-alive "
        f"connections ({', '.join(map(str, levels))}): ours, a2wsgi and the native app on "
        "the same server. W->A on uvicorn (one process), A->W on gunicorn gthread "
        f"(one worker, {GTHREAD_THREADS} threads). Load pinned to core 1, servers to core 0; "
        f"{rounds} round(s) of {fmt(duration)} s points, contenders in turn at each level "
        "(each round starts with a different one); medians over rounds.",
    )
    if cfg.loadgen != "wrk":
        section.notes.append("No wrk here: latencies are not measured (n/a).")
    if not a2wsgi_available():
        section.notes.append("a2wsgi is not installed: skipped.")
    for key, title, kind, all_specs in GROUPS:
        specs = [s for s in all_specs if a2wsgi_available() or not s.startswith("a2wsgi")]
        servers = [Server(spec, kind) for spec in specs]
        points: dict[str, dict[int, list[Point]]] = {
            _name(s.spec): {level: [] for level in levels} for s in servers
        }
        with running(servers, cfg.logs):
            if not cfg.quick:  # warm up: imports, thread pools, caches
                for server in servers:
                    latency_load(server.url + "/", 16, 1.0, cfg.loadgen)
            for index in range(rounds):
                for level in levels:
                    shift = (index + level) % len(servers)
                    for server in servers[shift:] + servers[:shift]:
                        point = latency_load(server.url + "/", level, duration, cfg.loadgen)
                        points[_name(server.spec)][level].append(point)
        table = Table(
            ["contender", "connections", "req/s", "÷ native", "p50 ms", "p99 ms", "errors"], []
        )
        native = _name(specs[-1])
        data: dict[str, dict[str, list[float]]] = {}
        for name, by_level in points.items():
            row: dict[str, list[float]] = {"rate": [], "p50_ms": [], "p99_ms": []}
            for level in levels:
                runs = by_level[level]
                rate = median([p.rate for p in runs])
                p50 = median([p.p50_ms for p in runs])
                p99 = median([p.p99_ms for p in runs])
                row["rate"].append(rate)
                row["p50_ms"].append(p50)
                row["p99_ms"].append(p99)
                base = median([p.rate for p in points[native][level]])
                table.rows.append(
                    [
                        name,
                        str(level),
                        fmt(rate),
                        f"{fmt(rate / base)}x" if base > 0 else "n/a",
                        fmt(p50),
                        fmt(p99),
                        str(sum(p.errors + p.non2xx for p in runs)),
                    ]
                )
            data[name] = row
        table.caption = f"**{title}**"
        section.tables.append(table)
        section.data[key] = {"levels": list(levels), **data}
        section.plots.append(
            concurrency_plot(
                cfg.out, key, f"{title}: ours, a2wsgi and native against concurrency", levels, data
            )
        )
    section.seconds = time.monotonic() - started
    return section
