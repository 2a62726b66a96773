"""Scenarios over real HTTP on loopback: throughput, streaming, blocking I/O.

Every contender gets its own server process pinned to core 0 (uvicorn for ASGI apps,
one worker; gunicorn gthread, one worker, for WSGI apps); the load generator runs
pinned to core 1. All servers of a scenario start together and stay idle while
another is measured; rounds are interleaved (each round starts one contender further
on, so no contender always runs first) and ratios are taken to a baseline measured in
the same round.
"""

from __future__ import annotations

import dataclasses
import os
import time

from benchmarks._apps import SLEEP, a2wsgi_available, serves, starlette_wsgi_available
from benchmarks._config import Config
from benchmarks._load import LoadResult, http_load, paired_rounds, transfer
from benchmarks._measure import median
from benchmarks._report import Section, Table, Target, bar_plot, fmt
from benchmarks._servers import GTHREAD_THREADS, Server, reset_peak, running, vm_kib

# The targets of issue #15 (performance, round two).
W2A_RATIO = 0.6
A2W_RATIO = {"thread": 0.9, "shared": 0.75}
# download, upload
W2A_STREAM_RATIO = {"download": 0.9, "upload": 0.95}
STREAM_RATIO = 0.9
FLAT_GROWTH_MIB = 16.0

_W2A = ["WSGIToASGI", "a2wsgi WSGIMiddleware", "asgiref WsgiToAsgi", "Starlette WSGIMiddleware"]
_A2W = ["ASGIToWSGI thread", "ASGIToWSGI shared", "a2wsgi ASGIMiddleware"]


def _available(names: list[str]) -> tuple[list[str], list[str]]:
    """(the adapters that can run here, notes on those that cannot)."""
    keep, notes = [], []
    for name in names:
        if name.startswith("a2wsgi") and not a2wsgi_available():
            notes.append(f"{name}: a2wsgi is not installed; skipped.")
        elif name.startswith("Starlette") and (why := starlette_wsgi_available()):
            notes.append(f"{name}: {why}; skipped.")
        else:
            keep.append(name)
    return keep, notes


def _kind(spec: str) -> str:
    return "uvicorn" if serves(spec) == "asgi" else "gunicorn"


def _label(server: Server) -> str:
    adapter, _, app = server.spec.partition(":")
    return f"{adapter} ({app}) on {server.kind}"


def _throughput(
    cfg: Config, servers: list[Server], path: str = "/", connections: int | None = None
) -> dict[str, list[LoadResult]]:
    """Interleaved rounds of load on every server; results by server label."""
    conns = connections or cfg.connections
    results: dict[str, list[LoadResult]] = {_label(s): [] for s in servers}
    with running(servers, cfg.logs):
        if not cfg.quick:  # warm up: imports, thread pools, caches
            for server in servers:
                http_load(server.url + path, conns, 1.0, cfg.loadgen)
        for index in range(cfg.http_rounds):
            shift = index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                results[_label(server)].append(
                    http_load(server.url + path, conns, cfg.duration, cfg.loadgen)
                )
    return results


def _paired(
    cfg: Config, baseline: Server, others: list[Server]
) -> tuple[dict[str, list[LoadResult]], dict[str, list[float]]]:
    """:func:`paired_rounds` on ``GET /`` of each server, all running."""
    with running([baseline, *others], cfg.logs):
        return paired_rounds(
            cfg, (_label(baseline), baseline.url + "/"), [(_label(s), s.url + "/") for s in others]
        )


def _throughput_section(
    cfg: Config,
    *,
    key: str,
    title: str,
    intro: str,
    specs: list[str],
    baseline: str,
    references: list[str],
    notes: list[str],
) -> Section:
    started = time.monotonic()
    servers = [Server(spec, _kind(spec)) for spec in [baseline, *specs, *references]]
    results, ratios = _paired(cfg, servers[0], servers[1:])
    rates = {label: [r.rate for r in runs] for label, runs in results.items()}
    base_label = _label(servers[0])
    table = Table(["contender", "median req/s", "ratio to baseline", "non-2xx", "errors"], [])
    data = {}
    for server in servers:
        label = _label(server)
        runs = results[label]
        # The baseline's "ratio" is its drift from one point to the next (ideally 1.0).
        ratio = median(ratios[label])
        data[label] = {
            "rates": rates[label],
            "median": median(rates[label]),
            "ratio": ratio,
            "ratios": ratios[label],
        }
        role = " **(baseline)**" if label == base_label else ""
        role = " (reference)" if server.spec in references else role
        table.rows.append(
            [
                label + role,
                fmt(median(rates[label])),
                f"{fmt(ratio)}x",
                str(sum(r.non2xx for r in runs)),
                str(sum(r.errors for r in runs)),
            ]
        )
    section = Section(key, title, intro, [table], notes=notes, data=data)
    section.plots.append(
        bar_plot(
            cfg.out,
            key,
            title=f"{title.split(':', maxsplit=1)[0]}: req/s ÷ baseline, higher is better",
            labels=list(data),
            series={"ratio": [d["ratio"] for d in data.values()]},
            xlabel=f"ratio to {base_label} (same round)",
            line=1.0,
            line_label="baseline",
        )
    )
    section.seconds = time.monotonic() - started
    return section


