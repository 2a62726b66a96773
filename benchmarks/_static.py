"""Scenario ``static``: StaticFiles beside Starlette's and WhiteNoise; BodyLimit's cost.

Over HTTP, a 1 MiB file: ``StaticFiles`` around a Starlette app on uvicorn against
Starlette's own ``StaticFiles`` mounted in the same app, and ``StaticFiles`` around a
raw WSGI app on gunicorn gthread against WhiteNoise around the same app. Each pair is
measured in rounds of R O R O ... R (R: the reference) so every ratio is to the
reference points just before and after it. In process, the µs ``BodyLimit`` adds on
ASGI next to uvicorn's ``ProxyHeadersMiddleware``.

The servers load this module (``benchmarks._static:asgi`` / ``wsgi()``), the
contender named by ``$BENCH_APP``, the directory by ``$BENCH_STATIC_DIR``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import bench_middleware
from benchmarks._config import Config
from benchmarks._load import http_load
from benchmarks._measure import interleave, median
from benchmarks._report import Section, Table, Target, bar_plot, fmt
from benchmarks._servers import GTHREAD_THREADS, Server, running

FILE = "big.0123abcd.bin"
SIZE = 1 << 20
URL_PATH = f"/static/{FILE}"
CONNECTIONS = 8  # 1 MiB answers: a few connections already fill the server's core
STATIC_RATIO = 1.0
_HELLO = b"Hello, world!"

# (contender, server kind, reference it is measured against, rounds per cfg.http_rounds)
_PAIRS = [
    ("StaticFiles (Starlette app)", "uvicorn", "Starlette StaticFiles", 2),
    # Both send the file with gunicorn's sendfile, so the kernel's work per request is
    # the same and the ratio sits near 1: twice the rounds again, for a steadier median.
    ("StaticFiles (raw WSGI app)", "gunicorn", "WhiteNoise", 4),
]
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- what the servers load --------------------------------------------------------------


def _directory() -> str:
    return os.environ["BENCH_STATIC_DIR"]


def _starlette_app(static: Any = None) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse(_HELLO)

    routes: list[Any] = [Route("/", hello)]
    if static is not None:
        routes.append(Mount("/static", app=static))
    return Starlette(routes=routes)


def _wsgi_hello(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [_HELLO]


def asgi() -> Any:
    """The ASGI contender (``uvicorn --factory benchmarks._static:asgi``)."""
    name = os.environ["BENCH_APP"]
    if name == "Starlette StaticFiles":
        from starlette.staticfiles import StaticFiles as StarletteStatic

        return _starlette_app(StarletteStatic(directory=_directory()))
    if name == "StaticFiles (Starlette app)":
        from middleware import StaticFiles

        return StaticFiles(_starlette_app(), directory=_directory())
    raise ValueError(name)


def wsgi() -> Any:
    """The WSGI contender (``gunicorn 'benchmarks._static:wsgi()'``)."""
    name = os.environ["BENCH_APP"]
    if name == "WhiteNoise":
        from whitenoise import WhiteNoise

        return WhiteNoise(_wsgi_hello, root=_directory(), prefix="static/")
    if name == "StaticFiles (raw WSGI app)":
        from middleware import StaticFiles

        return StaticFiles(_wsgi_hello, directory=_directory())
    raise ValueError(name)


class _StaticServer(Server):
    """A benchmark server that loads this module's contenders instead of ``_serve``'s."""

    def argv(self) -> list[str]:
        swap = {
            "benchmarks._serve:asgi": "benchmarks._static:asgi",
            "benchmarks._serve:wsgi()": "benchmarks._static:wsgi()",
        }
        return [swap.get(arg, arg) for arg in super().argv()]


@contextlib.contextmanager
def _site() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-static-") as folder:
        Path(folder, FILE).write_bytes(os.urandom(SIZE))
        previous = os.environ.get("BENCH_STATIC_DIR")
        os.environ["BENCH_STATIC_DIR"] = folder
        try:
            yield folder
        finally:
            if previous is None:
                del os.environ["BENCH_STATIC_DIR"]
            else:
                os.environ["BENCH_STATIC_DIR"] = previous


# --- over HTTP ------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK


class _Point:
    """One load point and the serving process's CPU µs per request during it."""

    def __init__(self, cfg: Config, server: Server) -> None:
        pid = server.serving_pid()
        cpu = _cpu_seconds(pid)
        self.load = http_load(server.url + URL_PATH, CONNECTIONS, cfg.duration, cfg.loadgen)
        used = _cpu_seconds(pid) - cpu
        self.cpu_us = used / self.load.requests * 1e6 if self.load.requests else float("nan")


