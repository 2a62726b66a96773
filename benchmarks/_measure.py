"""Interleaved timing: every contender is sampled once per round, in the same order.

On a shared machine the speed changes minute to minute; interleaving spreads that drift
over every contender alike, and medians drop the rounds a neighbour spoiled. (Over HTTP,
``_http`` goes further and measures the baseline between every two contenders.)
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Iterable, Mapping

# A sampler runs ``n`` operations and returns the seconds they took.
Sampler = Callable[[int], float]


def calibrate(sample: Sampler, target: float) -> int:
    """The smallest power of two of operations that takes at least ``target`` seconds."""
    n = 1
    sample(1)  # warm up, and fail early
    while sample(n) < target and n < 1 << 22:
        n *= 2
    return n


def interleave(
    samplers: Mapping[str, Sampler], rounds: int, target: float
) -> dict[str, list[float]]:
    """Microseconds per operation of each sampler, one sample per round."""
    sizes = {name: calibrate(sample, target) for name, sample in samplers.items()}
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, sample in samplers.items():
                n = sizes[name]
                samples[name].append(sample(n) / n * 1e6)
    finally:
        gc.enable()
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def drain_wsgi(result: Iterable[bytes]) -> None:
    """Consume a WSGI response as a server would: iterate it, then always ``close()`` it."""
    try:
        for _chunk in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
