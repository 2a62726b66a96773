"""The WSGI entry point Gunicorn loads: the project's ASGI app through the bridge.

``loop_mode="shared"``: the worker's threads (gthread) share one event loop, so the
lifespan runs once per worker and whatever it opens is bound to that one loop.
"""

from mysite.asgi import application as asgi_application

from bridge import ASGIToWSGI

application = ASGIToWSGI(asgi_application, loop_mode="shared")
