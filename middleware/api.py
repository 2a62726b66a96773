"""The public API for writing a middleware once and running it on WSGI and ASGI.

A middleware is a :class:`Core` (configuration, one per middleware instance) whose
:meth:`Core.on_request` sees each request's :class:`RequestHead` and answers one of:

* ``None``: leave the request alone (a do-nothing middleware costs well under 1 µs);
* a :class:`Response`: answer it here, the app is never called (bytes, a stream, a file);
* :class:`AddHeaders`: response headers to add, and nothing else (no handler at all);
* a :class:`Handler`: per-request state that sees the response head, body chunks, the
  request body as the app reads it, and how the request ended (:class:`Outcome`).

``on_request`` may also change the request the app sees (client, scheme, server, root
path, headers) and hand it values (``head.state``). Subclass :class:`CoreMiddleware`
to get the class users wrap apps with::

    class RequestID(CoreMiddleware):
        def __init__(self, app: Any, *, interface: str | None = None) -> None:
            super().__init__(app, RequestIDCore(), interface=interface)

Hooks are synchronous and do no I/O: one core runs on WSGI worker threads and on an
ASGI event loop, where a blocking hook would stall every request. A handler that breaks
the order of calls gets a :class:`ProtocolError`. ``docs/writing-middleware.md`` walks
through a complete example; :mod:`middleware.testing` runs one through both interfaces.
"""

from __future__ import annotations

from middleware._base import CoreMiddleware
from middleware._core import (
    AddHeaders,
    Core,
    Handler,
    Head,
    HeaderList,
    Outcome,
    ProtocolError,
    Response,
)
from middleware._request import STATE_KEY as ENVIRON_STATE_KEY
from middleware._request import RequestHead, request_state

__all__ = [
    "ENVIRON_STATE_KEY",
    "AddHeaders",
    "Core",
    "CoreMiddleware",
    "Handler",
    "Head",
    "HeaderList",
    "Outcome",
    "ProtocolError",
    "RequestHead",
    "Response",
    "request_state",
]
