"""A realistic Django project: models on sqlite, the admin, sessions, CSRF, static files.

It is what issue 14 served through ``ASGIToWSGI``: an ORM JSON view (``/items``) with
``CONN_MAX_AGE`` set, plus ``/stats``, which reports what the serving process has done
to the database: connections Django opened (its ``connection_created`` signal), sqlite
handles open right now (file descriptors on the database file) and OS threads.

``python -m tests.apps.djproject.orm.prepare PATH`` creates the database at ``PATH``
(the ``DJPROJECT_DB`` environment variable names it for the servers). Entry points:
``asgi:application``, ``wsgi:application``, ``bridged:thread`` and ``bridged:shared``.
"""
