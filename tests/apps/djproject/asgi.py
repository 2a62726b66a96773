"""Django's ASGI handler for the matrix project, as ``startproject`` writes it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djproject.settings")

application = get_asgi_application()
