"""The project's WSGI app (the native baseline), static files as in ``asgi.py``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djproject.orm.settings")

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application

application = StaticFilesHandler(get_wsgi_application())
