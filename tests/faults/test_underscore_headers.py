"""Which WSGI servers let ``X_Forwarded_For`` through as ``X-Forwarded-For`` (issue #10).

CGI maps ``-`` and ``_`` both to ``_``, so a server that keeps header names with an
underscore hands ``X_Forwarded_For: 6.6.6.6`` to the app as ``HTTP_X_FORWARDED_FOR``,
where it passes for (or is joined to) the proxy's own header. ``WSGIToASGI`` drops such
names itself; under ``ASGIToWSGI`` the environ is the WSGI server's, and the ASGI app
sees whatever the server decided. SECURITY.md documents the result per server, with
the proxy setting that protects the ones that pass them; this file is its evidence.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from tests.servers import free_port, require_executable, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

TARGET = "tests.apps.forwarded_apps:application"


def _argv(server: str, port: int) -> list[str]:
    if server != "uwsgi":
        return wsgi_server_argv(server, TARGET, port)
    uwsgi = str(Path(sys.executable).with_name("uwsgi"))
    if not Path(uwsgi).exists():
        uwsgi = require_executable("uwsgi")
    return [
        uwsgi,
        "--http11-socket",
        f"127.0.0.1:{port}",
        "--home",
        sys.prefix,
        "--threads",
        "2",
        "--module",
        TARGET,
        "--need-app",
        "--die-on-term",
        "--disable-logging",
    ]


def _seen(port: int, *header_lines: bytes) -> list[list[str]]:
    """The forwarding headers the ASGI app saw for one raw request."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status, _, body = data.partition(b"\r\n\r\n")
    assert status.split(b" ", 2)[1] == b"200", status
    result: list[list[str]] = json.loads(body)
    return result


# server -> what the app sees for "X_Forwarded_For: 6.6.6.6" alone; for the servers that
# pass it, also what they make of it next to the real header. (waitress also clears
# untrusted X-Forwarded-* headers, but the underscore name is dropped before that.)
SERVERS = [
    pytest.param("gunicorn-gthread", [], id="gunicorn-gthread-drops"),
    pytest.param("gunicorn-sync", [], id="gunicorn-sync-drops"),
    pytest.param("waitress", [], id="waitress-drops"),
    pytest.param("wsgiref", [["x-forwarded-for", "6.6.6.6"]], id="wsgiref-passes"),
    pytest.param("uwsgi", [["x-forwarded-for", "6.6.6.6"]], id="uwsgi-passes"),
]


@pytest.mark.parametrize(("server", "expected"), SERVERS)
def test_what_each_wsgi_server_does_with_an_underscore_header(
    server: str, expected: list[list[str]]
) -> None:
    port = free_port()
    with serve(_argv(server, port), port):
        assert _seen(port, b"X_Forwarded_For: 6.6.6.6") == expected
        if expected:
            # A server that passes it joins it to the proxy's real header: an app that
            # takes the first address trusts the client's.
            joined = _seen(port, b"X_Forwarded_For: 6.6.6.6", b"X-Forwarded-For: 10.0.0.1")
            assert joined in (
                [["x-forwarded-for", "6.6.6.6,10.0.0.1"]],
                [["x-forwarded-for", "6.6.6.6, 10.0.0.1"]],
            )
