"""WebSocket routes in a Flask app, served by any ASGI server through ``WSGIToASGI``.

The handshake reaches Flask as a ``GET`` request, so routing, the session, ``url_for``
and ``before_request`` hooks work as for any page. ``websocket_route`` below is the
whole integration (in the style of flask-sock): copy it into your project.

Run it from a checkout::

    uvicorn examples.flask_websocket:asgi        # or hypercorn, daphne, granian

then log in at http://127.0.0.1:8000/login?user=ada and talk to
ws://127.0.0.1:8000/ws/echo or ws://127.0.0.1:8000/ws/chat/lobby.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, jsonify, request, session, url_for
from flask.typing import ResponseReturnValue

from bridge import WebSocket, WebSocketClosed, WSGIToASGI

logger = logging.getLogger("examples.flask_websocket")

Handler = Callable[..., None]


def websocket_route(
    app: Flask, rule: str, *, subprotocols: tuple[str, ...] = (), **options: Any
) -> Callable[[Handler], Handler]:
    """Register ``handler(ws, **view_args)`` as the WebSocket endpoint at ``rule``.

    The connection is accepted (with the first of ``subprotocols`` the client offers)
    before the handler runs and closed after it returns; a client that leaves ends the
    handler with ``WebSocketClosed``, which is expected and not an error. A plain
    HTTP request to the rule gets a 400.
    """

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def view(**view_args: Any) -> ResponseReturnValue:
            ws: WebSocket | None = request.environ.get("bridge.websocket")
            if ws is None:
                abort(400, "This is a WebSocket endpoint.")
            chosen = next((p for p in ws.subprotocols if p in subprotocols), None)
            ws.accept(chosen)
            try:
                handler(ws, **view_args)
            except WebSocketClosed as closed:
                on_client_gone(closed.code)
            ws.close()
            return ""  # ignored once the connection was accepted

        # websocket=True: werkzeug matches Upgrade requests only to such rules (and
        # answers a plain HTTP request to them with 400).
        app.add_url_rule(rule, view_func=view, websocket=True, **options)
        return handler

    return decorator


app = Flask(__name__)
app.secret_key = "example only: set a real secret"

# How the connections that the client ended closed, for /stats (and the tests).
_closed_by_client: list[int] = []
_stats_lock = threading.Lock()


def on_client_gone(code: int) -> None:
    logger.info("client left with close code %d", code)
    with _stats_lock:
        _closed_by_client.append(code)


@app.get("/login")
def login() -> ResponseReturnValue:
    session["user"] = request.args.get("user", "guest")
    return f"logged in as {session['user']}; now open {url_for('chat', room='lobby')}"


@app.get("/stats")
def stats() -> ResponseReturnValue:
    with _stats_lock:
        return jsonify(closed_by_client=list(_closed_by_client))


@websocket_route(app, "/ws/echo", subprotocols=("echo.v1",))
def echo(ws: WebSocket) -> None:
    """Send every message back, text as text and binary as binary."""
    for message in ws:
        ws.send(message)
    on_client_gone(ws.close_code or 1005)


@websocket_route(app, "/ws/chat/<room>", endpoint="chat")
def chat(ws: WebSocket, room: str) -> None:
    """Greet the session's user (set by /login), then answer each line in upper case."""
    user = session.get("user", "stranger")
    ws.send(f"hello {user}, this is {url_for('chat', room=room)}")
    while True:
        try:
            line = ws.receive(timeout=30)
        except TimeoutError:
            ws.close(1000, "idle for 30 s")
            return
        if line == "bye":
            ws.close(1000, "see you")
            return
        ws.send(str(line).upper())


asgi = WSGIToASGI(app)
