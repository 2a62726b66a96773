"""The same middleware on FastAPI: ``uvicorn examples.request_id.fastapi_app:app``."""

from __future__ import annotations

from fastapi import FastAPI, Request

from examples.request_id import _logging
from middleware import AccessLog, ProxyHeaders, RequestID

_logging.configure()
app = FastAPI()


@app.get("/")
def index(request: Request) -> dict[str, object]:
    return {
        "request_id": request.state.request_id,
        "client": request.client.host if request.client else None,
        "url": str(request.url_for("index")),
    }


# add_middleware: the last added is outermost.
app.add_middleware(RequestID)
app.add_middleware(ProxyHeaders, x_host=1, x_prefix=1)
app.add_middleware(AccessLog)
