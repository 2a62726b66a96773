"""Sync views, as most Django projects write them: Django runs them thread-sensitively."""

from __future__ import annotations

import os
import threading

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from tests.apps.djproject.orm import apps
from tests.apps.djproject.orm.models import Item


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("djproject orm\n", content_type="text/plain; charset=utf-8")


def items(request: HttpRequest) -> JsonResponse:
    rows = list(Item.objects.order_by("id").values("id", "name", "price")[:20])
    return JsonResponse({"items": rows, "count": Item.objects.count()})


def _open_handles() -> int:
    database = os.path.realpath(settings.DATABASES["default"]["NAME"])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == database:
                count += 1
        except OSError:
            continue  # closed while listing (the listing's own descriptor)
    return count


def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "connections_opened": apps.opened,
            "sqlite_handles_open": _open_handles(),
            "threads": threading.active_count(),
            "pid": os.getpid(),
        }
    )
