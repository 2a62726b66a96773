"""A Flask app and a FastAPI app behind StaticFiles and BodyLimit, for real servers.

Served by tests/e2e/test_static_and_limit_servers.py: the directory comes from
``$STATIC_ROOT`` (served with ``html=True``); ``POST /upload`` answers the number of
body bytes the app read. (FastAPI reads the annotations of these functions at run
time: keep its names imported at module level.)
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from flask import Flask, request

from middleware import BodyLimit, StaticFiles

LIMIT = 1000


def _root() -> str:
    return os.environ["STATIC_ROOT"]


def flask_app() -> Any:
    """The Flask app, for gunicorn (``'tests.apps.static_limit_apps:flask_app()'``)."""
    app = Flask(__name__)

    @app.post("/upload")
    def upload() -> str:
        return str(len(request.get_data()))

    @app.get("/")
    def index() -> str:
        return "flask"

    app.wsgi_app = StaticFiles(  # type: ignore[method-assign]
        BodyLimit(app.wsgi_app, max_body_size=LIMIT), directory=_root(), html=True
    )
    return app


def fastapi_app() -> Any:
    """The FastAPI app, for ``uvicorn --factory``."""
    app = FastAPI()

    @app.post("/upload", response_class=PlainTextResponse)
    async def upload(request: Request) -> str:
        return str(len(await request.body()))

    @app.get("/", response_class=PlainTextResponse)
    async def index() -> str:
        return "fastapi"

    app.add_middleware(BodyLimit, max_body_size=LIMIT)
    app.add_middleware(StaticFiles, directory=_root(), html=True)  # outermost
    return app