def _common_notes(cfg: Config) -> list[str]:
    return [
        f"Load: `{cfg.loadgen}` on core 1, {cfg.connections} keep-alive connections, "
        f"{fmt(cfg.duration)} s per point, {cfg.http_rounds} rounds; servers pinned to "
        "core 0. Each round measures the baseline between every two contenders "
        "(B C1 B C2 ... B); a contender's ratio is the median over rounds of its req/s "
        "over the mean of the two baseline points around it; the baseline's own ratio "
        "is its point-to-point drift. Req/s counts 2xx/3xx answers only.",
        f"gunicorn: `-k gthread -w 1 --threads {GTHREAD_THREADS}`; uvicorn: one process, "
        "uvloop + httptools, access log off.",
    ]


def wsgi_to_asgi(cfg: Config) -> Section:
    adapters, notes = _available(_W2A)
    specs = [f"{a}:{app}" for app in ("raw", "flask") for a in adapters]
    section = _throughput_section(
        cfg,
        key="http_wsgi_to_asgi",
        title="W->A over HTTP: WSGI apps on uvicorn",
        intro="A raw WSGI hello app and a Flask hello app served by one uvicorn process through "
        "each adapter. Baseline: the raw native ASGI hello app on the same uvicorn. "
        "Reference: the WSGI apps on gunicorn gthread.",
        specs=specs,
        baseline="native ASGI:raw",
        references=["native WSGI:raw", "native WSGI:flask"],
        notes=notes + _common_notes(cfg),
    )
    ours = section.data.get("WSGIToASGI (raw) on uvicorn", {}).get("ratio", float("nan"))
    theirs = section.data.get("a2wsgi WSGIMiddleware (raw) on uvicorn", {}).get("ratio")
    context = f"a2wsgi: {fmt(theirs)}x" if theirs is not None else ""
    section.targets.append(
        Target("WSGIToASGI req/s ÷ native ASGI (uvicorn)", ours, W2A_RATIO, ">=", "x", context)
    )
    return section


def asgi_to_wsgi(cfg: Config) -> Section:
    adapters, notes = _available(_A2W)
    specs = [f"{a}:{app}" for app in ("raw", "starlette") for a in adapters]
    section = _throughput_section(
        cfg,
        key="http_asgi_to_wsgi",
        title="A->W over HTTP: ASGI apps on gunicorn gthread",
        intro="A raw ASGI hello app and a Starlette hello app served by one gunicorn gthread "
        "worker through each adapter. Baseline: the raw native WSGI hello app on the same "
        "gunicorn. Reference: the ASGI apps on uvicorn.",
        specs=specs,
        baseline="native WSGI:raw",
        references=["native ASGI:raw", "native ASGI:starlette"],
        notes=notes + _common_notes(cfg),
    )
    theirs = section.data.get("a2wsgi ASGIMiddleware (raw) on gunicorn", {}).get("ratio")
    context = f"a2wsgi: {fmt(theirs)}x" if theirs is not None else ""
    for mode in ("thread", "shared"):
        ours = section.data.get(f"ASGIToWSGI {mode} (raw) on gunicorn", {})
        section.targets.append(
            Target(
                f"ASGIToWSGI {mode} req/s ÷ native WSGI (gunicorn gthread)",
                ours.get("ratio", float("nan")),
                A2W_RATIO[mode],
                ">=",
                "x",
                context,
            )
        )
    return section


