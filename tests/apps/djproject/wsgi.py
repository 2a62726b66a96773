"""Django's WSGI handler for the matrix project, as ``startproject`` writes it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djproject.settings")

application = get_wsgi_application()
