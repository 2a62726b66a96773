"""mypy --strict on a user's middleware modules: the API keeps its types, no ignores."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import ROOT

MODULES = [
    # The library's own middleware are written as a user's would be.
    "middleware/_request_id.py",
    "middleware/_proxy_headers.py",
    "tests/middleware/typing_cases/user_module.py",
]


@pytest.mark.slow
def test_a_user_middleware_module_passes_mypy_strict_with_no_ignores() -> None:
    for module in MODULES:
        assert "type: ignore" not in (ROOT / module).read_text(), module
    names = [module.removesuffix(".py").replace("/", ".") for module in MODULES]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
        + [arg for name in names for arg in ("-m", name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
