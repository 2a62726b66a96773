"""Start real servers on 127.0.0.1 for tests, and always stop them.

Each server runs in its own process (``python -m <server> ...``) on a free port; the
context manager waits until the port accepts connections and, on exit, terminates the
process group (SIGTERM, then SIGKILL) so no server outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s:\n{log.read_text()}")


@contextlib.contextmanager
def serve(
    argv: Sequence[str],
    port: int,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    log: Path | None = None,
) -> Iterator[str]:
    """Run ``argv`` (which must listen on ``port``) and yield its base URL.

    The server's output goes to ``log`` when given (readable while it runs, kept
    afterwards), else to a temporary file that is removed.
    """
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    keep_log = log is not None
    if log is None:
        with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as temporary:
            log = Path(temporary.name)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(proc, port, log, timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        server_log = log.read_text(errors="replace")
        if not keep_log:
            log.unlink(missing_ok=True)
        # Surface the server's own output when a test fails.
        sys.stderr.write(server_log[-4000:])


def asgi_server_argv(server: str, target: str, port: int) -> list[str]:
    """Command line that serves the ASGI app ``module:attr`` with ``server`` on ``port``."""
    py = sys.executable
    if server == "uvicorn":
        return [
            py,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    if server == "hypercorn":
        return [py, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}"]
    if server == "hypercorn-trio":
        return [py, "-m", "hypercorn", "-k", "trio", target, "--bind", f"127.0.0.1:{port}"]
    if server == "granian":
        return [
            py,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            target,
        ]
    if server == "daphne":
        return [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), target]
    raise ValueError(server)


def wsgi_server_argv(server: str, target: str, port: int) -> list[str]:
    """Command line that serves the WSGI app ``module:attr`` with ``server`` on ``port``."""
    py = sys.executable
    if server == "gunicorn-sync":
        return [py, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}", target]
    if server == "gunicorn-gthread":
        return [
            py,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "8",
            "-b",
            f"127.0.0.1:{port}",
            target,
        ]
    if server == "waitress":
        return [py, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "--threads", "8", target]
    if server == "wsgiref":
        return [py, "-m", "tests.wsgiref_server", target, str(port)]
    raise ValueError(server)


def require_module(name: str) -> None:
    """Skip (with the reason) when a server or framework cannot be imported here."""
    pytest.importorskip(name, reason=f"{name} is not installed on this machine")


def require_executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed on this machine")
    return path
