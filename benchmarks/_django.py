"""Scenario ``django``: a real Django project's ORM view, served five ways.

The project is ``tests/apps/djproject/orm`` (models on sqlite, ``CONN_MAX_AGE=600``, the
``startproject`` middleware); the view is ``GET /items`` (20 rows and a count as JSON).
Contenders, each one worker process pinned to core 0:

* its WSGI app on gunicorn gthread (8 threads): the baseline;
* its ASGI app through ``ASGIToWSGI`` on the same gunicorn, both loop modes;
* its ASGI app on uvicorn, and on gunicorn's own ``-k asgi`` worker.

First, on fresh servers, 2,000 requests from 8 keep-alive clients, with the project's
``/stats`` read before and after: database connections Django opened, sqlite handles
open (file descriptors on the database) and OS threads. Then interleaved throughput
rounds (B C1 B C2 ... B, as in ``_http.py``) of the same view; ratios are to the mean of
the baseline points around each contender. ``/stats`` is read again at the end, so a
thread count that grows under load shows. For scale, the raw hello apps of ``_apps.py``
are then measured the same five ways (baseline: the WSGI hello on gunicorn gthread).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._config import Config
from benchmarks._load import LoadResult, Rounds, paired_rounds
from benchmarks._measure import median
from benchmarks._report import Section, Table, Target, bar_plot, fmt
from benchmarks._servers import GTHREAD_THREADS, ROOT, Server, pinned, running

PROJECT = "tests.apps.djproject.orm"
COUNTED = 2000
CLIENTS = 8


@dataclasses.dataclass
class _Contender(Server):
    label: str = ""
    target: str = ""
    path: str = "/items"

    def argv(self) -> list[str]:
        python = sys.executable
        bind = f"127.0.0.1:{self.port}"
        quiet = ["--log-level", "warning", "--timeout", "120"]
        if self.kind == "gthread":
            argv = [python, "-m", "gunicorn", self.target, "-b", bind, "-w", "1", "-k"]
            argv += ["gthread", "--threads", str(GTHREAD_THREADS), "--keep-alive", "30", *quiet]
        elif self.kind == "gasgi":
            argv = [python, "-m", "gunicorn", self.target, "-b", bind, "-w", "1", "-k", "asgi"]
            argv += ["--keep-alive", "30", *quiet]
        else:
            argv = [python, "-m", "uvicorn", self.target, "--host", "127.0.0.1"]
            if self.target.startswith("benchmarks._serve"):
                argv.append("--factory")
            argv += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
            argv += ["--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "30"]
        return pinned("0", argv)


def contenders() -> list[_Contender]:
    """The Django project, five ways (the baseline first)."""
    spec = [
        ("native WSGI on gunicorn gthread", "gthread", f"{PROJECT}.wsgi:application"),
        ("ASGIToWSGI thread on gunicorn gthread", "gthread", f"{PROJECT}.bridged:thread"),
        ("ASGIToWSGI shared on gunicorn gthread", "gthread", f"{PROJECT}.bridged:shared"),
        ("ASGI app on uvicorn", "uvicorn", f"{PROJECT}.asgi:application"),
        ("ASGI app on gunicorn -k asgi", "gasgi", f"{PROJECT}.asgi:application"),
    ]
    return [_Contender(spec=t, kind=k, label=label, target=t) for label, k, t in spec]


def hello_contenders() -> list[_Contender]:
    """The raw hello apps of ``_apps.py`` (``$BENCH_APP``), the same five ways."""
    wsgi, asgi = "benchmarks._serve:wsgi()", "benchmarks._serve:asgi()"
    spec = [
        ("native WSGI hello on gunicorn gthread", "gthread", "native WSGI:raw", wsgi),
        ("ASGIToWSGI thread on gunicorn gthread", "gthread", "ASGIToWSGI thread:raw", wsgi),
        ("ASGIToWSGI shared on gunicorn gthread", "gthread", "ASGIToWSGI shared:raw", wsgi),
        ("ASGI hello on uvicorn", "uvicorn", "native ASGI:raw", "benchmarks._serve:asgi"),
        ("ASGI hello on gunicorn -k asgi", "gasgi", "native ASGI:raw", asgi),
    ]
    return [
        _Contender(spec=bench, kind=k, label=label, target=t, path="/")
        for label, k, bench, t in spec
    ]


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def stats(server: Server) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        status, body = _get(conn, "/stats")
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"{server}: /stats answered {status}")
    result: dict[str, Any] = json.loads(body)
    return result


def counted(server: _Contender, requests: int = COUNTED, clients: int = CLIENTS) -> int:
    """``requests`` GETs of the view from ``clients`` keep-alive connections; non-200s."""
    left = [requests]
    bad = [0]
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                status, _ = _get(conn, server.path)
                if status != 200:
                    with lock:
                        bad[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return bad[0]


def _prepare(database: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", f"{PROJECT}.prepare", str(database)],
        check=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
    )


def _rounds(cfg: Config, baseline: _Contender, others: list[_Contender]) -> Rounds:
    """:func:`paired_rounds` on each contender's path: (results, same-round ratios)."""
    return paired_rounds(
        cfg,
        (baseline.label, baseline.url + baseline.path),
        [(s.label, s.url + s.path) for s in others],
    )


