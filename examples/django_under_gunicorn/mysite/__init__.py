"""A minimal Django project whose ASGI application runs under Gunicorn (see ../README.md)."""
