"""Race-stress tests: every cross-thread path, with the GIL switching as often as it can.

``sys.setswitchinterval(1e-6)`` makes the interpreter hand the GIL over after almost
every bytecode, so a window between two statements that is open for a microsecond is
hit within a few thousand rounds. Each test is bounded to seconds by default; the
``soak`` variant runs the same body ten times longer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads after (almost) every bytecode for the test; restore afterwards."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
