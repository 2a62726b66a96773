"""One middleware stack, written once, applied to a Flask app and to a FastAPI app.

Run (after ``pip install -e '.[demo]'``)::

    .venv/bin/python examples/middleware_once.py

It serves the FastAPI app with uvicorn on http://127.0.0.1:8000 and the Flask app with
the standard library's threaded WSGI server on http://127.0.0.1:8001 (``PORT`` moves
both: FastAPI on ``PORT``, Flask on ``PORT + 1``); Ctrl+C stops both. Try::

    curl -si --compressed http://127.0.0.1:8000/report   # gzip, from FastAPI
    curl -si --compressed http://127.0.0.1:8001/report   # gzip, from Flask
    curl -si -H 'Origin: https://app.example.com' http://127.0.0.1:8001/report

``STACK`` is the whole policy (access log, CORS, gzip). Applied to a WSGI app it gives
a WSGI app and to an ASGI app an ASGI app: the same middleware code runs natively on
each interface, nothing is converted, and both servers log the same access lines.
"""

from __future__ import annotations

import logging
import os
import socketserver
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from flask import Flask, Response

from middleware import CORS, AccessLog, GZip, Middleware, Stack

STACK = Stack(
    [
        Middleware(AccessLog),  # outermost: times everything, logs what the client got
        Middleware(CORS, allow_origins=["https://app.example.com"], allow_methods=["GET"]),
        Middleware(GZip, minimum_size=500),  # innermost: next to the app
    ]
)

REPORT = "".join(f"line {n}: the same report from either framework\n" for n in range(100))

# --- the Flask app (WSGI) ---------------------------------------------------------------

flask_app = Flask(__name__)


@flask_app.get("/report")
def flask_report() -> Response:
    return Response(REPORT, mimetype="text/plain")


# --- the FastAPI app (ASGI) -------------------------------------------------------------

fastapi_app = FastAPI()


@fastapi_app.get("/report", response_class=PlainTextResponse)
async def fastapi_report() -> str:
    return REPORT


# --- the same stack on both ---------------------------------------------------------------

wsgi_application = STACK(flask_app)
asgi_application = STACK(fastapi_app)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # AccessLog already logs every request


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    port = int(os.environ.get("PORT", "8000"))
    wsgi_server = make_server(
        "127.0.0.1", port + 1, wsgi_application, _ThreadingWSGIServer, _QuietHandler
    )
    threading.Thread(target=wsgi_server.serve_forever, name="flask", daemon=True).start()
    logging.getLogger("example").info("Flask (WSGI) on http://127.0.0.1:%d", port + 1)
    try:
        uvicorn.run(asgi_application, host="127.0.0.1", port=port, access_log=False)
    finally:
        wsgi_server.shutdown()
        wsgi_server.server_close()


if __name__ == "__main__":
    main()
