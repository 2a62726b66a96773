"""Entry points the benchmark servers load: the contender named by ``$BENCH_APP``.

uvicorn: ``uvicorn --factory benchmarks._serve:asgi``; gunicorn:
``gunicorn 'benchmarks._serve:wsgi()'``. Both build the app in the serving process.

``$BENCH_SWITCH_INTERVAL`` (seconds), when set, is passed to ``sys.setswitchinterval`` in
the serving process before the app is built: how a user would tune the GIL hand-off
(README, "Tail latency and the switch interval").
"""

from __future__ import annotations

import os
import sys
from typing import Any

from benchmarks._apps import build, serves


def _spec(interface: str) -> str:
    interval = os.environ.get("BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    spec = os.environ["BENCH_APP"]
    if serves(spec) != interface:
        raise ValueError(f"{spec!r} is not a {interface.upper()} app")
    return spec


def asgi() -> Any:
    """The ASGI contender (a factory for ``uvicorn --factory``)."""
    return build(_spec("asgi"))


def wsgi() -> Any:
    """The WSGI contender (gunicorn calls ``wsgi()`` in the worker)."""
    return build(_spec("wsgi"))
