"""The WSGI entry point Gunicorn loads: the project's ASGI app through the bridge.

``to_wsgi`` wraps an ASGI app in ``ASGIToWSGI``. ``loop_mode="shared"``: the worker's
threads (gthread) share one event loop, so the lifespan runs once per worker and
whatever it opens is bound to that one loop.
"""

from mysite.asgi import application as asgi_application

from bridge import to_wsgi

application = to_wsgi(asgi_application, loop_mode="shared")
