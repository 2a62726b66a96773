"""The knobs of one harness run, fixed by ``--quick`` and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    quick: bool
    rounds: int  # interleaved in-process rounds (x2 + 1)
    http_rounds: int  # rounds of HTTP load points
    duration: float  # seconds of load per HTTP point
    connections: int  # keep-alive connections per HTTP point
    loadgen: str  # "wrk" or "python"
    stream_size: int  # bytes per streaming transfer
    stream_rounds: int
    inprocess_target: float  # seconds per in-process sample
    out: Path  # where RESULTS.md, results.json and the PNGs go
    logs: Path  # server logs (scratch)

    @classmethod
    def make(cls, quick: bool, loadgen: str, out: Path, logs: Path) -> Config:
        if quick:
            return cls(quick, 3, 2, 1.0, 32, loadgen, 64 << 20, 1, 0.02, out, logs)
        return cls(quick, 5, 5, 2.0, 32, loadgen, 64 << 20, 4, 0.05, out, logs)