def run(cfg: Config) -> Section:
    started = time.monotonic()
    servers = contenders()
    counts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-django-") as folder:
        database = Path(folder) / "db.sqlite3"
        _prepare(database)
        previous = os.environ.get("DJPROJECT_DB")
        os.environ["DJPROJECT_DB"] = str(database)  # the servers inherit it
        try:
            with running(servers, cfg.logs):
                for server in servers:
                    before = stats(server)
                    bad = counted(server)
                    after = stats(server)
                    counts[server.label] = {"before": before, "after": after, "non200": bad}
                results, ratios = _rounds(cfg, servers[0], servers[1:])
                for server in servers:
                    counts[server.label]["end"] = stats(server)
        finally:
            if previous is None:
                os.environ.pop("DJPROJECT_DB", None)
            else:
                os.environ["DJPROJECT_DB"] = previous
    hello = hello_contenders()
    with running(hello, cfg.logs):
        hello_results, hello_ratios = _rounds(cfg, hello[0], hello[1:])
    return _section(
        cfg,
        servers=servers,
        results=results,
        ratios=ratios,
        counts=counts,
        hello=(hello, hello_results, hello_ratios),
        seconds=time.monotonic() - started,
    )


def _speed_table(
    servers: list[_Contender], results: dict[str, list[LoadResult]], ratios: dict[str, list[float]]
) -> tuple[Table, dict[str, Any]]:
    table = Table(["contender", "median req/s", "ratio to baseline", "non-2xx", "errors"], [])
    data: dict[str, Any] = {}
    for server in servers:
        label = server.label
        runs = results[label]
        rate = median([r.rate for r in runs])
        ratio = median(ratios[label])
        role = " **(baseline)**" if server is servers[0] else ""
        table.rows.append(
            [
                label + role,
                fmt(rate),
                f"{fmt(ratio)}x",
                str(sum(r.non2xx for r in runs)),
                str(sum(r.errors for r in runs)),
            ]
        )
        data[label] = {
            "rates": [r.rate for r in runs],
            "median": rate,
            "ratio": ratio,
            "ratios": ratios[label],
        }
    return table, data


def _section(
    cfg: Config,
    *,
    servers: list[_Contender],
    results: dict[str, list[LoadResult]],
    ratios: dict[str, list[float]],
    counts: dict[str, dict[str, Any]],
    hello: tuple[list[_Contender], dict[str, list[LoadResult]], dict[str, list[float]]],
    seconds: float,
) -> Section:
    speed, data = _speed_table(servers, results, ratios)
    speed.caption = "The Django ORM view (`GET /items`):"
    hello_speed, hello_data = _speed_table(*hello)
    hello_speed.caption = "For scale, the raw hello apps of the `a2w` scenario, the same five ways:"
    usage = Table(
        [
            "contender",
            f"DB connections opened over {COUNTED} requests",
            "sqlite handles open after them",
            "OS threads before",
            "after",
            "after the throughput rounds",
        ],
        [],
    )
    for server in servers:
        label = server.label
        c = counts[label]
        opened = c["after"]["connections_opened"] - c["before"]["connections_opened"]
        usage.rows.append(
            [
                label,
                str(opened),
                str(c["after"]["sqlite_handles_open"]),
                str(c["before"]["threads"]),
                str(c["after"]["threads"]),
                str(c["end"]["threads"]),
            ]
        )
        data[label].update(opened=opened, counts=c)
    data["hello"] = hello_data
    section = Section(
        "django",
        "Django: the ORM view of a real project, five ways",
        "`GET /items` of `tests/apps/djproject/orm` (sqlite, `CONN_MAX_AGE=600`, the "
        "`startproject` middleware, a sync view). Baseline: the project's WSGI app on "
        "gunicorn gthread. Connections, handles and threads are read from the project's "
        "`/stats` view in the serving process.",
        [speed, usage, hello_speed],
        notes=[
            f"Load: `{cfg.loadgen}` on core 1, {cfg.connections} keep-alive connections, "
            f"{fmt(cfg.duration)} s per point, {cfg.http_rounds} rounds (B C1 B C2 ... B); "
            "servers pinned to core 0, one worker each.",
            f"gunicorn gthread: `-w 1 --threads {GTHREAD_THREADS}`; `-k asgi`: gunicorn's "
            "own asyncio worker; uvicorn: uvloop + httptools.",
            f"Counts: {COUNTED} requests from {CLIENTS} keep-alive clients on fresh "
            "servers; a Django connection lives in the thread that opened it.",
        ],
        data=data,
        seconds=seconds,
    )
    section.plots.append(
        bar_plot(
            cfg.out,
            "django",
            title="Django ORM view: req/s ÷ native WSGI, higher is better",
            labels=[s.label for s in servers],
            series={"ratio": [data[s.label]["ratio"] for s in servers]},
            xlabel="ratio to native WSGI on gunicorn gthread (same round)",
            line=1.0,
            line_label="baseline",
        )
    )
    thread = data["ASGIToWSGI thread on gunicorn gthread"]
    uvicorn = data["ASGI app on uvicorn"]
    gasgi = data["ASGI app on gunicorn -k asgi"]
    native = data["native WSGI on gunicorn gthread"]
    hello_thread = hello_data["ASGIToWSGI thread on gunicorn gthread"]
    hello_gasgi = hello_data["ASGI hello on gunicorn -k asgi"]
    section.targets += [
        Target(
            "Django: ASGIToWSGI thread req/s ÷ ASGI app on uvicorn",
            thread["ratio"] / uvicorn["ratio"],
            1.0,
            ">=",
            "x",
            f"÷ `-k asgi`: {fmt(thread['ratio'] / gasgi['ratio'])}x",
        ),
        Target(
            f"Django: DB connections over {COUNTED} requests, ASGIToWSGI thread",
            float(thread["opened"]),
            float(native["opened"]),
            "<=",
            "",
            "limit: native WSGI's count",
        ),
        Target(
            "Django: ASGIToWSGI thread req/s ÷ ASGI app on gunicorn -k asgi",
            thread["ratio"] / gasgi["ratio"],
            1.0,
            ">=",
            "x",
            f"raw hello: {fmt(hello_thread['ratio'] / hello_gasgi['ratio'])}x",
        ),
    ]
    return section
