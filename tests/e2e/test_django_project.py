"""A real Django project through ``ASGIToWSGI`` on real WSGI servers.

``tests/apps/djproject/orm``: models on sqlite with ``CONN_MAX_AGE``, the admin (login
with CSRF and a session), an ORM JSON view and static files, its ASGI app served by
gunicorn gthread and waitress (8 threads each) in both loop modes. Besides the pages,
each run checks what issue 14 found broken: database connections are per WSGI thread
and kept (thread mode opens no more than a native WSGI app's 8; shared mode's pool is
bounded), and the OS threads are the server's own (plus the loop thread and the pool in
shared mode), however many requests pass.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, free_port, require_module, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

SERVERS = ["gunicorn-gthread", "waitress"]
SERVER_THREADS = 8  # wsgi_server_argv gives both servers 8 threads
PROJECT = "tests.apps.djproject.orm"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_module("django")
    path = tmp_path_factory.mktemp("djproject") / "db.sqlite3"
    subprocess.run(
        [sys.executable, "-m", f"{PROJECT}.prepare", str(path)],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    return path


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    require_module(name.split("-", maxsplit=1)[0])
    return name


@pytest.fixture(scope="module", params=["thread", "shared"])
def site(server: str, request: pytest.FixtureRequest, database: Path) -> Iterator[str]:
    port = free_port()
    argv = wsgi_server_argv(server, f"{PROJECT}.bridged:{request.param}", port)
    with serve(argv, port, env={"DJPROJECT_DB": str(database)}, timeout=60) as url:
        yield url


def _stats(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/stats")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _load(url: str, requests: int) -> None:
    """``requests`` GETs of the ORM view from 8 keep-alive clients at once."""

    def client(count: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(count):
                response = http.get("/items")
                assert response.status_code == 200
                assert response.json()["count"] == 50

    with concurrent.futures.ThreadPoolExecutor(SERVER_THREADS) as pool:
        futures = [pool.submit(client, requests // SERVER_THREADS) for _ in range(SERVER_THREADS)]
        for future in futures:
            future.result()


def test_admin_login_with_csrf_and_session(site: str) -> None:
    with httpx.Client(base_url=site, timeout=30) as client:
        page = client.get("/admin/login/", params={"next": "/admin/"})
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        assert "csrftoken" in client.cookies
        form = {"username": "admin", "password": "admin-password", "next": "/admin/"}
        # Without the form's token, CSRF protection refuses the POST.
        refused = client.post("/admin/login/?next=/admin/", data=form)
        assert refused.status_code == 403
        logged_in = client.post(
            "/admin/login/?next=/admin/",
            data={**form, "csrfmiddlewaretoken": token.group(1)},
        )
        assert logged_in.status_code == 302
        assert logged_in.headers["location"] == "/admin/"
        assert "sessionid" in client.cookies
        # The session carries the login to the next request, and to the ORM-backed admin.
        index = client.get("/admin/")
        assert index.status_code == 200
        assert "Site administration" in index.text
        items = client.get("/admin/orm/item/")
        assert items.status_code == 200
        assert "50 items" in items.text
        # Without the session cookie the admin sends the client to log in.
        anonymous = httpx.get(site + "/admin/", timeout=30)
        assert anonymous.status_code == 302
        assert anonymous.headers["location"].startswith("/admin/login/")


def test_orm_view_and_static_file(site: str) -> None:
    import django

    with httpx.Client(base_url=site, timeout=30) as client:
        items = client.get("/items")
        assert items.status_code == 200
        assert items.headers["content-type"] == "application/json"
        body = items.json()
        assert body["count"] == 50
        assert body["items"][:2] == [
            {"id": 1, "name": "item 0", "price": 0},
            {"id": 2, "name": "item 1", "price": 100},
        ]
        assert len(body["items"]) == 20
        css = client.get("/static/admin/css/base.css")
    expected = Path(django.__file__).parent / "contrib/admin/static/admin/css/base.css"
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.content == expected.read_bytes()


def test_connections_kept_per_thread_and_threads_flat(site: str, request: Any) -> None:
    mode = request.node.callspec.params["site"]
    with httpx.Client(base_url=site, timeout=30) as client:
        _load(site, 160)
        warm = _stats(client)
        _load(site, 800)
        after = _stats(client)
    opened = after["connections_opened"]
    assert after["sqlite_handles_open"] == opened  # none left to the garbage collector
    if mode == "thread":
        # As the native WSGI app: at most one connection per server thread, kept, and
        # no thread beyond the server's own (its main thread and its 8 workers; both
        # servers may start workers lazily, so the count is a bound, not an equality).
        assert opened <= SERVER_THREADS
        # Threads flat: 800 more requests add none beyond the server's own. A loaded CI
        # machine has shown up to two more in a snapshot (asgiref runs a few calls, e.g.
        # Django's log_response, on short-lived or default-executor threads): a bound
        # independent of the request count, still far from one thread per request.
        assert warm["threads"] <= after["threads"] <= 1 + SERVER_THREADS + 2
    else:
        # A pool of one-thread executors, one per request in flight, reused: it may
        # still grow a little; the loop thread and the pool are the only extra threads.
        assert opened <= 2 * SERVER_THREADS
        # (+2: as in thread mode, asgiref's short-lived threads under load, and an
        # executor lent to a request that opened no connection, such as /stats itself.)
        assert after["threads"] <= 2 + SERVER_THREADS + opened + 2


def test_same_project_on_gunicorns_asgi_worker(database: Path) -> None:
    # What docs/howto/gunicorn-asgi-worker.md compares against: the ASGI app on
    # gunicorn's own -k asgi worker works, and there Django opens a connection per
    # request (its per-request ThreadSensitiveContext, nothing to keep it per thread).
    require_module("gunicorn")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-k", "asgi", "-w", "1"]
    argv += ["-b", f"127.0.0.1:{port}", f"{PROJECT}.asgi:application"]
    env = {"DJPROJECT_DB": str(database)}
    with (
        serve(argv, port, env=env, timeout=60) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        before = _stats(client)
        for _ in range(40):
            response = client.get("/items")
            assert response.status_code == 200
            assert response.json()["count"] == 50
        after = _stats(client)
        css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200
    assert after["connections_opened"] - before["connections_opened"] == 40
