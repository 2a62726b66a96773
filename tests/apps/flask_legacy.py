"""A real Flask app mounted in a real FastAPI app through ``WSGIToASGI``, for ``tests/e2e``.

``app`` (the ASGI app real servers run) is FastAPI with:

* ``/`` and ``/api/status``: FastAPI's own routes, next to the mounts;
* ``/legacy``: ``WSGIToASGI(flask_app)``, the Flask app ("legacy" code) with pages,
  ``url_for`` links, form/JSON echoes, a chunked-upload digest, streams, errors,
  repeated and latin-1 headers, and a ``send_file`` download;
* ``/raw``: ``WSGIToASGI(raw_app)``, a bare PEP 3333 app that misbehaves on purpose
  (raises before ``start_response``, CR/LF in a header, body shorter or longer than its
  Content-Length), so the adapter's own answers are seen on the wire;
* ``/limited``: the same bare app with ``max_body_size=RAW_MAX_BODY``;
* ``/tiny``: the same bare app on a one-thread pool with no queue, to see 503s.

Streams record their life in ``STREAMS`` (one entry per token, read back through
``/legacy/stats/<token>``), so a test can see a generator closed after the client left.
Everything runs in the server's single process; nothing here prints.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from flask import Flask, Response, jsonify, request, send_file, url_for

from bridge import ThreadPool, WSGIToASGI

# --- Flask ------------------------------------------------------------------------------

flask_app = Flask(__name__)
# Flask answers a failing view with its own 500 page instead of re-raising.
flask_app.config["PROPAGATE_EXCEPTIONS"] = False

#: The pause between the two chunks of ``/legacy/stream``.
STREAM_PAUSE = 1.0
#: The pause between the chunks of ``/legacy/forever/<token>``.
FOREVER_PAUSE = 0.02
FOREVER_LIMIT = 20.0
FLOOD_LIMIT = 5.0
#: How long ``/legacy/slow`` and ``/tiny/hold/<token>`` take.
SLOW = 0.5
#: The body limit of the ``/limited`` mount.
RAW_MAX_BODY = 1000
#: ``Retry-After`` of the ``/tiny`` mount's 503s.
TINY_RETRY_AFTER = 7
BLOCK = 64 * 1024

_lock = threading.Lock()
#: token -> ``"running"`` / ``"closed"`` (streams), or the bytes Python read (downloads).
STREAMS: dict[str, Any] = {}


def _record(token: str, value: Any) -> None:
    with _lock:
        STREAMS[token] = value


@flask_app.get("/")
def index() -> str:
    return "Flask index"


@flask_app.get("/hello")
def hello() -> str:
    return "Hello from Flask!"


@flask_app.get("/links")
def links() -> str:
    hello_url = url_for("hello", _external=False)
    echo_url = url_for("echo_form", _external=False)
    return f'<a href="{hello_url}">hello</a>\n<form action="{echo_url}" method="post"></form>'


@flask_app.get("/whoami")
def whoami() -> Response:
    environ = request.environ
    return jsonify(
        script_name=environ["SCRIPT_NAME"],
        path_info=environ["PATH_INFO"],
        remote_port=environ.get("REMOTE_PORT"),
        external_url=url_for("hello", _external=True),
        extensions=sorted(environ["asgi.scope"].get("extensions") or ()),
    )


@flask_app.get("/page/<name>")
def page(name: str) -> Response:
    return jsonify(name=name, url=url_for("page", name=name), args=request.args.to_dict())


@flask_app.get("/echo/headers")
def echo_headers() -> Response:
    return jsonify(name=request.headers.get("X-Name"), cookie=request.headers.get("Cookie"))


@flask_app.post("/echo/form")
def echo_form() -> Response:
    return jsonify(form=request.form.to_dict(), content_type=request.content_type)


@flask_app.post("/echo/json")
def echo_json() -> Response:
    return jsonify(request.get_json())


@flask_app.post("/upload")
def upload() -> Response:
    data = request.get_data()
    return jsonify(
        length=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        transfer_encoding=request.headers.get("Transfer-Encoding"),
    )


@flask_app.get("/stream")
def stream() -> Response:
    def generate() -> Iterator[str]:
        yield "first\n"
        time.sleep(STREAM_PAUSE)
        yield "second\n"

    return Response(generate(), mimetype="text/plain")


def big_body(size: int) -> Iterator[bytes]:
    """``size`` reproducible pseudo-random bytes in 64 KiB blocks."""
    generator = random.Random(size)
    for start in range(0, size, BLOCK):
        yield generator.randbytes(min(BLOCK, size - start))


@flask_app.get("/big/<int:size>")
def big(size: int) -> Response:
    return Response(big_body(size), mimetype="application/octet-stream")


@flask_app.get("/slow")
def slow() -> str:
    time.sleep(SLOW)
    return "slow"


def endless(
    token: str, block: bytes = b"tick\n", pause: float = FOREVER_PAUSE, limit: float = FOREVER_LIMIT
) -> Iterator[bytes]:
    """Yields ``block`` until closed; ``STREAMS[token]`` says whether it still runs.

    A stream nobody closes gives up after ``limit`` seconds (and records ``"expired"``),
    so one leaked by a bug does not run for the rest of the session.
    """
    _record(token, "running")
    state = "closed"
    try:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            yield block
            time.sleep(pause)
        state = "expired"
    finally:
        _record(token, state)


@flask_app.get("/forever/<token>")
def forever(token: str) -> Response:
    return Response(endless(token), mimetype="text/plain")


@flask_app.get("/fail-mid-stream")
def fail_mid_stream() -> Response:
    def generate() -> Iterator[bytes]:
        yield b"partial\n"
        time.sleep(0.1)
        raise RuntimeError("the stream broke")

    return Response(generate(), mimetype="text/plain")


@flask_app.get("/stats/<token>")
def stats(token: str) -> Response:
    with _lock:
        return jsonify(state=STREAMS.get(token))


@flask_app.get("/boom")
def boom() -> str:
    raise RuntimeError("a bug in a legacy view")


@flask_app.get("/headers")
def headers() -> Response:
    response = Response("headers")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2")
    response.headers["X-Menu"] = "café crème"
    return response


class _ReadCounter(io.FileIO):
    """A file that reports, when closed, how many bytes Python read from it."""

    token = ""

    def close(self) -> None:
        if not self.closed:
            _record(self.token, self.tell())
        super().close()


@flask_app.get("/download/<token>")
def download(token: str) -> Response:
    path = os.path.abspath(request.args["path"])
    file = _ReadCounter(path, "rb")
    file.token = token
    # send_file() wraps it in environ["wsgi.file_wrapper"]; from a file object it
    # cannot know the length, so declare it like send_file(path) would.
    response = send_file(file, mimetype="application/octet-stream")
    response.content_length = os.fstat(file.fileno()).st_size
    return response


@flask_app.get("/file")
def file() -> Response:
    # The usual call: Flask opens the file by absolute path and sets Content-Length.
    return send_file(request.args["path"], mimetype="application/octet-stream")


# --- a bare PEP 3333 app ----------------------------------------------------------------


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/crash":
        raise RuntimeError("crashed before start_response")
    if path == "/crlf":
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("X-Split", "ok\r\nX-Injected: yes")],
        )
        return [b"must not be sent"]
    if path == "/read":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(body)).encode()]
    if path.startswith("/forever/"):
        # Unlike werkzeug, which answers HEAD without iterating, this runs for any method.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return endless(path.removeprefix("/forever/"))
    if path.startswith("/flood/"):
        # Far faster than any client reads: the adapter's backpressure must hold it.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return endless(path.removeprefix("/flood/"), b"f" * BLOCK, 0.0, FLOOD_LIMIT)
    if path.startswith("/read-then-forever/"):
        # Reads exactly Content-Length bytes, as Django's LimitedStream does.
        environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return endless(path.removeprefix("/read-then-forever/"))
    if path.startswith("/hold/"):
        token = path.removeprefix("/hold/")
        _record(token, "holding")
        time.sleep(SLOW)
        _record(token, "released")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"held"]
    if path == "/short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"01234"]
    if path == "/overlong":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"012", b"3456789"]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


# --- FastAPI ----------------------------------------------------------------------------

app = FastAPI()


@app.get("/")
def home() -> dict[str, str]:
    return {"legacy": "/legacy/"}


@app.get("/api/status")
def status() -> dict[str, bool]:
    return {"ok": True}


app.mount("/legacy", WSGIToASGI(flask_app))
app.mount("/raw", WSGIToASGI(raw_app))
app.mount("/limited", WSGIToASGI(raw_app, max_body_size=RAW_MAX_BODY))
tiny_pool = ThreadPool(1, max_queue=0, retry_after=TINY_RETRY_AFTER, name="tiny")
app.mount("/tiny", WSGIToASGI(raw_app, pool=tiny_pool))
