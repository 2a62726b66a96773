"""A minimal Django project for the compatibility matrix, served both ways.

``wsgi.py`` and ``asgi.py`` expose Django's own handlers exactly as ``startproject``
writes them; ``tests.apps.matrix_apps`` serves either through the bridge.
"""
