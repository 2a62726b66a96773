"""The WSGI entry point Gunicorn loads: the project's ASGI app through the bridge.

``loop_mode="shared"``: the worker's threads (gthread) share one event loop, so the
lifespan runs once per worker and whatever it opens is bound to that one loop.
``thread_sensitive`` marks the app as Django's, which a plain function adding lifespan
hides: Django's sync work (the ORM) then runs on a bounded pool of threads that keep
their database connections, rather than on a new thread per request.
"""

from mysite.asgi import application as asgi_application

from bridge import ASGIToWSGI, thread_sensitive

application = ASGIToWSGI(thread_sensitive(asgi_application), loop_mode="shared")
