"""RequestID: read or make an ``X-Request-ID``, hand it to the app, echo it back.

Written once with public names only; the same class wraps a WSGI app (Flask) and an
ASGI app (FastAPI). The app finds the id in ``request.state.request_id`` (Starlette,
FastAPI), ``request.environ["middleware.state"]["request_id"]`` (Flask, Django) or
``middleware.api.request_state.get()["request_id"]``; ``AccessLog`` records it in its
record's ``http["state"]``.
"""

from __future__ import annotations

import re
import uuid

from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, RequestHead

__all__ = ["RequestID"]

# An incoming id is kept only when it is short and plain, so a client cannot inject
# into logs or response headers through it.
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class _Echo(Handler):
    """Adds the id to the response head; touches nothing else."""

    __slots__ = ("_header",)
    head_only = True  # the body passes straight through

    def __init__(self, header: tuple[bytes, bytes]) -> None:
        self._header = header

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        name = self._header[0]
        return status, [*(pair for pair in headers if pair[0] != name), self._header]


class _RequestIDCore(Core):
    __slots__ = ("_name",)

    def __init__(self, header: str) -> None:
        self._name = header.lower().encode("ascii")

    def on_request(self, head: RequestHead) -> Handler:
        given = head.header(self._name)
        request_id = given if given is not None and _VALID.fullmatch(given) else None
        if request_id is None:
            request_id = uuid.uuid4().hex.encode("ascii")
            head.set_header(self._name, request_id)  # the app sees the id it will echo
        head.state["request_id"] = request_id.decode("ascii")
        return _Echo((self._name, request_id))


class RequestID(CoreMiddleware):
    """``RequestID(app, header="X-Request-ID")`` for a WSGI or an ASGI app."""

    def __init__(
        self, app: object, *, header: str = "X-Request-ID", interface: str | None = None
    ) -> None:
        super().__init__(app, _RequestIDCore(header), interface=interface)
