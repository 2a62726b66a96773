"""Start and stop real servers (uvicorn, gunicorn gthread) on 127.0.0.1, pinned to core 0.

Every server runs in its own session (process group), and :func:`running` stops every
group it started, on every exit path: SIGTERM, then SIGKILL after a grace period.
Memory is read from ``/proc/PID/status`` (``VmRSS``, ``VmHWM``); ``clear_refs`` resets
the high-water mark so a peak can be measured after warm-up.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
LOAD_CPU = "1"
GTHREAD_THREADS = 8
_START_TIMEOUT = 60.0
_STOP_GRACE = 5.0


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """``argv`` under ``taskset -c cpu`` when taskset exists and there are 2+ cores."""
    if (os.cpu_count() or 1) > 1 and _which("taskset"):
        return ["taskset", "-c", cpu, *argv]
    return list(argv)


def _which(name: str) -> bool:
    return any(
        os.access(os.path.join(folder, name), os.X_OK)
        for folder in os.environ.get("PATH", "").split(os.pathsep)
    )


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1 that this process has not handed out before: servers are
    all built before any starts, and the kernel may offer a port again once the probe
    socket is closed (two servers on one port ended a run with a dead worker)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class Server:
    """One server process serving the contender ``spec`` with ``kind`` ("uvicorn"/"gunicorn")."""

    spec: str
    kind: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        python = sys.executable
        if self.kind == "uvicorn":
            argv = [python, "-m", "uvicorn", "--factory", "benchmarks._serve:asgi"]
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
            argv += ["--log-level", "warning", "--no-access-log"]
            argv += ["--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "30"]
        elif self.kind == "gunicorn":
            argv = [python, "-m", "gunicorn", "benchmarks._serve:wsgi()"]
            argv += ["-b", f"127.0.0.1:{self.port}", "-w", "1", "-k", "gthread"]
            argv += ["--threads", str(GTHREAD_THREADS), "--keep-alive", "30"]
            argv += ["--log-level", "warning", "--timeout", "120"]
        else:
            raise ValueError(f"unknown server kind {self.kind!r}")
        return pinned(SERVER_CPU, argv)

    def start(self, logs: Path) -> None:
        env = dict(os.environ, BENCH_APP=self.spec, PYTHONPATH=str(ROOT))
        safe = "".join(c if c.isalnum() else "_" for c in f"{self.kind}-{self.spec}")
        self.log = logs / f"{safe}-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self} exited at startup:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self} not ready in {_START_TIMEOUT}s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(_STOP_GRACE)

    def serving_pid(self) -> int:
        """The PID that serves requests: uvicorn itself, gunicorn's (only) worker."""
        assert self.process is not None
        pid = self.process.pid  # taskset execs, so this is the server's own PID
        if self.kind == "gunicorn":
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
        return pid

    def __str__(self) -> str:
        return f"{self.kind} serving {self.spec!r} on :{self.port}"


def vm_kib(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0, needs permission)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def running(servers: Sequence[Server], logs: Path) -> Iterator[Sequence[Server]]:
    """Start ``servers`` together, wait until each answers ``GET /``; stop them all after."""
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for server in servers:
            server.start(logs)
        deadline = time.monotonic() + _START_TIMEOUT
        for server in servers:
            server.wait_ready(deadline)
        yield servers
    finally:
        for server in servers:
            server.stop()
