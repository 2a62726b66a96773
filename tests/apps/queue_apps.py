"""Apps for the queue-deadline and burst tests on a real server (serve ``app`` with uvicorn).

``/tiny/...`` runs on a pool of ``TINY_WORKERS`` workers whose queue deadline is
``TINY_DEADLINE`` seconds; everything else runs at the defaults (the shared pool).

Routes: ``/hello`` ("hello"), ``/upload`` (reads the whole body, answers its length),
``/stats`` (the tiny pool's running and waiting counts and how many requests each route
has served, as JSON).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from bridge import ThreadPool, WSGIToASGI
from bridge._types import Environ, StartResponse

TINY_WORKERS = 4
TINY_DEADLINE = 1.5
TINY_RETRY_AFTER = 3

_served: Counter[str] = Counter()
_lock = threading.Lock()


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    with _lock:
        _served[environ["SCRIPT_NAME"] + path] += 1
    if path == "/upload":
        body = environ["wsgi.input"].read()
        text = str(len(body)).encode()
    elif path == "/stats":
        stats = {"running": TINY_POOL._running, "waiting": TINY_POOL._waiting, "served": _served}
        text = json.dumps(stats).encode()
    else:
        text = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


TINY_POOL = ThreadPool(
    TINY_WORKERS, queue_timeout=TINY_DEADLINE, retry_after=TINY_RETRY_AFTER, name="tiny"
)
_tiny = WSGIToASGI(wsgi_app, pool=TINY_POOL)
_default = WSGIToASGI(wsgi_app)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"].startswith("/tiny/"):
        # ASGI paths include root_path: SCRIPT_NAME becomes /tiny, PATH_INFO the rest.
        await _tiny({**scope, "root_path": "/tiny"}, receive, send)
    else:
        await _default(scope, receive, send)
