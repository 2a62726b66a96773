"""A WebSocket endpoint in a Django view, served by any ASGI server through ``WSGIToASGI``.

Django's WSGI handler runs the handshake as a ``GET`` request: URL routing, middleware
and ``request.user`` work as usual, and ``request.META["bridge.websocket"]`` is the
connection. The whole project fits in this file so the example stays short.

Run it from a checkout::

    uvicorn examples.django_websocket:application    # or hypercorn, daphne, granian

and talk to ws://127.0.0.1:8000/ws/echo/.
"""

from __future__ import annotations

import logging
import threading

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="example only: set a real secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs settings first)
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from bridge import WebSocket, WebSocketClosed, WSGIToASGI  # noqa: E402

logger = logging.getLogger("examples.django_websocket")

_closed_by_client: list[int] = []
_stats_lock = threading.Lock()


def echo(request: HttpRequest) -> HttpResponse:
    """Send every message back; a plain HTTP request gets a 400."""
    ws: WebSocket | None = request.META.get("bridge.websocket")
    if ws is None:
        return HttpResponseBadRequest("This is a WebSocket endpoint.")
    ws.accept()
    try:
        for message in ws:
            ws.send(message)
        code = ws.close_code or 1005
    except WebSocketClosed as closed:  # the client left while we were sending
        code = closed.code
    logger.info("client left with close code %d", code)
    with _stats_lock:
        _closed_by_client.append(code)
    return HttpResponse(status=204)  # ignored once the connection was accepted


def stats(request: HttpRequest) -> JsonResponse:
    with _stats_lock:
        return JsonResponse({"closed_by_client": list(_closed_by_client)})


urlpatterns = [path("ws/echo/", echo), path("stats", stats)]

application = WSGIToASGI(get_wsgi_application())
