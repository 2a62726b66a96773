"""Settings for the matrix project: no database, no apps, one middleware.

``CommonMiddleware`` (as in every ``startproject``) sets ``Content-Length``, which
servers such as waitress and uWSGI need to keep a connection alive. No CSRF middleware:
the matrix posts forms without a token, and the middleware under test is the bridge's
own ``Stack``, not Django's.
"""

SECRET_KEY = "matrix-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.apps.djproject.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the process TZ from this: keep server logs in UTC
