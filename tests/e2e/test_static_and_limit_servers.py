"""StaticFiles and BodyLimit on real servers: Flask on gunicorn gthread, FastAPI on uvicorn.

Traversal attempts go through a raw socket, so the path reaches the server exactly as
written (httpx would normalise ``..`` away); bodies are sent chunked by hand.
"""

from __future__ import annotations

import gzip
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apps.static_limit_apps import LIMIT
from tests.servers import free_port, require_module, serve

pytestmark = pytest.mark.slow

HELLO = b"hello from a file\n" * 100
CSS = b"body { color: red; }\n" * 200
SECRET = b"TOP-SECRET-CONTENT"
DOCS = b"<!doctype html><h1>docs</h1>\n"
TOO_LARGE = b"Request body too large"


def _argv(server: str, port: int) -> list[str]:
    py = sys.executable
    if server == "uvicorn":
        target = "tests.apps.static_limit_apps:fastapi_app"
        return [py, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1"]
    target = "tests.apps.static_limit_apps:flask_app()"
    return [py, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1", target]


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn-gthread"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, Path]]:
    require_module("fastapi" if request.param == "uvicorn" else "flask")
    base = tmp_path_factory.mktemp("static-e2e")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "public"
    root.mkdir()
    (root / "hello.txt").write_bytes(HELLO)
    (root / "site.0123abcd.css").write_bytes(CSS)
    (root / "site.0123abcd.css.gz").write_bytes(gzip.compress(CSS))
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(DOCS)
    port = free_port()
    argv = _argv(request.param, port)
    argv += ["--port", str(port)] if request.param == "uvicorn" else ["-b", f"127.0.0.1:{port}"]
    with serve(argv, port, env={"STATIC_ROOT": str(root)}) as url:
        yield url, port, root


def _raw(port: int, data: bytes) -> tuple[int, bytes, bytes]:
    """Send ``data`` as written; (status, head, body) of the first response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        while length is not None and len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, head, body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")


def test_a_file_is_served_with_validators_ranges_and_its_precompressed_sibling(
    server: tuple[str, int, Path],
) -> None:
    url, _, _ = server
    with httpx.Client(base_url=url) as client:
        first = client.get("/static/hello.txt")
        assert (first.status_code, first.content) == (200, HELLO)
        assert first.headers["content-length"] == str(len(HELLO))
        etag = first.headers["etag"]
        again = client.get("/static/hello.txt", headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b"")
        part = client.get("/static/hello.txt", headers={"Range": "bytes=18-35"})
        assert (part.status_code, part.content) == (206, HELLO[18:36])
        assert part.headers["content-range"] == f"bytes 18-35/{len(HELLO)}"
        beyond = client.get("/static/hello.txt", headers={"Range": "bytes=99999-"})
        assert beyond.status_code == 416
        css = client.get("/static/site.0123abcd.css", headers={"Accept-Encoding": "gzip"})
        assert css.status_code == 200
        assert css.headers["content-encoding"] == "gzip"
        assert css.content == CSS  # httpx decoded the sibling
        assert css.headers["vary"] == "Accept-Encoding"
        assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
        head = client.head("/static/hello.txt")
        assert (head.status_code, head.headers["content-length"]) == (200, str(len(HELLO)))
        posted = client.post("/static/hello.txt", content=b"x")
        assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
        assert client.get("/").status_code == 200  # the app still answers its own routes


def test_a_directory_index_and_the_redirect_to_it(server: tuple[str, int, Path]) -> None:
    url, port, _ = server
    with httpx.Client(base_url=url) as client:
        index = client.get("/static/docs/")
        assert (index.status_code, index.content) == (200, DOCS)
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        missing = client.get("/static/no-such-dir/")
        assert missing.status_code == 404
    # The raw bytes, so the 307 is seen as sent (no redirect followed, no URL rewritten).
    status, head, body = _raw(port, _get("/static/docs?x=1"))
    assert (status, body) == (307, b"")
    assert b"\r\nlocation: /static/docs/?x=1\r\n" in head.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/..\\secret.txt",
        "/static//../secret.txt",
        "/static/hello.txt%00",
        "/static/escape.txt",
    ],
)
def test_traversal_attempts_never_leave_the_directory(
    server: tuple[str, int, Path], path: str
) -> None:
    _, port, _ = server
    status, head, body = _raw(port, _get(path))
    assert SECRET not in head + body
    # 404 from StaticFiles; a server may refuse a path itself first (400).
    assert status in (400, 404), (status, head)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    server: tuple[str, int, Path],
) -> None:
    _, port, _ = server
    # Headers only: the 413 must come without the server waiting for 10 MB.
    request = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 10000000\r\n\r\n"
    )
    status, _, body = _raw(port, request)
    assert (status, body) == (413, TOO_LARGE)


def _chunked(size: int, piece: int = 300) -> bytes:
    data = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (b"x" * min(piece, size - start) for start in range(0, size, piece))
    )
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    return head + data + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("size", "status", "body"), [(LIMIT, 200, b"1000"), (2500, 413, TOO_LARGE)]
)
def test_a_chunked_body_is_counted(
    server: tuple[str, int, Path], size: int, status: int, body: bytes
) -> None:
    _, port, _ = server
    assert _raw(port, _chunked(size))[::2] == (status, body)


def test_a_declared_body_within_the_limit_reaches_the_app(server: tuple[str, int, Path]) -> None:
    url, _, _ = server
    response = httpx.post(url + "/upload", content=b"y" * LIMIT)
    assert (response.status_code, response.text) == (200, str(LIMIT))


@pytest.fixture(scope="module")
def granian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_module("granian")
    root = tmp_path_factory.mktemp("static-granian")
    (root / "hello.txt").write_bytes(HELLO)
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-ws"]
    argv.append("tests.apps.static_limit_apps:fastapi_app")
    with serve(argv, port, env={"STATIC_ROOT": str(root)}) as url:
        yield url


def test_a_server_with_pathsend_gets_whole_files_by_path_and_parts_as_bytes(granian: str) -> None:
    with httpx.Client(base_url=granian) as client:
        whole = client.get("/static/hello.txt")
        assert (whole.status_code, whole.content) == (200, HELLO)
        assert whole.headers["content-length"] == str(len(HELLO))
        part = client.get("/static/hello.txt", headers={"Range": "bytes=-20"})
        assert (part.status_code, part.content) == (206, HELLO[-20:])
        head = client.head("/static/hello.txt")
        assert (head.status_code, head.content) == (200, b"")
