"""WebSockets next to a Flask app mounted in FastAPI: the two patterns side by side.

1. A WebSocket route *in Flask*, through the mount: ``WSGIToASGI`` hands the
   WebSocket scope to Flask as a ``GET`` (see ``/legacy/ws/echo``); Flask's routing and
   session apply, and the view runs on a thread like any Flask view.
2. A WebSocket route *in FastAPI*, next to the mount (``/ws/notes``): async code on the
   event loop that reads the user from Flask's session cookie, with Flask's own
   signing serializer, so both halves of the site share one login.

Run it from a checkout::

    uvicorn examples.flask_in_fastapi_websockets:app

then log in at http://127.0.0.1:8000/legacy/login?user=ada and open
ws://127.0.0.1:8000/ws/notes or ws://127.0.0.1:8000/legacy/ws/echo.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocketDisconnect
from fastapi import WebSocket as FastAPIWebSocket
from flask import Flask, request, session
from itsdangerous import BadSignature

from bridge import WebSocket, WebSocketClosed, WSGIToASGI

flask_app = Flask(__name__)
flask_app.secret_key = "example only: set a real secret"


@flask_app.get("/login")
def login() -> str:
    session["user"] = request.args.get("user", "guest")
    return f"logged in as {session['user']}"


# Pattern 1: a Flask view that is a WebSocket endpoint (websocket=True tells werkzeug's
# router to match Upgrade requests to it).
@flask_app.route("/ws/echo", websocket=True)
def echo() -> str:
    ws: WebSocket = request.environ["bridge.websocket"]
    ws.accept()
    user = session.get("user", "stranger")
    try:
        for message in ws:
            ws.send(f"{user} said: {message}")
    except WebSocketClosed:
        pass  # the client left while we were sending
    return ""


def flask_session(cookies: dict[str, str]) -> dict[str, Any]:
    """Flask's session, read from its signed cookie by Flask's own serializer."""
    serializer = flask_app.session_interface.get_signing_serializer(flask_app)  # type: ignore[attr-defined]
    cookie = cookies.get(flask_app.config["SESSION_COOKIE_NAME"])
    if serializer is None or cookie is None:
        return {}
    max_age = int(flask_app.permanent_session_lifetime.total_seconds())
    try:
        data: dict[str, Any] = serializer.loads(cookie, max_age=max_age)
    except BadSignature:
        return {}
    return data


api = FastAPI()


# Pattern 2: a FastAPI WebSocket route beside the mount, sharing Flask's login.
@api.websocket("/ws/notes")
async def notes(websocket: FastAPIWebSocket) -> None:
    user = flask_session(websocket.cookies).get("user")
    if user is None:
        await websocket.close(code=1008, reason="log in at /legacy/login first")
        return
    await websocket.accept()
    await websocket.send_text(f"hello {user}")
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(f"noted for {user}: {text}")
    except WebSocketDisconnect:
        pass


api.mount("/legacy", WSGIToASGI(flask_app))
app = api
