"""Gunicorn settings: ``gunicorn -c examples/django_under_gunicorn/gunicorn.conf.py``.

The hooks tie the ASGI lifespan to the worker's life: ``start()`` runs lifespan startup
as soon as the worker has loaded the app (and raises, so the worker fails to boot, if
startup fails) instead of on the first request; ``close()`` runs lifespan shutdown and
stops the adapter's event loop when the worker exits (SIGTERM, max_requests, reload).
"""

import logging
import os
from typing import Any

# The master configures logging before it forks, so every worker logs the same way.
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "wsgi_from_asgi:application"
bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = 8


def post_worker_init(worker: Any) -> None:
    worker.wsgi.start()


def worker_exit(server: Any, worker: Any) -> None:
    worker.wsgi.close()
