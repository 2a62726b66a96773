"""Views of the matrix contract; the same code runs under Django's WSGI and ASGI handlers.

Only ``stream`` looks at which handler it runs under: Django serves a synchronous
iterator to an ASGI server by consuming it whole first (with a warning), and an
asynchronous one to a WSGI server the same way, so each gets the kind it streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse

from tests.apps.matrix_apps import PAUSE, stream_chunk


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain; charset=utf-8")


def links(request: HttpRequest) -> JsonResponse:
    # reverse() prefixes the script name: SCRIPT_NAME under WSGI, root_path under ASGI.
    return JsonResponse({"hello": reverse("hello")})


def form(request: HttpRequest) -> JsonResponse:
    return JsonResponse(request.POST.dict())


def json_echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse(json.loads(request.body), safe=False)


def upload(request: HttpRequest) -> JsonResponse:
    body = request.body
    return JsonResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})


def _sync_chunks() -> Iterator[bytes]:
    for index in range(3):
        if index:
            time.sleep(PAUSE)
        yield stream_chunk(index)


async def _async_chunks() -> AsyncIterator[bytes]:
    for index in range(3):
        if index:
            await asyncio.sleep(PAUSE)
        yield stream_chunk(index)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    chunks = _async_chunks() if isinstance(request, ASGIRequest) else _sync_chunks()
    return StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("deliberate failure in a Django view")
