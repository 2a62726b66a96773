"""Call a WSGI app in process as a server would: one status, the joined body, ``close()``."""

from __future__ import annotations

from typing import Any


def call_wsgi_app(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    """The status line and whole body of ``app`` answering ``environ``; the app's
    iterable is closed whatever happens (PEP 3333)."""
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return statuses[0], body
