"""Middleware per-request cost on both interfaces, beside Starlette's and raw zlib.

The measurements are ``bench_middleware.collect`` (bare app vs wrapped app, in process,
interleaved rounds); this module turns its rows into a section with the targets.
"""

from __future__ import annotations

import time

from benchmarks import bench_middleware
from benchmarks._config import Config
from benchmarks._report import Section, Table, Target, bar_plot, fmt

CORS_LIMIT_US = 2.0  # issue 15
GZIP_LIMIT = 0.83  # issue 15: raw zlib (compressobj, default parameters) ÷ GZip's added
ACCESS_LOG_LIMIT_X = 1.2  # issue 15: vs one bare logger.info of the same line
DO_NOTHING_LIMIT_US = 1.0


def run(cfg: Config) -> Section:
    started = time.monotonic()
    rounds = cfg.rounds * 2 + 1
    rows = bench_middleware.collect(rounds, cfg.inprocess_target)
    table = Table(["scenario", "interface", "variant", "µs / request", "µs added", "note"], [])
    data: dict[str, dict[str, float]] = {}
    for title, interface, name, value, added, note in rows:
        raw = name.startswith("raw")
        table.rows.append(
            [
                title,
                interface,
                name,
                fmt(value),
                "(alone)" if raw else ("baseline" if name == "bare app" else fmt(added)),
                note,
            ]
        )
        data[f"{title} | {interface} | {name}"] = {"us": value, "added": added}
    section = Section(
        "middleware",
        "Middleware per request (in process)",
        "Each middleware around a bare app on ASGI (driven without a loop) and on WSGI "
        "(call, iterate, close), against Starlette's middleware (ASGI only) and raw zlib "
        "on the same body: `zlib.compressobj(9, DEFLATED, 31)`, zlib's default window and "
        "memLevel (the issue's baseline), and, for bodies under 16 KiB, zlib with the "
        "smaller window and memLevel GZip picks for a whole body of known length (the "
        "same output bytes for less setup; GZip's added minus this row is what the "
        "middleware itself costs); "
        f"{rounds} interleaved rounds, medians of the thread's CPU time (single-threaded "
        "code that never waits: its CPU time is its cost, and a busy machine's other "
        "processes stay out of it). *added* = wrapped minus bare app. The *floor* rows "
        "are what the driver alone costs the shape of handler GZip (holds the head, "
        "rewrites the body) and AccessLog (told when the response is complete) use. "
        "AccessLog's baseline is one `logger.info` of the finished line, a constant "
        "string, through the same logger and formatting handler: its record walks the "
        "stack for the caller, AccessLog's does not, and AccessLog's message is "
        "%-formatted from its atoms when the handler emits it.",
        [table],
        data=data,
    )

    def added(title: str, interface: str, name: str) -> float:
        return data.get(f"{title} | {interface} | {name}", {}).get("added", float("nan"))

    for interface in ("asgi", "wsgi"):
        floor = added("Do-nothing middleware", interface, "floor: a class that calls the app")
        section.targets.append(
            Target(
                f"Do-nothing middleware µs added ({interface.upper()})",
                added("Do-nothing middleware", interface, "DoNothing (public API)"),
                DO_NOTHING_LIMIT_US,
                "<=",
                " µs",
                "a Core whose on_request returns None, over a bare app; "
                f"floor (a class whose __call__ calls the app): {fmt(floor)} µs",
            )
        )
    for interface in ("asgi", "wsgi"):
        starlette = added("CORS simple request", interface, "Starlette CORSMiddleware")
        section.targets.append(
            Target(
                f"CORS µs added ({interface.upper()})",
                added("CORS simple request", interface, "CORS"),
                CORS_LIMIT_US,
                "<=",
                " µs",
                f"Starlette: {fmt(starlette)} µs" if interface == "asgi" else "",
            )
        )
    for interface in ("asgi", "wsgi"):
        ours = added("GZip 1 KiB JSON", interface, "GZip")
        raw = data.get(f"GZip 1 KiB JSON | {interface} | raw zlib.compressobj", {}).get(
            "us", float("nan")
        )
        sized = data.get(f"GZip 1 KiB JSON | {interface} | {bench_middleware.RAW_SIZED}", {}).get(
            "us", float("nan")
        )
        starlette = added("GZip 1 KiB JSON", interface, "Starlette GZipMiddleware")
        floor = added("GZip 1 KiB JSON", interface, bench_middleware.FLOOR_HELD)
        context = f"GZip adds {fmt(ours)} µs, zlib alone takes {fmt(raw)} µs"
        if interface == "asgi":
            context += f"; Starlette {fmt(raw / starlette)}x"
        # GZip sizes deflate's state for a whole body (same output bytes, less setup), so
        # the ratio to default-parameter zlib is not all the middleware's doing: against
        # zlib doing the same work, with GZip's own parameters, what is left is its own.
        context += (
            f"; zlib with GZip's own parameters takes {fmt(sized)} µs, so GZip's own cost "
            f"is {fmt(ours - sized)} µs (same-work ratio {fmt(sized / ours)}x)"
        )
        # What the driver alone costs a handler that holds the head and rewrites the
        # body: no GZip core can do better than its zlib work plus this.
        context += (
            f"; driver floor {fmt(floor)} µs (a held-head handler doing no work), "
            f"so this ratio is at best {fmt(raw / (sized + floor))}x"
        )
        section.targets.append(
            Target(
                f"GZip 1 KiB: raw zlib ÷ GZip's added ({interface.upper()})",
                raw / ours,
                GZIP_LIMIT,
                ">=",
                "x",
                context,
            )
        )
    for interface in ("asgi", "wsgi"):
        ours = added("AccessLog", interface, "AccessLog (formatted, to a sink)")
        info = data.get(f"AccessLog | {interface} | raw logger.info of the same line", {}).get(
            "us", float("nan")
        )
        record = data.get(
            f"AccessLog | {interface} | raw logging record (makeRecord + handle)", {}
        ).get("us", float("nan"))
        floor = added("AccessLog", interface, bench_middleware.FLOOR_COMPLETING)
        section.targets.append(
            Target(
                f"AccessLog added ÷ bare logger.info ({interface.upper()})",
                ours / info,
                ACCESS_LOG_LIMIT_X,
                "<=",
                "x",
                f"{fmt(ours)} µs vs logger.info of the finished line {fmt(info)} µs, "
                "same logger and formatting handler; driver floor (a handler with an "
                f"empty on_complete) {fmt(floor)} µs, so a record made and handled "
                f"({fmt(record)} µs) costs at least {fmt((floor + record) / info)}x",
            )
        )
    labels = [key for key in data if " raw " not in key and not key.endswith("bare app")]
    labels = [key for key in labels if "100 KiB" not in key and "1 MiB" not in key]
    section.plots.append(
        bar_plot(
            cfg.out,
            "middleware",
            title="Middleware µs added per request (small bodies), lower is better",
            labels=labels,
            series={"µs added": [data[key]["added"] for key in labels]},
            xlabel="µs added",
        )
    )
    section.seconds = time.monotonic() - started
    return section
