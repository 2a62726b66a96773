"""The middleware on Flask: ``gunicorn -k gthread examples.request_id.flask_app:app``."""

from __future__ import annotations

from flask import Flask, jsonify, request, url_for

from examples.request_id import _logging
from middleware import AccessLog, Middleware, ProxyHeaders, RequestID, Stack

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
    [Middleware(AccessLog), Middleware(ProxyHeaders, x_host=1, x_prefix=1), Middleware(RequestID)]
)(app.wsgi_app)
