"""The compatibility matrix: every server x app pairing the bridge promises, on the wire.

A *cell* is one app (``tests.apps.matrix_apps``, one HTTP contract in every framework)
served by one real server, in its own process on 127.0.0.1:

* WSGI apps (Flask, Django's WSGI handler, a bare PEP 3333 app) through ``WSGIToASGI``
  on ASGI servers (uvicorn, hypercorn on asyncio and on trio, daphne, granian);
* ASGI apps (Django's ASGI handler, FastAPI with a lifespan, Starlette) through
  ``ASGIToWSGI`` on WSGI servers (gunicorn sync and gthread, waitress, wsgiref, uWSGI,
  mod_wsgi);
* mounting both ways: Flask inside FastAPI, FastAPI inside Flask;
* the middleware ``Stack`` (AccessLog, CORS, GZip) on each framework, on its own
  interface, served through the bridge.

Every cell is served under the prefix ``/site`` the way its server offers (uvicorn,
hypercorn and daphne ``--root-path``, granian ``--url-path-prefix``, gunicorn's
``SCRIPT_NAME``, waitress ``--url-prefix``, uWSGI ``--mount``, mod_wsgi
``--mount-point``, a ``DispatcherMiddleware`` mount for wsgiref), and ``CHECKS`` (plus
``STACK_CHECKS`` for stacked cells) run against it: one test per cell and check, one
server start per cell. A check a server or app cannot pass by design is skipped with
the reason; a server that is not installed skips its cells. ``tests/e2e/conftest.py``
records the outcomes for ``scripts/matrix_table.py`` (``docs/compatibility.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import importlib.metadata
import json
import pwd
import random
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import httpx
import pytest

from tests.apps.matrix_apps import ALLOWED_ORIGIN, MOUNTS, PAUSE, stream_chunk
from tests.e2e.mod_wsgi_env import apache_user, mod_wsgi_express, mod_wsgi_version, serve_copy
from tests.servers import ROOT, asgi_server_argv, free_port, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

#: Where every cell is served: links the apps build must start with it.
SITE = "/site"
#: How long a server may take to listen; several suites share two cores.
START_TIMEOUT = 60.0
TARGET = "tests.apps.matrix_apps:application"


# --- servers ----------------------------------------------------------------------------


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


_WSGIREF_HTTP10 = "wsgiref.simple_server speaks HTTP/1.0 and closes every connection"
_GUNICORN_SYNC = (
    "gunicorn's sync worker closes the connection after every response "
    "(keep-alive needs the gthread worker)"
)


@dataclass(frozen=True)
class Server:
    """One server: how to start it under ``SITE``, and what it cannot do by design."""

    name: str
    interface: str
    #: The distribution that must be installed (and whose version the table shows).
    distribution: str
    #: True when the client sends ``SITE`` in the URL: WSGI servers cut it off into
    #: SCRIPT_NAME; hypercorn, daphne and granian pass the path on unchanged next to
    #: ``root_path``, which (ASGI, and Starlette's routing) the path must then include.
    #: False for uvicorn, which prepends ``--root-path`` itself, as behind a proxy
    #: that strips the prefix.
    prefix_in_url: bool
    #: check name -> why this server cannot pass it.
    lacks: Mapping[str, str] = field(default_factory=dict)
    #: ``ASGIToWSGI`` loop mode: a thread-per-request server wants the shared loop.
    loop_mode: str = "thread"

    def version(self) -> str:
        if self.distribution == "python":
            return sys.version.split()[0]
        if self.name == "mod_wsgi":
            return mod_wsgi_version()
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return ""

    def require(self) -> None:
        """Skip the calling test, with the reason, when this server cannot run here."""
        if self.name == "mod_wsgi":
            mod_wsgi_express()  # builds its own virtualenv, or skips saying what to install
        elif self.name == "hypercorn-trio" and not _installed("trio"):
            pytest.skip("trio is not installed (hypercorn -k trio needs it)")
        elif self.distribution != "python" and not self.version():
            pytest.skip(f"{self.name} is not installed ({self.distribution} from PyPI)")

    def launch(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        """The command line and extra environment that serve ``TARGET`` on ``port``."""
        name, py = self.name, sys.executable
        if name in ("uvicorn", "hypercorn", "hypercorn-trio", "daphne"):
            return [*asgi_server_argv(name, TARGET, port), "--root-path", SITE], {}
        if name == "granian":
            return [*asgi_server_argv(name, TARGET, port), "--url-path-prefix", SITE], {}
        if name.startswith("gunicorn"):
            # gunicorn takes the application's mount point from the SCRIPT_NAME variable.
            return wsgi_server_argv(name, TARGET, port), {"SCRIPT_NAME": SITE}
        if name == "waitress":
            return [
                py,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{port}",
                "--threads=8",
                f"--url-prefix={SITE}",
                TARGET,
            ], {}
        if name == "wsgiref":
            return wsgi_server_argv(name, TARGET, port), {"BRIDGE_MATRIX_MOUNT": SITE}
        if name == "uwsgi":
            return [
                str(Path(py).with_name("uwsgi")),
                # The HTTP/1.1 socket keeps connections alive (--http-socket closes
                # each one without saying so). A body of unknown length is still sent
                # unframed and the connection held until --socket-timeout (4 s): the
                # streamed-response cells take that long on uWSGI, plain WSGI apps too.
                "--http11-socket",
                f"127.0.0.1:{port}",
                "--home",
                sys.prefix,
                "--threads",
                "4",
                "--mount",
                f"{SITE}={TARGET}",
                "--manage-script-name",
                "--need-app",
                "--die-on-term",
                "--disable-logging",
            ], {}
        if name == "mod_wsgi":
            # Apache's workers may run as another user (see mod_wsgi_env): they serve a
            # copy of the code that user can read, from a virtualenv it can read.
            user = apache_user()
            source = serve_copy(ROOT, workdir)
            argv = [
                str(mod_wsgi_express()),
                "start-server",
                "--application-type",
                "module",
                TARGET.partition(":")[0],
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--mount-point",
                SITE,
                "--threads",
                "4",
                "--python-path",
                str(source),
                # The daemon starts in this directory (by default the current one, the
                # checkout, which Apache's worker user may not be allowed to enter).
                "--working-directory",
                str(source),
                "--server-root",
                str(workdir / "mod_wsgi"),
                "--locale",
                "C.UTF-8",
                # Off by default: Apache answers 411 to a chunked request body.
                "--chunked-request",
                "--log-to-terminal",
            ]
            if user is not None:
                argv += ["--user", user, "--group", grp.getgrgid(pwd.getpwnam(user).pw_gid)[0]]
            return argv, {}
        raise ValueError(name)


ASGI_SERVERS = [
    Server("uvicorn", "asgi", "uvicorn", prefix_in_url=False),
    Server("hypercorn", "asgi", "hypercorn", prefix_in_url=True),
    # The same server on trio instead of asyncio: WSGIToASGI finds out which runs it.
    Server("hypercorn-trio", "asgi", "hypercorn", prefix_in_url=True),
    Server("daphne", "asgi", "daphne", prefix_in_url=True),
    Server("granian", "asgi", "granian", prefix_in_url=True),
]
WSGI_SERVERS = [
    Server(
        "gunicorn-sync",
        "wsgi",
        "gunicorn",
        prefix_in_url=True,
        lacks={"keep_alive": _GUNICORN_SYNC, "pipelining": _GUNICORN_SYNC},
    ),
    Server("gunicorn-gthread", "wsgi", "gunicorn", prefix_in_url=True),
    Server("waitress", "wsgi", "waitress", prefix_in_url=True),
    Server(
        "wsgiref",
        "wsgi",
        "python",
        prefix_in_url=True,
        lacks={
            "chunked_upload": "wsgiref.simple_server does not decode chunked request bodies",
            "keep_alive": _WSGIREF_HTTP10,
            "pipelining": _WSGIREF_HTTP10,
        },
        loop_mode="shared",
    ),
    Server(
        "uwsgi",
        "wsgi",
        "uWSGI",
        prefix_in_url=True,
        lacks={
            "chunked_upload": (
                "uWSGI's HTTP socket leaves a chunked request body out of wsgi.input "
                "(apps must call uwsgi.chunked_read())"
            ),
            "pipelining": (
                "uWSGI's HTTP/1.1 socket answers the first of two pipelined requests and "
                "closes the connection (a plain WSGI app too)"
            ),
        },
    ),
    Server("mod_wsgi", "wsgi", "mod_wsgi", prefix_in_url=True),
]
_BY_NAME = {server.name: server for server in ASGI_SERVERS + WSGI_SERVERS}

# --- cells ------------------------------------------------------------------------------

#: check name -> why an app cannot pass it, whatever serves it.
APP_LACKS: dict[str, dict[str, str]] = {
    "django-wsgi": {
        "chunked_upload": (
            "Django's WSGI handler reads CONTENT_LENGTH bytes and ignores "
            "wsgi.input_terminated, so a chunked body arrives empty"
        ),
    },
}

GROUPS = {
    "wsgi-on-asgi": "WSGI apps on ASGI servers (WSGIToASGI)",
    "asgi-on-wsgi": "ASGI apps on WSGI servers (ASGIToWSGI)",
    "mounts": "Mounting both ways",
    "stack": "Middleware Stack (AccessLog, CORS, GZip) through the bridge",
}


@dataclass(frozen=True)
class Cell:
    group: str
    server: Server
    app: str
    stack: bool = False

    @property
    def id(self) -> str:
        return f"{self.server.name}-{self.app}{'-stack' if self.stack else ''}"

    @property
    def mount(self) -> str:
        return MOUNTS.get(self.app, "")

    def why_not(self, check: str) -> str | None:
        return self.server.lacks.get(check) or APP_LACKS.get(self.app, {}).get(check)

    def record(self) -> dict[str, str]:
        """What ``tests/e2e/conftest.py`` writes down for the table."""
        return {
            "group": self.group,
            "group_title": GROUPS[self.group],
            "server": self.server.name,
            "server_version": self.server.version(),
            "app": self.app + (" + Stack" if self.stack else ""),
            "cell": self.id,
        }


CELLS = [
    *(
        Cell("wsgi-on-asgi", server, app)
        for server in ASGI_SERVERS
        for app in ("flask", "django-wsgi", "pep3333")
    ),
    *(
        Cell("asgi-on-wsgi", server, app)
        for server in WSGI_SERVERS
        for app in ("django-asgi", "fastapi", "starlette")
    ),
    Cell("mounts", _BY_NAME["uvicorn"], "flask-in-fastapi"),
    Cell("mounts", _BY_NAME["hypercorn"], "flask-in-fastapi"),
    Cell("mounts", _BY_NAME["gunicorn-gthread"], "fastapi-in-flask"),
    Cell("mounts", _BY_NAME["waitress"], "fastapi-in-flask"),
    Cell("stack", _BY_NAME["uvicorn"], "flask", stack=True),
    Cell("stack", _BY_NAME["hypercorn"], "django-wsgi", stack=True),
    Cell("stack", _BY_NAME["gunicorn-gthread"], "django-asgi", stack=True),
    Cell("stack", _BY_NAME["waitress"], "fastapi", stack=True),
    Cell("stack", _BY_NAME["gunicorn-gthread"], "starlette", stack=True),
]


# --- serving a cell ---------------------------------------------------------------------


@dataclass
class Served:
    """A running cell: where to send requests and what the app should see."""

    cell: Cell
    url: str
    #: What every request path starts with.
    prefix: str
    #: What every link the app builds must start with.
    link_prefix: str
    access_log: Path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    #: One client per cell: building one costs more CPU than most checks.
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url + self.prefix, timeout=20)


class _Servers:
    """Starts each cell's server once and keeps only the current one running.

    Tests arrive cell by cell, so each server starts once; a cell whose server failed
    to start fails its remaining checks at once instead of retrying.
    """

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._stack = contextlib.ExitStack()
        self._cell: Cell | None = None
        self._served: Served | None = None
        self._error: str | None = None

    def get(self, cell: Cell) -> Served:
        cell.server.require()
        if cell != self._cell:
            self.close()
            self._cell, self._served, self._error = cell, None, None
            try:
                self._served = self._start(cell)
            except RuntimeError as exc:
                self._error = str(exc)
        if self._error is not None:
            pytest.fail(f"{cell.server.name} did not start:\n{self._error[-3000:]}")
        assert self._served is not None
        return self._served

    def _start(self, cell: Cell) -> Served:
        workdir = self._workdir / cell.id
        workdir.mkdir()
        access_log = workdir / "access.log"
        access_log.touch()
        port = free_port()
        argv, env = cell.server.launch(port, workdir)
        env.update(
            BRIDGE_MATRIX_APP=cell.app,
            BRIDGE_MATRIX_SERVE=cell.server.interface,
            BRIDGE_MATRIX_LOOP=cell.server.loop_mode,
            BRIDGE_MATRIX_STACK="1" if cell.stack else "",
            BRIDGE_MATRIX_ACCESS_LOG=str(access_log),
        )
        url = self._stack.enter_context(serve(argv, port, env=env, timeout=START_TIMEOUT))
        prefix = (SITE if cell.server.prefix_in_url else "") + cell.mount
        served = Served(cell, url, prefix, SITE + cell.mount, access_log)
        self._stack.callback(served.client.close)
        return served

    def close(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()


@pytest.fixture(scope="module")
def servers() -> Iterator[_Servers]:
    with tempfile.TemporaryDirectory(prefix="bridge-matrix-") as workdir:
        pool = _Servers(Path(workdir))
        try:
            yield pool
        finally:
            pool.close()


# --- a raw HTTP/1.1 client, for keep-alive and pipelining --------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _read_response(reader: BinaryIO) -> RawResponse:
    """One response from a buffered socket reader (Content-Length or chunked framing)."""
    read_line, read = reader.readline, reader.read
    status_line = read_line()
    if not status_line:
        raise ConnectionError("the server closed the connection instead of answering")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := read_line()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = read(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int(read_line().split(b";")[0], 16):
            body += read(size)
            read_line()
        while read_line() not in (b"\r\n", b"\n", b""):  # trailers
            pass
    else:
        raise AssertionError(f"no framing for a persistent connection: {headers}")
    return RawResponse(status, headers, body)


def _request(served: Served, path: str, *, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {served.prefix}{path} HTTP/1.1\r\nHost: {served.host}:{served.port}\r\n"
        f"{connection}\r\n"
    ).encode()


@contextlib.contextmanager
def _connection(served: Served) -> Iterator[tuple[socket.socket, BinaryIO]]:
    with socket.create_connection((served.host, served.port), timeout=20) as sock:
        reader = cast(BinaryIO, sock.makefile("rb"))
        try:
            yield sock, reader
        finally:
            reader.close()


# --- the checks: written once, run against every cell ----------------------------------


def check_get(served: Served) -> None:
    response = served.client.get("/hello")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-type"].startswith("text/plain")


def check_post_form(served: Served) -> None:
    fields = {"name": "Zoë", "colours": "blue & green", "empty": ""}
    response = served.client.post("/form", data=fields)
    assert response.status_code == 200
    assert response.json() == fields


def check_post_json(served: Served) -> None:
    payload = {"list": [1, 2, 3], "text": "naïve ☃", "nested": {"ok": True, "none": None}}
    response = served.client.post("/json", json=payload)
    assert response.status_code == 200
    assert response.json() == payload


def check_chunked_upload(served: Served) -> None:
    parts = [random.Random(i).randbytes(64 * 1024 + i) for i in range(4)]
    data = b"".join(parts)
    # An iterator has no length: httpx sends it with Transfer-Encoding: chunked.
    response = served.client.post("/upload", content=iter(parts))
    assert response.status_code == 200
    assert response.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_streamed_response(served: Served) -> None:
    arrivals: list[float] = []
    lines: list[bytes] = []
    with served.client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        buffer = b""
        for data in response.iter_bytes():
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                lines.append(line + b"\n")
                arrivals.append(time.monotonic())
    assert lines == [stream_chunk(i) for i in range(3)]
    # The app sleeps PAUSE before each later line: a buffered response would deliver all
    # three at once. Measured between arrivals, so a slow start cannot fail it.
    assert arrivals[-1] - arrivals[0] >= PAUSE


def check_not_found(served: Served) -> None:
    response = served.client.get("/no/such/page")
    assert response.status_code == 404


def check_server_error(served: Served) -> None:
    client = served.client
    response = client.get("/boom")
    assert response.status_code == 500
    # The failure stays inside its request: the next one is served normally.
    assert client.get("/hello").text == "hello"


def check_root_path_links(served: Served) -> None:
    response = served.client.get("/links")
    assert response.status_code == 200
    # Starlette builds absolute URLs, the others paths: the path is what must be right.
    assert urlsplit(response.json()["hello"]).path == f"{served.link_prefix}/hello"


def check_keep_alive(served: Served) -> None:
    with _connection(served) as (sock, reader):
        sock.sendall(_request(served, "/hello"))
        first = _read_response(reader)
        assert (first.status, first.body) == (200, b"hello")
        assert first.headers.get("connection", "").lower() != "close"
        sock.sendall(_request(served, "/links", close=True))
        second = _read_response(reader)
    assert second.status == 200
    assert urlsplit(json.loads(second.body)["hello"]).path == f"{served.link_prefix}/hello"


def check_pipelining(served: Served) -> None:
    with _connection(served) as (sock, reader):
        # Both requests in one write: the second is in the server's buffer while it is
        # still answering the first, and the answers must come back in order.
        sock.sendall(_request(served, "/hello") + _request(served, "/links", close=True))
        first = _read_response(reader)
        second = _read_response(reader)
    assert (first.status, first.body) == (200, b"hello")
    assert second.status == 200
    assert urlsplit(json.loads(second.body)["hello"]).path == f"{served.link_prefix}/hello"


def check_gzip(served: Served) -> None:
    client = served.client
    response = client.get("/stream", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    assert response.content == b"".join(stream_chunk(i) for i in range(3))
    raw = client.get("/hello", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert raw.text == "hello"


def check_cors(served: Served) -> None:
    client = served.client
    preflight = client.options(
        "/json",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    simple = client.get("/hello", headers={"Origin": ALLOWED_ORIGIN})
    foreign = client.get("/hello", headers={"Origin": "https://evil.example.test"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert simple.text == "hello"
    assert "access-control-allow-origin" not in foreign.headers


def check_access_log(served: Served) -> None:
    token = uuid.uuid4().hex
    assert served.client.get("/hello", params={"probe": token}).status_code == 200
    # The line is written when the response completes, after the client has it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in served.access_log.read_text().splitlines() if token in line]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1, served.access_log.read_text()
    assert f'"GET {served.link_prefix}/hello?probe={token} HTTP/1.1" 200 5 ' in lines[0]


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    run: Callable[[Served], None]

    def __repr__(self) -> str:
        return self.name


CHECKS = [
    Check("get", "GET", check_get),
    Check("post_form", "POST form", check_post_form),
    Check("post_json", "POST JSON", check_post_json),
    Check("chunked_upload", "chunked upload", check_chunked_upload),
    Check("streamed_response", "streamed response", check_streamed_response),
    Check("not_found", "404", check_not_found),
    Check("server_error", "500", check_server_error),
    Check("root_path_links", "prefix-correct links", check_root_path_links),
    Check("keep_alive", "keep-alive", check_keep_alive),
    Check("pipelining", "pipelining", check_pipelining),
]
STACK_CHECKS = [
    Check("gzip", "GZip", check_gzip),
    Check("cors", "CORS", check_cors),
    Check("access_log", "AccessLog", check_access_log),
]

#: (cell id, check name) -> why it fails today: a bug in bridge/ or middleware/.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def _cases() -> Iterator[object]:
    for cell in CELLS:
        for check in CHECKS + (STACK_CHECKS if cell.stack else []):
            marks: list[pytest.MarkDecorator] = []
            reason = cell.why_not(check.name)
            if reason is not None:
                marks.append(pytest.mark.skip(reason=reason))
            bug = KNOWN_BUGS.get((cell.id, check.name))
            if bug is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=bug))
            yield pytest.param(cell, check, marks=marks, id=f"{cell.id}-{check.name}")


@pytest.mark.parametrize(("cell", "check"), list(_cases()))
def test_cell(servers: _Servers, cell: Cell, check: Check) -> None:
    check.run(servers.get(cell))


def test_every_server_and_app_has_a_cell() -> None:
    assert {cell.server.name for cell in CELLS} == set(_BY_NAME)
    assert {cell.app for cell in CELLS} == {
        "flask",
        "django-wsgi",
        "pep3333",
        "django-asgi",
        "fastapi",
        "starlette",
        *MOUNTS,
    }
    assert {cell.app for cell in CELLS if cell.stack} == {
        "flask",
        "django-wsgi",
        "django-asgi",
        "fastapi",
        "starlette",
    }


async def test_access_log_outcome_of_a_complete_response_under_wsgi_to_asgi() -> None:
    """The bug behind the AccessLog cells, in-process: no server, no timing."""
    import logging

    from bridge import WSGIToASGI
    from middleware import AccessLog

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        yield b"hello"  # a generator, like Flask's and Django's bodies: no len()

    outcomes: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            outcomes.append(record.http["outcome"])  # type: ignore[attr-defined]

    logger = logging.getLogger(f"matrix.access.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_Collect())
    asgi = WSGIToASGI(AccessLog(app, logger=logger))
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    assert response.text == "hello"
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert outcomes == ["completed"]
