"""The middleware on Flask: ``gunicorn -k gthread examples.request_id.flask_app:app``."""

from __future__ import annotations

from flask import Flask, jsonify, request, url_for

from examples.request_id import _logging
from examples.request_id.proxy_headers import ProxyHeaders
from examples.request_id.request_id import RequestID
from middleware import AccessLog, Middleware, Stack

_logging.configure()
app = Flask(__name__)


@app.get("/")
def index() -> object:
    return jsonify(
        request_id=request.environ["middleware.state"]["request_id"],
        client=request.remote_addr,
        url=url_for("index", _external=True),
    )


# AccessLog outermost so it logs what ProxyHeaders and RequestID made of the request.
app.wsgi_app = Stack(  # type: ignore[method-assign]
    [Middleware(AccessLog), Middleware(ProxyHeaders), Middleware(RequestID)]
)(app.wsgi_app)
