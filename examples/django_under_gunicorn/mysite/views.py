"""Async views: they run on the adapter's event loop, inside a Gunicorn worker."""

import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse


async def index(request: HttpRequest) -> HttpResponse:
    link = reverse("hello", args=["gunicorn"])
    return HttpResponse(f'Django ASGI under Gunicorn. Try <a href="{link}">{link}</a>.\n')


async def hello(request: HttpRequest, name: str) -> JsonResponse:
    # What the lifespan startup put in the ASGI scope's state reaches every request.
    state = request.scope.get("state", {})
    return JsonResponse(
        {"hello": name, "worker_pid": os.getpid(), "started_at": state.get("started_at")}
    )