def _pair(
    cfg: Config, ours: Server, reference: Server, rounds: int
) -> tuple[list[_Point], list[_Point], list[float]]:
    """Rounds of R O R O ... R: (our points, the reference's points, our ratios)."""
    mine: list[_Point] = []
    theirs: list[_Point] = []
    ratios: list[float] = []
    for server in (ours, reference):  # warm up
        _Point(cfg, server)
    before = _Point(cfg, reference)
    theirs.append(before)
    # On a shared machine one 1 MiB point swings by +-30 %: many short rounds.
    for _ in range(rounds):
        result = _Point(cfg, ours)
        after = _Point(cfg, reference)
        mine.append(result)
        theirs.append(after)
        mean = (before.load.rate + after.load.rate) / 2
        ratios.append(result.load.rate / mean if mean > 0 else float("nan"))
        before = after
    return mine, theirs, ratios


def _check(server: Server, expected: bytes) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", URL_PATH)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200 or body != expected:
        raise RuntimeError(f"{server}: HTTP {response.status}, {len(body)} bytes")


def _http_rows(cfg: Config, table: Table, section: Section) -> None:
    with _site() as folder:
        expected = Path(folder, FILE).read_bytes()
        servers = {}
        for ours, kind, reference, _ in _PAIRS:
            servers[ours] = _StaticServer(ours, kind)
            servers[reference] = _StaticServer(reference, kind)
        with running(list(servers.values()), cfg.logs):
            for server in servers.values():
                _check(server, expected)
            for ours, kind, reference, scale in _PAIRS:
                rounds = cfg.http_rounds * scale + 1
                mine, theirs, ratios = _pair(cfg, servers[ours], servers[reference], rounds)
                _report_pair(
                    section,
                    table,
                    ours=ours,
                    kind=kind,
                    reference=reference,
                    mine=mine,
                    theirs=theirs,
                    ratios=ratios,
                )


def _report_pair(
    section: Section,
    table: Table,
    *,
    ours: str,
    kind: str,
    reference: str,
    mine: list[_Point],
    theirs: list[_Point],
    ratios: list[float],
) -> None:
    ratio = median(ratios)
    rates = {
        ours: median([p.load.rate for p in mine]),
        reference: median([p.load.rate for p in theirs]),
    }
    cpu = {ours: median([p.cpu_us for p in mine]), reference: median([p.cpu_us for p in theirs])}
    where = "uvicorn" if kind == "uvicorn" else f"gunicorn gthread ({GTHREAD_THREADS} threads)"
    for name, runs, shown in (
        (reference, theirs, "1.00x (reference)"),
        (ours, mine, f"{fmt(ratio)}x"),
    ):
        table.rows.append(
            [
                f"{name} on {where}",
                fmt(rates[name]),
                fmt(rates[name] * SIZE / (1 << 20)),
                shown,
                fmt(cpu[name]),
                str(sum(p.load.non2xx for p in runs)),
                str(sum(p.load.errors for p in runs)),
            ]
        )
    section.data[f"{ours} vs {reference}"] = {
        "ratio": ratio,
        "ratios": ratios,
        "ours": [p.load.rate for p in mine],
        "reference": [p.load.rate for p in theirs],
        "cpu_us_ours": [p.cpu_us for p in mine],
        "cpu_us_reference": [p.cpu_us for p in theirs],
        "cpu_ratio": cpu[ours] / cpu[reference] if cpu[reference] > 0 else float("nan"),
    }
    context = (
        f"{fmt(rates[ours])} vs {fmt(rates[reference])} req/s; "
        f"server CPU {fmt(cpu[ours])} vs {fmt(cpu[reference])} µs/request"
    )
    section.targets.append(
        Target(f"StaticFiles 1 MiB req/s ÷ {reference}", ratio, STATIC_RATIO, ">=", "x", context)
    )


# --- in process: BodyLimit next to uvicorn's ProxyHeadersMiddleware ---------------------


