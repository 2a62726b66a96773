"""``python -m tests.apps.djproject.orm.prepare PATH``: the project's sqlite database at PATH.

Tables (``migrate``), 50 items and an admin user ``admin`` / ``admin-password``.
"""

from __future__ import annotations

import os
import sys

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password"
ITEMS = 50


def prepare(path: str) -> None:
    os.environ["DJPROJECT_DB"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djproject.orm.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)

    from django.contrib.auth.models import User

    from tests.apps.djproject.orm.models import Item

    Item.objects.bulk_create(Item(name=f"item {n}", price=n * 100) for n in range(ITEMS))
    User.objects.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)


if __name__ == "__main__":
    prepare(sys.argv[1])
