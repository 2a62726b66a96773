"""The project's ASGI app on a WSGI server through ``ASGIToWSGI``, in each loop mode."""

from typing import Any

from bridge import ASGIToWSGI, thread_sensitive
from tests.apps.djproject.orm.asgi import application

thread = ASGIToWSGI(application)
shared = ASGIToWSGI(application, loop_mode="shared")


async def _opaque(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await application(scope, receive, send)


# Django hidden in a plain function, unmarked: asgiref's default (a thread per request).
unmarked = ASGIToWSGI(_opaque)
# The same function marked: per WSGI thread again.
marked = ASGIToWSGI(thread_sensitive(_opaque))
