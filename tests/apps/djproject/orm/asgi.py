"""The project's ASGI app, static files served by Django's own handler (no extra package)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djproject.orm.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

application = ASGIStaticFilesHandler(get_asgi_application())