def _sampler(call: Callable[[], None]) -> Callable[[int], float]:
    def sample(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - started

    return sample


class _FileWrapper:
    """A server's ``wsgi.file_wrapper`` that sends nothing: only the app's work is timed."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike

    def close(self) -> None:
        self.filelike.close()


def _wsgi_rows(cfg: Config, table: Table, section: Section) -> None:
    """µs per request of each WSGI contender's own work: headers, open(), file wrapper."""
    from whitenoise import WhiteNoise

    from middleware import StaticFiles

    with _site() as folder:
        environ = bench_middleware.environ_for([(b"accept-encoding", b"gzip, deflate, br")])
        environ["PATH_INFO"] = URL_PATH
        environ["wsgi.file_wrapper"] = _FileWrapper
        apps = {
            "WhiteNoise": WhiteNoise(_wsgi_hello, root=folder, prefix="static/"),
            "StaticFiles": StaticFiles(_wsgi_hello, directory=folder),
            "StaticFiles (check_changes=False)": StaticFiles(
                _wsgi_hello, directory=folder, check_changes=False
            ),
        }

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            return None

        def caller(app: Any) -> Callable[[], None]:
            def call() -> None:
                app(dict(environ), start_response).close()

            return call

        samples = interleave(
            {name: _sampler(caller(app)) for name, app in apps.items()},
            cfg.rounds * 2 + 1,
            cfg.inprocess_target,
        )
    for name, values in samples.items():
        table.rows.append([f"GET {URL_PATH} (WSGI, body not sent)", name, fmt(median(values)), ""])
    section.data["WSGI µs per file request"] = {name: median(v) for name, v in samples.items()}


def _limit_rows(cfg: Config, table: Table, section: Section) -> None:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from middleware import BodyLimit

    app = bench_middleware.asgi_app(_HELLO)
    forwarded = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    requests = {
        "GET, no body": forwarded,
        "POST, Content-Length 1 KiB": [*forwarded, (b"content-length", b"1024")],
    }
    rounds = cfg.rounds * 2 + 1
    for title, headers in requests.items():
        variants = {
            "bare app": app,
            "BodyLimit (1 MiB)": BodyLimit(app, max_body_size=1 << 20),
            "uvicorn ProxyHeadersMiddleware": ProxyHeadersMiddleware(
                app, trusted_hosts="127.0.0.1"
            ),
        }
        samplers = {
            name: _sampler(bench_middleware.asgi_caller(wrapped, headers))
            for name, wrapped in variants.items()
        }
        samples = interleave(samplers, rounds, cfg.inprocess_target)
        bare = median(samples["bare app"])
        added = {name: median(values) - bare for name, values in samples.items()}
        for name, values in samples.items():
            shown = "baseline" if name == "bare app" else fmt(added[name])
            table.rows.append([title, name, fmt(median(values)), shown])
        section.data[f"BodyLimit | {title}"] = {name: median(v) for name, v in samples.items()}
        section.targets.append(
            Target(
                f"BodyLimit µs added ({title}, ASGI)",
                added["BodyLimit (1 MiB)"],
                added["uvicorn ProxyHeadersMiddleware"],
                "<=",
                " µs",
                "limit: what uvicorn's ProxyHeadersMiddleware adds, same run",
            )
        )


def run(cfg: Config) -> Section:
    started = time.monotonic()
    files = Table(
        [
            "contender",
            "median req/s",
            "MiB/s",
            "ratio to reference",
            "server CPU µs / request",
            "non-2xx",
            "errors",
        ],
        [],
    )
    limit = Table(["request", "variant", "µs / request", "µs added"], [])
    section = Section(
        "static",
        "Static files (1 MiB over HTTP) and BodyLimit's cost (in process)",
        f"`GET {URL_PATH}` (1 MiB, random bytes) from {CONNECTIONS} keep-alive connections: "
        "our `StaticFiles` around a Starlette app on uvicorn vs Starlette's `StaticFiles` "
        "mounted in that app, and around a raw WSGI app on gunicorn gthread vs WhiteNoise "
        "around the same app. Rounds of R O R O ... R; a ratio is the median of our req/s "
        "over the mean of the reference points just before and after it; server CPU is the "
        "serving process's user + system time over a point ÷ its requests (most of it the "
        "kernel's: sendfile and loopback TCP). Below: the µs "
        "`BodyLimit` adds to an ASGI request next to uvicorn's `ProxyHeadersMiddleware` "
        "(trusted 127.0.0.1, X-Forwarded-For and -Proto present), driven without a loop; "
        "and the µs of Python work each WSGI contender does per file request (everything "
        "but sending the bytes, which gunicorn does with sendfile for both), ours also "
        "with `check_changes=False` (no stat per request, as WhiteNoise's default).",
        [files, limit],
        notes=[
            f"Load: `{cfg.loadgen}` on core 1, {fmt(cfg.duration)} s per point, "
            f"{cfg.http_rounds * 2 + 1} rounds on uvicorn, {cfg.http_rounds * 4 + 1} on "
            "gunicorn (where the ratio is near 1); servers pinned to core 0; "
            f"gunicorn `-k gthread -w 1 "
            f"--threads {GTHREAD_THREADS}`; uvicorn uvloop + httptools (no pathsend there, "
            "so both ASGI contenders read the file in Python; WhiteNoise and ours both "
            "hand gunicorn a `wsgi.file_wrapper`, which it sends with sendfile).",
        ],
    )
    _http_rows(cfg, files, section)
    _limit_rows(cfg, limit, section)
    _wsgi_rows(cfg, limit, section)
    labels = [key for key in section.data if " vs " in key]
    section.plots.append(
        bar_plot(
            cfg.out,
            "static",
            title="StaticFiles 1 MiB: req/s ÷ the reference, higher is better",
            labels=labels,
            series={"ratio": [section.data[key]["ratio"] for key in labels]},
            xlabel="ratio to the reference (same rounds)",
            line=1.0,
            line_label="reference",
        )
    )
    section.seconds = time.monotonic() - started
    return section
