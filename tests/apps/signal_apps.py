"""A bare PEP 3333 app through ``WSGIToASGI`` for the early-hints and disconnect e2e tests.

- ``/hints``: sends two early hints if the server offers ``wsgi.early_hints``, then
  works ``HINT_PAUSE`` seconds before its page (so a hint that is early shows it).
- ``/slow/<token>?budget=<s>``: a long view that polls ``bridge.disconnected`` for up
  to ``budget`` seconds and registers a callback; it writes down, in the directory
  ``$BRIDGE_SIGNAL_DIR``, when it started (``<token>.started``), how it ended
  (``<token>.json``) and each time the callback ran (a line in ``<token>.callback``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs

from bridge import WSGIToASGI
from bridge._types import Environ, StartResponse

STYLE = "</style.css>; rel=preload; as=style"
SCRIPT = "</app.js>; rel=preload; as=script"
HINT_PAUSE = 0.5
SLOW_BUDGET = 10.0
_TOKEN = re.compile(r"[0-9a-f]{32}")


def _report_dir() -> Path:
    return Path(os.environ.get("BRIDGE_SIGNAL_DIR", tempfile.gettempdir()))


def _text(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _hints(environ: Environ, start_response: StartResponse) -> list[bytes]:
    hint = environ.get("wsgi.early_hints")
    if hint is not None:
        hint([("Link", STYLE)])
        hint([("Link", SCRIPT), ("X-Not-A-Link", "dropped")])
    time.sleep(HINT_PAUSE)
    return _text(start_response, b"hinted" if hint is not None else b"no hints offered")


def _slow(environ: Environ, start_response: StartResponse, token: str) -> Iterable[bytes]:
    reports = _report_dir()
    budget = float(parse_qs(environ["QUERY_STRING"]).get("budget", [str(SLOW_BUDGET)])[0])
    signal = environ["bridge.disconnected"]

    def callback() -> None:
        with (reports / f"{token}.callback").open("a") as file:
            file.write("fired\n")

    signal.add_callback(callback)
    began = time.monotonic()
    (reports / f"{token}.started").touch()
    while not signal.is_set() and time.monotonic() - began < budget:
        time.sleep(0.02)
    outcome = {"stopped_early": signal.is_set(), "elapsed": time.monotonic() - began}
    # Written whole, then renamed: a reader never sees half a file.
    partial = reports / f"{token}.json.partial"
    partial.write_text(json.dumps(outcome))
    partial.rename(reports / f"{token}.json")
    return _text(start_response, b"finished")


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/hints":
        return _hints(environ, start_response)
    token = path.removeprefix("/slow/")
    if path.startswith("/slow/") and _TOKEN.fullmatch(token):
        return _slow(environ, start_response, token)
    return _text(start_response, b"not found", "404 Not Found")


app = WSGIToASGI(wsgi_app)