def cpu_ns(pid: int) -> int:
    """CPU time (ns) the process's live threads have used, from ``/proc/PID/task/*/schedstat``.

    Finer than ``/proc/PID/stat``'s clock ticks (10 ms): a 64 MiB transfer costs a
    server tens of milliseconds.
    """
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stats:
                total += int(stats.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total


def streaming(cfg: Config) -> Section:
    started = time.monotonic()
    w2a, notes_a = _available(_W2A)
    a2w, notes_b = _available(_A2W)
    servers = [Server(f"{s}:raw", "uvicorn") for s in ["native ASGI", *w2a]]
    servers += [Server(f"{s}:raw", "gunicorn") for s in ["native WSGI", *a2w]]
    size = cfg.stream_size
    mib = size / (1 << 20)
    speeds: dict[str, dict[str, list[float]]] = {}
    # Server CPU ms per transfer: what the serving process spent, whatever the client's pace.
    cpu: dict[str, dict[str, list[float]]] = {}
    growth: dict[str, dict[str, float]] = {}
    idle: dict[str, float] = {}
    with running(servers, cfg.logs):
        for server in servers:  # warm up every path once, then note the idle RSS
            transfer(server.url + "/download", "download", 1 << 20)
            transfer(server.url + "/upload", "upload", 1 << 20)
            idle[_label(server)] = vm_kib(server.serving_pid(), "VmRSS") / 1024
            speeds[_label(server)] = {"download": [], "upload": []}
            cpu[_label(server)] = {"download": [], "upload": []}
            growth[_label(server)] = {"download": 0.0, "upload": 0.0}
        ratios: dict[str, dict[str, list[float]]] = {
            _label(s): {"download": [], "upload": []} for s in servers
        }
        cpu_ratios: dict[str, dict[str, list[float]]] = {
            _label(s): {"download": [], "upload": []} for s in servers
        }

        def measure(server: Server, direction: str) -> tuple[float, float]:
            label, pid = _label(server), server.serving_pid()
            before = vm_kib(pid, "VmRSS") / 1024
            peak_reset = reset_peak(pid)
            cpu_before = cpu_ns(pid)
            count, seconds = transfer(server.url + f"/{direction}", direction, size)
            used_ms = (cpu_ns(pid) - cpu_before) / 1e6
            if count != size:
                raise RuntimeError(f"{label} {direction}: {count} of {size} bytes")
            peak = vm_kib(pid, "VmHWM") / 1024
            if not peak_reset:  # peak since start: growth over the idle RSS
                before = idle[label]
            growth[label][direction] = max(growth[label][direction], peak - before)
            speeds[label][direction].append(mib / seconds)
            cpu[label][direction].append(used_ms)
            return mib / seconds, used_ms

        # As over HTTP: native, A, native, B, ... so each ratio is to the native
        # transfers just before and just after it.
        groups = [
            (servers[0], servers[1 : len(w2a) + 1]),
            (servers[len(w2a) + 1], servers[len(w2a) + 2 :]),
        ]
        for index in range(cfg.stream_rounds):
            for native, others in groups:
                shift = index % max(1, len(others))
                for direction in ("download", "upload"):
                    first, first_cpu = measure(native, direction)
                    for server in others[shift:] + others[:shift]:
                        speed, used = measure(server, direction)
                        after, after_cpu = measure(native, direction)
                        ratios[_label(server)][direction].append(speed / ((first + after) / 2))
                        ratios[_label(native)][direction].append(after / first)
                        cpu_ratios[_label(server)][direction].append(
                            used / max((first_cpu + after_cpu) / 2, 1e-3)
                        )
                        cpu_ratios[_label(native)][direction].append(
                            after_cpu / max(first_cpu, 1e-3)
                        )
                        first, first_cpu = after, after_cpu
    table = Table(
        [
            "contender",
            "download MiB/s",
            "÷ native",
            "upload MiB/s",
            "÷ native",
            "idle RSS MiB",
            "peak growth MiB (down / up)",
            "server CPU ms (down / up)",
            "CPU ÷ native (down / up)",
        ],
        [],
    )
    data: dict[str, dict[str, float]] = {}
    section = Section(
        "streaming",
        f"Streaming {fmt(mib)} MiB over HTTP",
        f"One {fmt(mib)} MiB download (64 KiB chunks, Content-Length) and one {fmt(mib)} "
        "MiB upload (read 64 KiB at a time) per contender per round, on loopback; each "
        "W->A adapter on uvicorn against the native ASGI app on uvicorn, each A->W adapter "
        "on gunicorn gthread against the native WSGI app on gunicorn. Peak growth: the "
        "serving process's VmHWM during the transfer minus its VmRSS just before "
        "(VmHWM reset through /proc/PID/clear_refs). Server CPU: what the serving "
        "process's threads spent on the transfer (/proc/PID/task/*/schedstat), which the "
        "client's pace does not change: MiB/s is bounded by the load generator when "
        "it is slower than the server.",
        notes=notes_a + notes_b,
    )
    for server in servers:
        label = _label(server)
        row: dict[str, float] = {"idle_rss_mib": idle[label]}
        cells = [label]
        for direction in ("download", "upload"):
            ratio = median(ratios[label][direction])
            row[direction] = median(speeds[label][direction])
            row[f"{direction}_ratio"] = ratio
            row[f"{direction}_growth_mib"] = growth[label][direction]
            cells += [fmt(row[direction]), f"{fmt(ratio)}x"]
        cells += [
            fmt(idle[label]),
            f"{fmt(growth[label]['download'])} / {fmt(growth[label]['upload'])}",
        ]
        for direction in ("download", "upload"):
            row[f"{direction}_cpu_ms"] = median(cpu[label][direction])
            row[f"{direction}_cpu_ratio"] = median(cpu_ratios[label][direction])
        cells += [
            f"{fmt(row['download_cpu_ms'])} / {fmt(row['upload_cpu_ms'])}",
            f"{fmt(row['download_cpu_ratio'])}x / {fmt(row['upload_cpu_ratio'])}x",
        ]
        table.rows.append(cells)
        data[label] = row
        if server.spec.startswith(("WSGIToASGI", "ASGIToWSGI")):
            for direction in ("download", "upload"):
                section.targets.append(
                    Target(
                        f"{label}: {direction} ÷ native",
                        row[f"{direction}_ratio"],
                        W2A_STREAM_RATIO[direction]
                        if server.spec.startswith("WSGIToASGI")
                        else STREAM_RATIO,
                        ">=",
                        "x",
                        f"{fmt(row[direction])} MiB/s",
                    )
                )
                section.targets.append(
                    Target(
                        f"{label}: {direction} peak RSS growth (flat memory)",
                        row[f"{direction}_growth_mib"],
                        FLAT_GROWTH_MIB,
                        "<=",
                        " MiB",
                        f"body {fmt(mib)} MiB",
                    )
                )
    section.tables.append(table)
    section.notes.append(
        f"{cfg.stream_rounds} round(s) of native, A, native, B, ... native per direction; "
        "MiB/s is the median; a ratio is the median of (transfer / mean of the native "
        "transfers just before and after it); the natives' own ratio is their drift; "
        "'flat memory' is "
        f"read as a peak growth of at most {fmt(FLAT_GROWTH_MIB)} MiB while "
        f"{fmt(mib)} MiB pass."
    )
    section.data = data
    labels = list(data)
    section.plots.append(
        bar_plot(
            cfg.out,
            "streaming",
            title=f"Streaming {fmt(mib)} MiB: MiB/s, higher is better",
            labels=labels,
            series={
                "download": [data[label]["download"] for label in labels],
                "upload": [data[label]["upload"] for label in labels],
            },
            xlabel="MiB/s",
        )
    )
    section.seconds = time.monotonic() - started
    return section


def blocking(cfg: Config) -> Section:
    started = time.monotonic()
    adapters, notes = _available(_W2A)
    servers = [Server(f"{a}:raw", "uvicorn") for a in adapters]
    clients = 64
    cfg = dataclasses.replace(
        cfg, http_rounds=1 if cfg.quick else 3, duration=max(2.0, cfg.duration)
    )
    results = _throughput(cfg, servers, "/sleep", clients)
    table = Table(
        ["contender", "requests", "wall s", "effective parallelism", "non-2xx", "errors"], []
    )
    data: dict[str, dict[str, float]] = {}
    for label, runs in results.items():
        parallel = [(r.requests - r.non2xx) * SLEEP / r.seconds for r in runs]
        data[label] = {"parallelism": median(parallel)}
        table.rows.append(
            [
                label,
                str(sum(r.requests for r in runs)),
                fmt(sum(r.seconds for r in runs)),
                fmt(median(parallel)),
                str(sum(r.non2xx for r in runs)),
                str(sum(r.errors for r in runs)),
            ]
        )
    section = Section(
        "blocking",
        "Blocking I/O: a WSGI app that sleeps 50 ms",
        f"{clients} concurrent keep-alive clients on `/sleep` (the raw WSGI app blocks 50 ms, "
        "then says hello) through each adapter on uvicorn. Effective parallelism = "
        "(successful requests x 0.05 s) / wall time: how many requests sleep at once.",
        [table],
        notes=[
            *notes,
            "Thread limits by default: WSGIToASGI's shared pool 40 workers (160 queued); "
            "a2wsgi 10 workers; asgiref `sync_to_async(thread_sensitive=True)`: one thread; "
            "Starlette: anyio's 40-thread limiter.",
            f"{cfg.http_rounds} round(s) of {fmt(cfg.duration)} s; median parallelism.",
        ],
        data=data,
    )
    section.plots.append(
        bar_plot(
            cfg.out,
            "blocking",
            title="Effective parallelism with a 50 ms blocking WSGI app, higher is better",
            labels=list(data),
            series={"parallelism": [d["parallelism"] for d in data.values()]},
            xlabel="requests sleeping at once",
        )
    )
    section.seconds = time.monotonic() - started
    return section
