"""Drive a server from a separate process pinned to the load core: ``wrk`` or our client.

:func:`http_load` runs ``wrk`` when it is on ``PATH`` (one thread: the load core is one
core) and otherwise ``python -m benchmarks._client load``; :func:`transfer` moves one
large body up or down. Both return plain numbers and never raise on HTTP errors: the
caller reports error counts next to the figures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._config import Config
from benchmarks._servers import LOAD_CPU, ROOT, pinned

_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class LoadResult:
    requests: int
    seconds: float
    non2xx: int = 0
    errors: int = 0

    @property
    def rate(self) -> float:
        ok = self.requests - self.non2xx
        return ok / self.seconds if self.seconds > 0 else 0.0


def tool(preference: str = "auto") -> str:
    """``"wrk"`` or ``"python"``: what :func:`http_load` will use."""
    if preference == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preference == "wrk":
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    return "python"


def run_wrk(
    url: str, connections: int, duration: float, timeout: float, extra: Sequence[str] = ()
) -> tuple[LoadResult, str]:
    """One pinned wrk run (one thread: the load core is one core), ``extra`` arguments
    before the URL; the counts and wrk's whole output (for what else it reports)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    argv += [f"--timeout={max(2, round(timeout))}s", *extra, url]
    out = subprocess.run(
        pinned(LOAD_CPU, argv),
        check=False,
        capture_output=True,
        text=True,
        timeout=duration + timeout + 30,
    ).stdout
    total = _WRK_TOTAL.search(out)
    if total is None:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    seconds = float(total.group(2)) * UNIT[total.group(3)]
    non2xx = _WRK_NON2XX.search(out)
    errors = _WRK_ERRORS.search(out)
    result = LoadResult(
        requests=int(total.group(1)),
        seconds=seconds,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )
    return result, out


def _client(argv: list[str], timeout: float) -> dict[str, float]:
    command = pinned(LOAD_CPU, [sys.executable, "-m", "benchmarks._client", *argv])
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"client failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def http_load(
    url: str, connections: int, duration: float, use: str, timeout: float = 10.0
) -> LoadResult:
    """Keep-alive GETs of ``url`` from ``connections`` connections for ``duration`` s."""
    if use == "wrk":
        return run_wrk(url, connections, duration, timeout)[0]
    result = _client(
        ["load", url, "--connections", str(connections), "--duration", str(duration)],
        timeout=duration + timeout + 30,
    )
    return LoadResult(
        requests=int(result["requests"]),
        seconds=result["seconds"],
        non2xx=int(result["non2xx"]),
        errors=int(result["errors"]),
    )


def transfer(url: str, direction: str, size: int) -> tuple[int, float]:
    """Move ``size`` bytes (``direction`` "download" or "upload"): (bytes seen, seconds)."""
    result = _client([direction, url, "--size", str(size)], timeout=300)
    if result["status"] != 200:
        raise RuntimeError(f"{direction} from {url}: HTTP {result['status']}")
    return int(result["bytes"]), result["seconds"]


Rounds = tuple[dict[str, list[LoadResult]], dict[str, list[float]]]


def paired_rounds(
    cfg: Config, baseline: tuple[str, str], others: Sequence[tuple[str, str]]
) -> Rounds:
    """Rounds of B C1 B C2 ... Cn B over ``(label, url)`` targets, ``cfg.http_rounds``
    times, each round starting one contender further on. Each contender's ratio is to the
    mean of the baseline points just before and after it, so drift slower than one point
    cancels; the baseline's own "ratio" is its point-to-point drift.
    Returns (results by label, per-round ratios by label)."""
    targets = [baseline, *others]
    results: dict[str, list[LoadResult]] = {label: [] for label, _ in targets}
    ratios: dict[str, list[float]] = {label: [] for label, _ in targets}

    def point(target: tuple[str, str]) -> float:
        result = http_load(target[1], cfg.connections, cfg.duration, cfg.loadgen)
        results[target[0]].append(result)
        return result.rate

    if not cfg.quick:  # warm up: imports, thread pools, caches
        for _, url in targets:
            http_load(url, cfg.connections, 1.0, cfg.loadgen)
    for index in range(cfg.http_rounds):
        shift = index % len(others)
        before = point(baseline)
        for target in [*others[shift:], *others[:shift]]:
            rate = point(target)
            after = point(baseline)
            mean = (before + after) / 2
            ratios[target[0]].append(rate / mean if mean > 0 else float("nan"))
            ratios[baseline[0]].append(after / before if before > 0 else float("nan"))
            before = after
    return results, ratios
