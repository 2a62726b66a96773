"""Run mypy (strict) on usage files and compare its errors with their ``# E:`` marks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
_MARK = re.compile(r"#\s*E:\s*([\w-]+)\s*$")
_ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def expected_errors(path: Path) -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _MARK.search(line)
        if match:
            marks.add((number, match.group(1)))
    return marks


@pytest.mark.parametrize("usage", ["asgi_to_wsgi_usage.py"])
def test_mypy_accepts_and_refuses_exactly_the_marked_lines(usage: str, tmp_path: Path) -> None:
    # mypy comes with the dev extra; CI's runs on other Pythons install the test extra.
    pytest.importorskip("mypy")
    path = HERE / usage
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--config-file",
            "",
            str(path.relative_to(ROOT)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found = set()
    for line in result.stdout.splitlines():
        match = _ERROR.match(line)
        if match and Path(match.group("path")).name == usage:
            found.add((int(match.group("line")), match.group("code")))
        elif ": error:" in line or (": note:" not in line and line.strip()):
            pytest.fail(f"unexpected mypy output: {line}\n{result.stdout}{result.stderr}")
    assert found == expected_errors(path), result.stdout
