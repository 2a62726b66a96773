"""Deployment middleware per request (in process), beside uvicorn's and werkzeug's.

Each of ``ProxyHeaders``, ``TrustedHost``, ``HTTPSRedirect``, ``RequestID`` and
``SecurityHeaders`` around a bare app, on ASGI next to uvicorn's
``ProxyHeadersMiddleware`` (issue #13's yardstick: each must add no more) and on WSGI
next to werkzeug's ``ProxyFix``. One request for all: ``GET`` over https from a trusted
proxy (``X-Forwarded-For``, ``X-Forwarded-Proto``), so every middleware does its real
work and lets the app answer; the ASGI scope carries ``state`` as uvicorn's does. Timed
with ``bench_middleware.measure`` (interleaved rounds, medians); *added* = wrapped minus
the bare app, measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from benchmarks import bench_middleware as bench
from benchmarks._config import Config
from benchmarks._report import Section, Table, Target, bar_plot, fmt
from middleware import HTTPSRedirect, ProxyHeaders, RequestID, SecurityHeaders, TrustedHost
from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, RequestHead

_FORWARDED = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
_WITH_ID = [*_FORWARDED, (b"x-request-id", b"req-0123456789")]

Make = Callable[[Any], Any]


class _Unchanged(Handler):
    __slots__ = ()
    head_only = True

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        return status, headers


class _HeadOnlyFloor(Core):
    """What any head-editing middleware pays the driver: a shared head-only handler
    that changes nothing (SecurityHeaders' and RequestID's echo path, minus their work)."""

    __slots__ = ("_handler",)

    def __init__(self) -> None:
        self._handler = _Unchanged()

    def on_request(self, head: RequestHead) -> Handler:
        return self._handler


class _StateFloor(Core):
    """What handing the app one value costs (``scope["state"]`` and the contextvar)."""

    __slots__ = ()

    def on_request(self, head: RequestHead) -> Handler:
        head.state["request_id"] = "x"
        return _UNCHANGED


_UNCHANGED = _Unchanged()


def _floor(core: Core) -> Make:
    class Floor(CoreMiddleware):
        def __init__(self, app: Any) -> None:
            super().__init__(app, core)

    return Floor


OURS: dict[str, Make] = {
    "ProxyHeaders": ProxyHeaders,
    "TrustedHost": lambda app: TrustedHost(app, allowed_hosts=["api.example.com"]),
    "HTTPSRedirect": HTTPSRedirect,
    "RequestID (id generated)": RequestID,
    "SecurityHeaders": SecurityHeaders,
}


def _variants(interface: str) -> dict[str, Callable[[], None]]:
    body = bench.json_body(64)
    if interface == "asgi":
        app = bench.asgi_app(body)

        def call(wrapped: Any, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
            scope = bench.scope_for(headers)
            scope["scheme"] = "https"

            def run() -> None:
                # The scope as uvicorn makes it: with "state", a per-request copy of the
                # lifespan state (empty here), where RequestID puts the id.
                fresh = dict(scope)
                fresh["state"] = {}
                coro = wrapped(fresh, bench._receive, bench._send)
                try:
                    coro.send(None)
                except StopIteration:
                    return
                raise RuntimeError("the app waited; cannot drive it without a loop")

            return run

        theirs: dict[str, Make] = {
            "uvicorn ProxyHeadersMiddleware": lambda a: ProxyHeadersMiddleware(a, "127.0.0.1")
        }
    else:
        app = bench.wsgi_app(body)

        def call(wrapped: Any, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
            environ = bench.environ_for(headers)
            environ["wsgi.url_scheme"] = "https"

            def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                return None

            def run() -> None:
                bench.drain_wsgi(wrapped(dict(environ), start_response))

            return run

        theirs = {"werkzeug ProxyFix": lambda a: ProxyFix(a, x_for=1, x_proto=1)}
    variants = {"bare app": call(app, _FORWARDED)}
    for name, make in {**theirs, **OURS}.items():
        variants[name] = call(make(app), _FORWARDED)
    variants["RequestID (id given)"] = call(RequestID(app), _WITH_ID)
    # Floors: the driver's share of the two head-editing middleware above.
    variants["floor: head-only handler"] = call(_floor(_HeadOnlyFloor())(app), _FORWARDED)
    variants["floor: head-only handler + state"] = call(_floor(_StateFloor())(app), _FORWARDED)
    return variants


def run(cfg: Config) -> Section:
    started = time.monotonic()
    rounds = cfg.rounds * 2 + 1
    table = Table(["interface", "variant", "µs / request", "µs added"], [])
    data: dict[str, dict[str, float]] = {}
    for interface in ("asgi", "wsgi"):
        medians = bench.measure(_variants(interface), rounds, cfg.inprocess_target)
        bare = medians["bare app"]
        for name, value in medians.items():
            added = value - bare
            table.rows.append(
                [interface, name, fmt(value), "baseline" if name == "bare app" else fmt(added)]
            )
            data[f"{interface} | {name}"] = {"us": value, "added": added}
    section = Section(
        "deployment",
        "Deployment middleware per request (in process)",
        "ProxyHeaders, TrustedHost, HTTPSRedirect, RequestID and SecurityHeaders around a "
        "bare app (64 B JSON), beside uvicorn's ProxyHeadersMiddleware (ASGI) and werkzeug's "
        "ProxyFix (WSGI); one https GET from a trusted proxy with X-Forwarded-For and "
        "-Proto (the ASGI scope with `state`, a copy of the lifespan state, as uvicorn "
        f"makes it); {rounds} interleaved rounds, medians. *added* = wrapped minus bare app. "
        "The floor rows are public-API middleware that do nothing but return a head-only "
        "handler (and hand the app one state value): the driver's share of SecurityHeaders "
        "and RequestID.",
        [table],
        data=data,
    )
    uvicorn = data["asgi | uvicorn ProxyHeadersMiddleware"]["added"]
    for name in [*OURS, "RequestID (id given)"]:
        ours = data[f"asgi | {name}"]["added"]
        section.targets.append(
            Target(
                f"{name} µs added ÷ uvicorn ProxyHeadersMiddleware's (ASGI)",
                ours / uvicorn,
                1.0,
                "<=",
                "x",
                f"{fmt(ours)} µs vs {fmt(uvicorn)} µs",
            )
        )
    labels = [key for key in data if not key.endswith("bare app")]
    section.plots.append(
        bar_plot(
            cfg.out,
            "deployment",
            title="Deployment middleware µs added per request, lower is better",
            labels=labels,
            series={"µs added": [data[key]["added"] for key in labels]},
            xlabel="µs added",
        )
    )
    section.seconds = time.monotonic() - started
    return section
