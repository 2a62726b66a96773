"""Added cost against body size, in process: ours, a2wsgi and the native app.

For each size from 0 B to 16 MiB, one request with a request body of that size
(``POST /upload``: the app reads it 64 KiB at a time and answers the count) and one
with a response body of that size (``GET /download?size=N``: 64 KiB chunks with a
Content-Length). W->A: the raw WSGI app through ``WSGIToASGI`` and a2wsgi, awaited one
request at a time on uvloop, beside the raw native ASGI app driven by the same code;
A->W: the raw ASGI app through ``ASGIToWSGI`` (thread loops) and a2wsgi, called and
drained on the calling thread, beside the raw native WSGI app. No sockets: what grows
with size is the adapter's own copying and thread hand-offs.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._apps import a2wsgi_available, build
from benchmarks._config import Config
from benchmarks._curves import line_plot
from benchmarks._inprocess import _asgi_sampler, _environ, _new_loop, _scope, _wsgi_sampler
from benchmarks._measure import Sampler, interleave, median
from benchmarks._report import Section, Table, fmt

KIB, MIB = 1 << 10, 1 << 20
SIZES = (0, KIB, 64 * KIB, MIB, 16 * MIB)
QUICK_SIZES = (0, 64 * KIB, 16 * MIB)

# (key, title, interface of the server side, [ours, alternative, native])
GROUPS = [
    ("bodysize_w2a", "W->A (a WSGI app as ASGI)", "asgi", ["WSGIToASGI", "a2wsgi WSGIMiddleware"]),
    (
        "bodysize_a2w",
        "A->W (an ASGI app as WSGI)",
        "wsgi",
        ["ASGIToWSGI thread", "a2wsgi ASGIMiddleware"],
    ),
]


def _size(size: int) -> str:
    for unit, step in (("MiB", MIB), ("KiB", KIB)):
        if size >= step:
            return f"{size // step} {unit}"
    return f"{size} B"


def _request(direction: str, size: int) -> tuple[str, str, bytes, str]:
    """(path, method, request body, query) of one request."""
    if direction == "request":
        return "/upload", "POST", bytes(size), ""
    return "/download", "GET", b"", f"size={size}"


def _sampler(loop: Any, interface: str, app: Any, direction: str, size: int) -> Sampler:
    path, method, body, query = _request(direction, size)
    if interface == "asgi":
        scope = _scope(path, method, body)
        scope["query_string"] = query.encode()
        return _asgi_sampler(loop, app, scope, body, 1)
    environ = _environ(path, method, body)
    environ["QUERY_STRING"] = query
    return _wsgi_sampler(app, environ, body)


def run(cfg: Config) -> Section:
    started = time.monotonic()
    sizes = QUICK_SIZES if cfg.quick else SIZES
    rounds = cfg.rounds * 2 + 1
    section = Section(
        "bodysize",
        "How cost grows with body size (in process)",
        "µs per request against the size of the request body (`POST /upload`) and of the "
        f"response body (`GET /download`), {_size(sizes[0])} to {_size(sizes[-1])}: ours, "
        "a2wsgi and the native app, driven the same way (see the module docstring of "
        f"`benchmarks/_bodysize.py`); {rounds} interleaved rounds, medians; *added* = "
        "contender minus native.",
    )
    if not a2wsgi_available():
        section.notes.append("a2wsgi is not installed: skipped.")
    loop = _new_loop()
    try:
        for key, title, interface, adapters in GROUPS:
            names = [a for a in adapters if a2wsgi_available() or not a.startswith("a2wsgi")]
            native = "native ASGI" if interface == "asgi" else "native WSGI"
            apps = {name: build(f"{name}:raw") for name in [*names, native]}
            table = Table(["contender", "body", "size", "µs / request", "µs added"], [])
            data: dict[str, Any] = {"sizes": list(sizes)}
            panels: dict[str, dict[str, list[float]]] = {}
            for direction in ("request", "response"):
                us: dict[str, list[float]] = {name: [] for name in apps}
                for size in sizes:
                    samplers = {
                        name: _sampler(loop, interface, app, direction, size)
                        for name, app in apps.items()
                    }
                    # Bigger bodies take longer per sample; fewer rounds keep a run short.
                    times = interleave(samplers, rounds if size <= MIB else 3, cfg.inprocess_target)
                    base = median(times[native])
                    for name in apps:
                        value = median(times[name])
                        us[name].append(value)
                        added = "(baseline)" if name == native else fmt(value - base)
                        table.rows.append([name, direction, _size(size), fmt(value), added])
                data[direction] = us
                panels[f"{direction} body: µs per request"] = us
            table.caption = f"**{title}**"
            section.tables.append(table)
            section.data[key] = data
            section.plots.append(
                line_plot(
                    cfg.out,
                    key,
                    title=f"{title}: µs per request against body size (lower is better)",
                    x=[max(size, 1) for size in sizes],
                    xlabel="body bytes (0 B plotted at 1 B)",
                    panels=panels,
                    log_y=list(panels),
                )
            )
    finally:
        loop.close()
    section.seconds = time.monotonic() - started
    return section
