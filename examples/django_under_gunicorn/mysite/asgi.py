"""The project's ASGI application: Django, plus the ASGI lifespan protocol.

Django's own ASGI handler answers only ``http`` scopes. The few lines below add the
lifespan protocol around it, the place to open what lives as long as the worker (an
HTTP client, a connection pool) and to close it; ``gunicorn.conf.py`` makes the
adapter run startup when the worker boots and shutdown when it exits.
"""

import logging
import os
import time
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

django_application = get_asgi_application()


logger = logging.getLogger("mysite.lifespan")


def _say(message: str) -> None:
    logger.info("[worker %d] %s", os.getpid(), message)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at"] = time.time()  # open clients and pools here
            _say("lifespan startup complete")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _say("lifespan shutdown complete")  # and close them here
            await send({"type": "lifespan.shutdown.complete"})
            return
