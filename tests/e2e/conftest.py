"""Record the compatibility matrix's outcomes, for ``scripts/matrix_table.py``.

With ``BRIDGE_MATRIX_JSON=path`` set, every test parametrized with a ``cell`` and a
``check`` (``tests/e2e/test_matrix.py``) is written down with its outcome (passed,
failed, skipped or xfailed) and, unless it passed, the reason; the file is written
when the session ends. Without the variable this plugin does nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

_ENV = "BRIDGE_MATRIX_JSON"
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "failed": 3}
_results: dict[str, dict[str, Any]] = {}


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0]
    return str(longrepr).splitlines()[-1] if longrepr else ""


def _outcome(report: pytest.TestReport) -> str | None:
    if hasattr(report, "wasxfail"):
        # An xfail that passes is an XPASS, which strict mode turns into a failure.
        return "xfailed" if report.skipped else "failed"
    if report.failed:
        return "failed"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not os.environ.get(_ENV):
        return report
    params = getattr(getattr(item, "callspec", None), "params", {})
    cell, check = params.get("cell"), params.get("check")
    if cell is None or check is None or not hasattr(cell, "record"):
        return report
    outcome = _outcome(report)
    if outcome is None:
        return report
    previous = _results.get(item.nodeid)
    if previous is None or _RANK[outcome] > _RANK[previous["outcome"]]:
        _results[item.nodeid] = {
            **cell.record(),
            "check": check.name,
            "check_title": check.title,
            "outcome": outcome,
            "reason": "" if outcome == "passed" else _reason(report),
        }
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(_ENV)
    if not path or not _results:
        return
    document = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "results": list(_results.values()),
    }
    Path(path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
