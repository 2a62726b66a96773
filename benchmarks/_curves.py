"""Helpers of the "how cost grows" scenarios: wrk with latency percentiles, line plots.

:func:`latency_load` runs ``wrk --latency`` (pinned to the load core like every load
point) and reads requests/s with the 50th and 99th latency percentiles; the Python load
generator reports no latencies, so with it those figures are ``nan``. :func:`line_plot`
draws one panel per measure with one line per contender, all on the same axes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._load import UNIT, http_load, run_wrk
from benchmarks._report import fmt

_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


@dataclass
class Point:
    """One load point: successful requests/s and latency percentiles in ms."""

    rate: float
    p50_ms: float
    p99_ms: float
    non2xx: int = 0
    errors: int = 0


def latency_load(
    url: str,
    connections: int,
    duration: float,
    use: str,
    *,
    headers: Sequence[str] = (),
    timeout: float = 10.0,
) -> Point:
    """Keep-alive GETs of ``url`` from ``connections`` connections for ``duration`` s."""
    if use != "wrk":
        result = http_load(url, connections, duration, use, timeout)
        return Point(result.rate, math.nan, math.nan, result.non2xx, result.errors)
    extra = ["--latency"]
    for header in headers:
        extra += ["-H", header]
    result, out = run_wrk(url, connections, duration, timeout, extra)
    percentiles = {
        match.group(1): float(match.group(2)) * UNIT[match.group(3)] * 1000
        for match in _PERCENTILE.finditer(out)
    }
    return Point(
        result.rate,
        percentiles.get("50", math.nan),
        percentiles.get("99", math.nan),
        result.non2xx,
        result.errors,
    )


def line_plot(
    out: Path,
    name: str,
    *,
    title: str,
    x: Sequence[float],
    xlabel: str,
    panels: dict[str, dict[str, Sequence[float]]],
    log_y: Sequence[str] = (),
) -> str:
    """One panel per measure (``panels[ylabel][contender] = values``), log-scaled x;
    returns the PNG's file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels.items(), strict=True):
        for label, values in series.items():
            points = [(a, b) for a, b in zip(x, values, strict=True) if not math.isnan(b)]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xscale("symlog" if min(x) <= 0 else "log", base=2)
        ax.set_xticks(list(x))
        ax.set_xticklabels([_tick(v) for v in x], fontsize=7)
        if ylabel in log_y:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    plt.close(fig)
    return f"{name}.png"


def _tick(value: float) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{int(value // size)} {unit}"
    return str(int(value)) if value == int(value) else fmt(value)


def concurrency_plot(
    out: Path, name: str, title: str, levels: Sequence[int], data: dict[str, dict[str, list[float]]]
) -> str:
    """req/s, p50 and p99 against connections, one line per contender in ``data``."""
    return line_plot(
        out,
        name,
        title=title,
        x=levels,
        xlabel="keep-alive connections",
        panels={
            "req/s (higher is better)": {n: d["rate"] for n, d in data.items()},
            "p50 latency, ms": {n: d["p50_ms"] for n, d in data.items()},
            "p99 latency, ms": {n: d["p99_ms"] for n, d in data.items()},
        },
        log_y=["p50 latency, ms", "p99 latency, ms"],
    )
