"""The benchmark harness: every scenario in one run, tables and plots in ``results/``.

    python -m benchmarks [--quick] [--only SCENARIO[,SCENARIO]] [--loadgen auto|wrk|python]

Scenarios: inprocess, w2a (W->A over HTTP), a2w (A->W over HTTP), streaming, blocking,
middleware, websocket, concurrency, bodysize, realistic. A full run writes
``benchmarks/results/``; ``--quick`` and ``--only`` runs write
``benchmarks/results/partial/`` (not committed) unless ``--out`` says otherwise.
Prints the target summary and the path of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import (
    _bodysize,
    _concurrency,
    _deployment,
    _django,
    _http,
    _inprocess,
    _middleware,
    _realistic,
    _static,
    _websocket,
)
from benchmarks._config import Config
from benchmarks._load import tool
from benchmarks._report import RESULTS, Section, Table, load_average, machine, revision, write

SCENARIOS: dict[str, Callable[[Config], Section]] = {
    "inprocess": _inprocess.run,
    "w2a": _http.wsgi_to_asgi,
    "a2w": _http.asgi_to_wsgi,
    "streaming": _http.streaming,
    "blocking": _http.blocking,
    "middleware": _middleware.run,
    "websocket": _websocket.run,
    "static": _static.run,
    "concurrency": _concurrency.run,
    "bodysize": _bodysize.run,
    "realistic": _realistic.run,
    "deployment": _deployment.run,
    "django": _django.run,
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="short points, few rounds (~4 min)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--out", type=Path, help="output folder (default: see above)")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/bench-logs"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    partial = args.quick or len(chosen) < len(SCENARIOS)
    out = args.out or (RESULTS / "partial" if partial else RESULTS)
    cfg = Config.make(args.quick, tool(args.loadgen), out, args.logs)
    header = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": revision(),
        **machine(),
        "load average at start (1, 5, 15 min)": load_average(),
        "load generator": f"{cfg.loadgen} (pinned to core 1; servers on core 0)",
        "mode": "quick" if cfg.quick else "full",
    }
    interval = os.environ.get("BENCH_SWITCH_INTERVAL")
    if interval:
        header["servers' sys.setswitchinterval (BENCH_SWITCH_INTERVAL)"] = f"{interval} s"
    print(f"{header['date']}: {', '.join(chosen)}; load average {load_average()}")
    started = time.monotonic()
    sections: list[Section] = []
    failed: list[str] = []
    for name in chosen:
        t0 = time.monotonic()
        print(f"--- {name} ...", flush=True)
        try:
            section = SCENARIOS[name](cfg)
        except Exception:  # one broken scenario must not lose the others' results
            failed.append(name)
            traceback.print_exc()
            continue
        section.seconds = time.monotonic() - t0
        sections.append(section)
        for table in section.tables:
            print(table.markdown(), "\n", flush=True)
    header["load average at end (1, 5, 15 min)"] = load_average()
    header["wall time"] = f"{time.monotonic() - started:.0f} s"
    if failed:
        header["failed scenarios"] = ", ".join(failed)
    path = write(out, sections, header)
    targets = [t for s in sections for t in s.targets]
    if targets:
        summary = Table(
            ["target", "measured", "goal", "met", "same run"], [t.row() for t in targets]
        )
        print("## Targets\n")
        print(summary.markdown())
    print(f"\nwrote {path} ({header['wall time']}; load average at end {load_average()})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
