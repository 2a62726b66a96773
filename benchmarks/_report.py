"""What a scenario hands back (tables, targets, plots) and how it is written out.

A scenario returns a :class:`Section`: markdown tables plus :class:`Target` checks.
:func:`write` renders ``results/RESULTS.md`` (machine, load, every section, the target
summary) and ``results/results.json``; plots are drawn by the scenarios through
:func:`bar_plot` (matplotlib, Agg backend, so no display is needed).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"  # full runs; others: results/partial


@dataclass
class Target:
    """A goal from the issue: ``measured`` compared with ``limit`` (``<=`` or ``>=``)."""

    goal: str
    measured: float
    limit: float
    op: str  # "<=" or ">="
    unit: str = ""
    context: str = ""  # e.g. "a2wsgi: 150 µs, ratio 0.2x"

    @property
    def met(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured <= self.limit if self.op == "<=" else self.measured >= self.limit

    def row(self) -> list[str]:
        mark = "✅" if self.met else "❌"
        if math.isnan(self.measured):
            return [self.goal, "n/a", f"{self.op} {fmt(self.limit)}{self.unit}", "❌", self.context]
        margin = abs(self.limit - self.measured)
        word = "under" if self.measured <= self.limit else "over"
        if self.op == ">=":
            word = "above" if self.measured >= self.limit else "below"
        return [
            self.goal,
            f"{fmt(self.measured)}{self.unit}",
            f"{self.op} {fmt(self.limit)}{self.unit}",
            f"{mark} {fmt(margin)}{self.unit} {word}",
            self.context,
        ]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""

    def markdown(self) -> str:
        lines = []
        if self.caption:
            lines += [self.caption, ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        aligns = ["---" if i == 0 else "---:" for i in range(len(self.headers))]
        lines.append("|" + "|".join(aligns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.intro, ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        parts += [f"- {note}" for note in self.notes]
        if self.notes:
            parts.append("")
        parts += [f"![{self.title}]({name})" for name in self.plots]
        if self.plots:
            parts.append("")
        parts.append(f"_{self.seconds:.0f} s._")
        return "\n".join(parts)


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def revision() -> str:
    """The git commit measured, and whether bridge/ or middleware/ had local edits."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bridge", "middleware"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha} (bridge/ or middleware/ with uncommitted edits)" if dirty else sha


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bar_plot(
    out: Path,
    name: str,
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    xlabel: str,
    line: float | None = None,
    line_label: str = "",
) -> str:
    """Grouped horizontal bars, one group per label; returns the PNG's file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    height = max(2.5, 0.45 * len(labels) * max(1, len(series)) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        ys = [i + index * width for i in range(len(labels))]
        bars = ax.barh(ys, [0 if math.isnan(v) else v for v in values], height=width, label=label)
        ax.bar_label(bars, labels=[fmt(v) for v in values], padding=2, fontsize=8)
    ax.set_yticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    if line is not None:
        ax.axvline(line, color="red", linestyle="--", linewidth=1, label=line_label or None)
    if len(series) > 1 or line_label:
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    plt.close(fig)
    return f"{name}.png"


def write(out: Path, sections: list[Section], header: dict[str, str]) -> Path:
    """Write ``RESULTS.md`` and ``results.json`` into ``out``; return the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Benchmark results", ""]
    lines += [f"- **{key}**: {value}" for key, value in header.items()]
    lines.append("")
    targets = [t for s in sections for t in s.targets]
    if targets:
        summary = Table(["target", "measured", "goal", "met", "same run"], [])
        summary.rows = [t.row() for t in targets]
        lines += ["## Targets", "", summary.markdown(), ""]
    for section in sections:
        lines += [section.markdown(), ""]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines))
    payload = {
        "header": header,
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "data": s.data,
                "targets": [asdict(t) | {"met": t.met} for t in s.targets],
                "seconds": s.seconds,
            }
            for s in sections
        ],
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path
