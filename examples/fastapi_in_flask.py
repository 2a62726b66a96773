"""A FastAPI app mounted inside a Flask app, served by a WSGI server.

Run (after ``pip install -e '.[test]'``, which brings waitress)::

    .venv/bin/python examples/fastapi_in_flask.py

then open http://127.0.0.1:8000/ (Flask) and http://127.0.0.1:8000/api/docs (FastAPI's
own docs, under the mount); ``PORT`` changes the port. Or with Gunicorn::

    .venv/bin/gunicorn -k gthread --threads 8 -b 127.0.0.1:8000 examples.fastapi_in_flask:app

werkzeug's ``DispatcherMiddleware`` sends ``/api/...`` to the FastAPI app, wrapped in
``ASGIToWSGI``; everything else stays with Flask. FastAPI sees
``/api`` as its ``root_path``, so ``url_for`` and the docs link back under the mount,
and its lifespan runs (once per server thread, before that thread's first request).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from flask import Flask, url_for
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bridge import ASGIToWSGI

# --- the new API (ASGI) -----------------------------------------------------------------


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # Open clients and pools here; what is yielded reaches every request's state.
    yield {"items": {1: "first item", 2: "second item"}}


api = FastAPI(title="Items API", lifespan=lifespan)


@api.get("/items/{item_id}")
async def read_item(item_id: int, request: Request) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": request.state.items.get(item_id),
        "self": str(request.url_for("read_item", item_id=item_id)),
    }


# --- the existing site (WSGI) -----------------------------------------------------------

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return (
        "<h1>The Flask site</h1>"
        f'<p>Its new API lives at <a href="{url_for("index")}api/items/1">/api</a>, '
        'with <a href="/api/docs">docs</a>.</p>'
    )


# The mount: /api/... goes to FastAPI through ASGIToWSGI, the rest to Flask.
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/api": ASGIToWSGI(api)})  # type: ignore[method-assign]


def main() -> None:
    from waitress import serve

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    port = int(os.environ.get("PORT", "8000"))
    logging.getLogger("example").info("Flask with FastAPI at /api on http://127.0.0.1:%d", port)
    serve(app, host="127.0.0.1", port=port, threads=8)


if __name__ == "__main__":
    main()
