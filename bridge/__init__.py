"""Adapters between WSGI (PEP 3333) and ASGI 3: each interface's apps on the other's servers."""

from __future__ import annotations

from bridge._asgi_to_wsgi import ASGIToWSGI, LifespanStartupFailed, RequestTimeout
from bridge._disconnect import DisconnectSignal
from bridge._http import ClientDisconnected, InvalidResponse
from bridge._input import BodyTooLarge
from bridge._interface import asgi_app, interface_of, to_asgi, to_wsgi, wsgi_app
from bridge._pool import ThreadPool
from bridge._thread_sensitive import thread_sensitive
from bridge._websocket import WebSocket, WebSocketClosed, WebSocketState
from bridge._wsgi_to_asgi import WSGIToASGI

__all__ = [
    "ASGIToWSGI",
    "BodyTooLarge",
    "ClientDisconnected",
    "DisconnectSignal",
    "InvalidResponse",
    "LifespanStartupFailed",
    "RequestTimeout",
    "ThreadPool",
    "WSGIToASGI",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketState",
    "asgi_app",
    "interface_of",
    "thread_sensitive",
    "to_asgi",
    "to_wsgi",
    "wsgi_app",
]
