"""Flask inside FastAPI: an existing Flask site keeps running while new code is written in FastAPI.

The Flask app below stands for the "legacy" site. ``WSGIToASGI`` mounts it, unchanged,
at ``/legacy`` in a FastAPI app, so one ASGI server (uvicorn here) serves both: Flask
runs on the adapter's bounded thread pool, FastAPI on the event loop, and ``url_for``
in Flask produces ``/legacy/...`` links because the mount becomes its ``SCRIPT_NAME``.
The middleware around the whole app (access log, CORS, gzip) is the project's own,
the same classes that also wrap plain WSGI apps.

Run it from a checkout (Python 3.10+)::

    pip install -e ".[demo]"
    python examples/flask_in_fastapi.py            # http://127.0.0.1:8000/
    PORT=8080 python examples/flask_in_fastapi.py  # another port

Then open http://127.0.0.1:8000/ (FastAPI), http://127.0.0.1:8000/legacy/ (Flask) and
http://127.0.0.1:8000/api/greeting?name=you (FastAPI, JSON). Stop it with Ctrl+C.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from flask import Flask, redirect, render_template, request, url_for
from jinja2 import DictLoader
from werkzeug.wrappers import Response

from bridge import WSGIToASGI
from middleware import CORS, AccessLog, GZip, Middleware, Stack

logger = logging.getLogger("examples.flask_in_fastapi")

# --- the legacy Flask site ----------------------------------------------------------------

TEMPLATES = {
    "layout.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{% block title %}{% endblock %} · legacy site</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  nav a { margin-right: 1rem; }
  li { margin: .25rem 0; }
</style>
</head>
<body>
<nav><a href="{{ url_for('index') }}">Home</a><a href="{{ url_for('guestbook') }}">Guestbook</a>\
<a href="/">Back to FastAPI</a></nav>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>
""",
    "index.html": """{% extends "layout.html" %}{% block title %}Home{% endblock %}
{% block main %}<h1>The legacy site</h1>
<p>This page is rendered by Flask, mounted at <code>{{ request.script_root }}</code>.</p>
<p>Sign the <a href="{{ url_for('guestbook') }}">guestbook</a>.</p>{% endblock %}""",
    "guestbook.html": """{% extends "layout.html" %}{% block title %}Guestbook{% endblock %}
{% block main %}<h1>Guestbook</h1>
<form method="post" action="{{ url_for('guestbook') }}">
<input name="name" placeholder="Your name" required>
<input name="message" placeholder="Say hello" required>
<button>Sign</button>
</form>
<ul>
{% for name, message in entries %}<li><b>{{ name }}</b>: {{ message }}</li>
{% else %}<li>Nobody has signed yet.</li>
{% endfor %}</ul>{% endblock %}""",
}

flask_app = Flask(__name__)
flask_app.jinja_loader = DictLoader(TEMPLATES)

# Flask views run on several worker threads at once: guard the shared guestbook.
_entries: deque[tuple[str, str]] = deque(maxlen=50)
_entries_lock = threading.Lock()


@flask_app.get("/")
def index() -> str:
    return render_template("index.html")


@flask_app.route("/guestbook", methods=["GET", "POST"])
def guestbook() -> str | Response:
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:80] or "anonymous"
        message = request.form.get("message", "").strip()[:500]
        if message:
            with _entries_lock:
                _entries.append((name, message))
            logger.info("guestbook signed by %r", name)
        # Post/Redirect/Get, so reloading the page does not sign twice.
        return redirect(url_for("guestbook"), code=303)
    with _entries_lock:
        entries = list(_entries)
    return render_template("guestbook.html", entries=entries)


# --- the new FastAPI app ------------------------------------------------------------------

api = FastAPI(title="Flask in FastAPI")


@api.get("/", response_class=HTMLResponse)
def home() -> str:
    return """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flask in FastAPI</title></head>
<body>
<h1>FastAPI</h1>
<p>The old site lives on at <a href="/legacy/">/legacy/</a>;
new endpoints such as <a href="/api/greeting?name=you">/api/greeting</a> are FastAPI.</p>
</body>
</html>
"""


@api.get("/api/greeting")
def greeting(name: str = "world") -> dict[str, str]:
    return {"message": f"Hello, {name}!"}


api.mount("/legacy", WSGIToASGI(flask_app))

# First = outermost: the access log times everything, CORS answers preflights before
# any work, gzip sits next to the app. The same Stack would wrap ``flask_app`` alone.
app = Stack(
    [
        Middleware(AccessLog),
        Middleware(CORS, allow_origins=["http://localhost:3000"], allow_methods=["GET", "POST"]),
        Middleware(GZip, minimum_size=500),
    ]
)(api)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = int(os.environ.get("PORT", "8000"))
    # AccessLog writes the access log, so uvicorn's own one is switched off.
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False)


if __name__ == "__main__":
    main()
