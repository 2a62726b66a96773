"""The project's one app: its models, and the counter behind ``/stats``."""

from __future__ import annotations

import threading
from typing import Any

from django.apps import AppConfig

_lock = threading.Lock()
opened = 0  # database connections Django opened in this process


def _count(sender: Any, connection: Any, **kwargs: Any) -> None:
    global opened
    with _lock:
        opened += 1


class OrmConfig(AppConfig):
    name = "tests.apps.djproject.orm"
    label = "orm"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(_count, dispatch_uid="djproject-orm-count")
