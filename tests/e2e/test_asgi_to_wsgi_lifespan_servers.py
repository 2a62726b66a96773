"""How many times lifespan runs under gunicorn gthread with the documented hooks
(``post_worker_init`` calls ``start()``, ``worker_exit`` calls ``close()``: the ones in
``examples/django_under_gunicorn/gunicorn.conf.py`` and the README).

* ``loop_mode="thread"``: once in the worker's main thread (``start()`` in
  ``post_worker_init``) plus once per worker thread that serves a request; shutdown
  runs for each of those loops when the worker exits.
* ``loop_mode="shared"``: exactly once per worker.
"""

from __future__ import annotations

import concurrent.futures
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, free_port, require_module, serve

pytestmark = pytest.mark.slow

CONF = ROOT / "examples" / "django_under_gunicorn" / "gunicorn.conf.py"
THREADS = 3


def run(attr: str, log: Path) -> set[str]:
    """Serve ``attr`` with the example's gunicorn.conf.py (one worker, 3 threads), make
    3 concurrent requests, stop the server; returns the names of the serving threads."""
    require_module("gunicorn")
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(CONF),
        "--threads",
        str(THREADS),
        "--chdir",
        str(ROOT),
        f"tests.apps.lifespan_count_apps:{attr}",
    ]
    env = {"PORT": str(port), "WEB_CONCURRENCY": "1", "LIFESPAN_COUNT_LOG": str(log)}
    with (
        serve(argv, port, env=env, timeout=60) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(THREADS) as pool,
    ):
        return set(pool.map(lambda _: client.get("/thread").text, range(THREADS)))


def events(log: Path) -> list[tuple[str, str]]:
    return [(line.split()[0], line.split()[2]) for line in log.read_text().splitlines()]


def test_thread_mode_runs_lifespan_in_the_main_thread_and_once_per_serving_thread(
    tmp_path: Path,
) -> None:
    log = tmp_path / "lifespan.log"
    serving = run("application", log)
    assert len(serving) == THREADS  # the 3 concurrent requests each held a thread
    startups = [thread for event, thread in events(log) if event == "startup"]
    assert sorted(startups) == sorted(["MainThread", *serving])  # 1 + 3, not once
    shutdowns = [thread for event, thread in events(log) if event == "shutdown"]
    assert len(shutdowns) == THREADS + 1  # worker_exit's close() retires every loop


def test_shared_mode_runs_lifespan_once_per_worker(tmp_path: Path) -> None:
    log = tmp_path / "lifespan.log"
    run("application_shared", log)
    assert [event for event, _ in events(log)] == ["startup", "shutdown"]


def test_the_readme_command_serves_the_django_example_without_hooks(tmp_path: Path) -> None:
    # README: cd examples/django_under_gunicorn; gunicorn -k gthread --threads 8
    # wsgi_from_asgi:application. Lifespan then starts with the first request.
    require_module("django")
    require_module("gunicorn")
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(CONF.parent),
        "wsgi_from_asgi:application",
    ]
    log = tmp_path / "gunicorn.log"
    with serve(argv, port, log=log, timeout=60) as url:
        response = httpx.get(f"{url}/hello/readme", timeout=30)
    assert response.status_code == 200
    assert response.json()["hello"] == "readme"
    assert isinstance(response.json()["started_at"], float)  # the lifespan ran
