"""Serve a WSGI app with the stdlib threaded wsgiref server.

Usage: ``python -m tests.wsgiref_server module:app PORT``.
"""

from __future__ import annotations

import importlib
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    module_name, attr = sys.argv[1].split(":")
    app = getattr(importlib.import_module(module_name), attr)
    server = make_server("127.0.0.1", int(sys.argv[2]), app, _ThreadingWSGIServer, _QuietHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
