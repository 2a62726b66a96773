"""Checked by mypy in ``test_typing.py``, never run: ``ASGIToWSGI`` takes ASGI apps only.

A line ending in ``# E: <code>`` must get exactly that mypy error; every other line none.
"""

from __future__ import annotations

from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse

from bridge import ASGIToWSGI
from bridge._types import Receive, Scope, Send


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204})


class ASGI2App:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204})


def wsgi_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b""]


flask_app = Flask(__name__)

ASGIToWSGI(raw_app)
ASGIToWSGI(Starlette())
ASGIToWSGI(PlainTextResponse("hello"))
ASGIToWSGI(ASGI2App)
ASGIToWSGI(raw_app, chunk_size=65536, request_timeout=30.0, lifespan="off")

ASGIToWSGI(flask_app)  # E: arg-type
ASGIToWSGI(wsgi_app)  # E: arg-type
ASGIToWSGI(ASGIToWSGI(raw_app))  # E: arg-type
ASGIToWSGI(raw_app, chunk_size="64KB")  # E: arg-type
ASGIToWSGI(raw_app, loop_mode="process")  # E: arg-type
