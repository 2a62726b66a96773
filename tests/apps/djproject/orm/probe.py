"""``python -m tests.apps.djproject.orm.probe DB APP REQUESTS THREADS``: serve in process.

``APP`` is ``wsgi`` (native), or a name in ``bridged`` (``thread``, ``shared``,
``unmarked``). A
fixed set of ``THREADS`` threads, like a WSGI server's pool, each calls the app for
``GET /items`` until ``REQUESTS`` requests are answered; prints what ``/stats`` reports
before and after (while the threads are still alive) as JSON, plus the statuses seen.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections import Counter
from typing import Any

from tests.wsgi_call import call_wsgi_app


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call(app: Any, path: str) -> tuple[str, bytes]:
    return call_wsgi_app(app, _environ(path))


def main(database: str, which: str, requests: int, threads: int) -> dict[str, Any]:
    os.environ["DJPROJECT_DB"] = database
    if which == "wsgi":
        from tests.apps.djproject.orm.wsgi import application as app
    else:
        from tests.apps.djproject.orm import bridged

        app = getattr(bridged, which)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()

    def stats() -> dict[str, Any]:
        status, body = call(app, "/stats")
        assert status.startswith("200"), status
        result: dict[str, Any] = json.loads(body)
        return result

    def worker(quota: int) -> None:
        # A fixed share per thread, not a shared counter: under load the first threads
        # could serve every request before the last one started, and the count of
        # connections (one per thread that served) would then depend on the scheduler.
        start.wait()
        for _ in range(quota):
            status, body = call(app, "/items")
            with lock:
                statuses[status] += 1
            assert json.loads(body)["count"] == 50

    out: dict[str, Any] = {}
    first = threading.Thread(target=lambda: out.update(before=stats()))
    first.start()
    first.join()
    done = threading.Barrier(threads + 1)
    release = threading.Event()
    start = threading.Barrier(threads)  # every thread serves, from the same moment

    def serve(quota: int) -> None:
        worker(quota)
        done.wait()
        release.wait()  # alive while /stats counts threads, as a server's pool would be

    shares = [requests // threads + (i < requests % threads) for i in range(threads)]
    pool = [threading.Thread(target=serve, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    done.wait()
    out["after"] = stats()
    release.set()
    for thread in pool:
        thread.join()
    out["statuses"] = dict(statuses)
    return out


if __name__ == "__main__":
    database, which, requests, threads = sys.argv[1:5]
    print(json.dumps(main(database, which, int(requests), int(threads))))
