"""StaticFiles through both interfaces, and the path Response with a byte range it uses."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from middleware import StaticFiles
from middleware.api import Core, CoreMiddleware, RequestHead, Response
from middleware.testing import (
    WAYS,
    PlainRequest,
    Result,
    asgi_echo_app,
    call_asgi,
    call_wsgi,
    run,
    wsgi_echo_app,
)

DATA = bytes(range(256)) * 1024  # 256 KiB: several 64 KiB chunks


class _FileCore(Core):
    def __init__(self, path: str, offset: int, length: int | None) -> None:
        self._response = Response(200, [], path=path, offset=offset, length=length)

    def on_request(self, head: RequestHead) -> Response:
        return self._response


class _ServeFile(CoreMiddleware):
    def __init__(self, app: Any, path: str, offset: int = 0, length: int | None = None) -> None:
        super().__init__(app, _FileCore(path, offset, length))


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (0, 10), (1000, None), (65535, 65538), (len(DATA) - 3, 3), (5, 0)],
)
def test_a_path_response_sends_exactly_the_part_asked_for_every_way(
    data_file: Path, offset: int, length: int | None
) -> None:
    expected = DATA[offset:] if length is None else DATA[offset : offset + length]
    results = run(lambda app: _ServeFile(app, str(data_file), offset, length))
    assert set(results) == set(WAYS)
    for way, result in results.items():
        assert result.body == expected, way
        assert result.seen is None, way  # the app was never called


def test_pathsend_carries_a_whole_file_but_never_a_part(data_file: Path) -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    async def main(middleware: Any) -> None:
        scope = PlainRequest().scope()
        scope["extensions"] = {"http.response.pathsend": {}}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await middleware(scope, None, send)

    asyncio.run(main(_ServeFile(app, str(data_file))))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert sent[1]["path"] == str(data_file)
    sent.clear()
    asyncio.run(main(_ServeFile(app, str(data_file), 7, 9)))
    assert [m["type"] for m in sent][:2] == ["http.response.start", "http.response.body"]
    assert b"".join(m.get("body", b"") for m in sent[1:]) == DATA[7:16]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_part_goes_through_the_file_wrapper_without_a_fileno(data_file: Path) -> None:
    wrapped: list[Any] = []

    class FileWrapper:
        def __init__(self, filelike: Any, blksize: int = 8192) -> None:
            wrapped.append(filelike)
            self.filelike = filelike
            self.blksize = blksize

        def __iter__(self) -> Any:
            return iter(lambda: self.filelike.read(self.blksize), b"")

        def close(self) -> None:
            self.filelike.close()

    def app(environ: Any, start_response: Any) -> Any:
        raise AssertionError("not called")

    for offset, length, sendfile in [(0, None, True), (3, 100_000, False)]:
        environ = PlainRequest().environ()
        environ["wsgi.file_wrapper"] = FileWrapper
        result = _ServeFile(app, str(data_file), offset, length)(environ, lambda *a: None)
        assert isinstance(result, FileWrapper)
        assert hasattr(wrapped[-1], "fileno") is sendfile
        body = b"".join(result)
        result.close()
        assert body == (DATA if length is None else DATA[offset : offset + length])


# --- StaticFiles: one behaviour table, every way --------------------------------------

HELLO = b"hello world\n"
JS = b"console.log('a very long line of javascript');\n" * 20
JS_BR = b"pretend-brotli"
JS_GZ = b"pretend-gzip"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_bytes(b"top secret")
    (base / "outside").mkdir()
    (base / "outside" / "x.txt").write_bytes(b"outside")
    root = base / "public"
    (root / "sub" / "dir").mkdir(parents=True)
    (root / "hello.txt").write_bytes(HELLO)
    (root / "empty.txt").write_bytes(b"")
    (root / "app.3f2a9c1b.js").write_bytes(JS)
    (root / "app.3f2a9c1b.js.br").write_bytes(JS_BR)
    (root / "app.3f2a9c1b.js.gz").write_bytes(JS_GZ)
    (root / "sub" / "dir" / "deep.txt").write_bytes(b"deep")
    (root / "inside-link.txt").symlink_to(root / "hello.txt")
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to(base / "outside")
    os.utime(root / "hello.txt", (1_700_000_000, 1_700_000_000))
    return root


LAST_MODIFIED = b"Tue, 14 Nov 2023 22:13:20 GMT"


def static(site: Path, **options: Any) -> Callable[[Any], Any]:
    return lambda app: StaticFiles(app, directory=site, **options)


def _etag(path: Path, suffix: bytes = b"") -> bytes:
    info = path.stat()
    return b'"%x-%x%s"' % (info.st_mtime_ns, info.st_size, suffix)


def fetch(
    site: Path, path: str, *headers: tuple[bytes, bytes], method: str = "GET", **options: Any
) -> dict[str, Any]:
    """The same request every way; every way must answer alike. Returns one result."""
    request = PlainRequest(method, path, headers=headers)
    results = run(static(site, **options), request)
    first = results["wsgi"]
    for way, result in results.items():
        assert result.status == first.status, way
        assert result.body == first.body, way
        for name in (b"content-type", b"content-length", b"etag", b"content-range", b"vary"):
            assert result.header(name) == first.header(name), (way, name)
        assert (result.seen is None) == (first.seen is None), way
    return {"status": first.status, "body": first.body, "result": first}


def test_a_file_is_served_with_validators_and_cache_headers(site: Path) -> None:
    got = fetch(site, "/static/hello.txt")
    result = got["result"]
    assert (got["status"], got["body"]) == (200, HELLO)
    assert result.seen is None  # the app never saw it
    assert result.header(b"content-type") == b"text/plain; charset=utf-8"
    assert result.header(b"content-length") == b"12"
    assert result.header(b"etag") == _etag(site / "hello.txt")
    assert result.header(b"last-modified") == LAST_MODIFIED
    assert result.header(b"accept-ranges") == b"bytes"
    assert result.header(b"cache-control") == b"public, max-age=60"
    assert result.header(b"vary") is None


def test_head_has_the_headers_and_no_body(site: Path) -> None:
    got = fetch(site, "/static/hello.txt", method="HEAD")
    assert (got["status"], got["body"]) == (200, b"")
    assert got["result"].header(b"content-length") == b"12"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (((b"if-none-match", b"ETAG"),), 304),
        (((b"if-none-match", b"W/ETAG"),), 304),
        (((b"if-none-match", b'"other", ETAG'),), 304),
        (((b"if-none-match", b"*"),), 304),
        (((b"if-none-match", b'"other"'),), 200),
        (((b"if-modified-since", LAST_MODIFIED),), 304),
        (((b"if-modified-since", b"Wed, 15 Nov 2023 00:00:00 GMT"),), 304),
        (((b"if-modified-since", b"Mon, 13 Nov 2023 00:00:00 GMT"),), 200),
        (((b"if-modified-since", b"yesterday"),), 200),
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        (((b"if-none-match", b'"other"'), (b"if-modified-since", LAST_MODIFIED)), 200),
    ],
)
def test_conditional_requests(site: Path, headers: Any, status: int) -> None:
    etag = _etag(site / "hello.txt")
    headers = tuple((name, value.replace(b"ETAG", etag)) for name, value in headers)
    got = fetch(site, "/static/hello.txt", *headers)
    assert got["status"] == status
    if status == 304:
        assert got["body"] == b""
        assert got["result"].header(b"etag") == etag
        assert got["result"].header(b"last-modified") == LAST_MODIFIED
        assert got["result"].header(b"cache-control") == b"public, max-age=60"
    else:
        assert got["body"] == HELLO


@pytest.mark.parametrize(
    ("value", "status", "body", "content_range"),
    [
        (b"bytes=0-4", 206, HELLO[0:5], b"bytes 0-4/12"),
        (b"bytes=6-", 206, HELLO[6:], b"bytes 6-11/12"),
        (b"bytes=-3", 206, HELLO[-3:], b"bytes 9-11/12"),
        (b"bytes=-100", 206, HELLO, b"bytes 0-11/12"),
        (b"bytes=11-500", 206, HELLO[11:], b"bytes 11-11/12"),
        (b"BYTES = 1-1", 206, HELLO[1:2], b"bytes 1-1/12"),
        (b"bytes=12-", 416, b"", b"bytes */12"),
        (b"bytes=-0", 416, b"", b"bytes */12"),
        (b"bytes=0-1,3-4", 200, HELLO, None),  # several ranges: the whole file
        (b"bytes=5-2", 200, HELLO, None),  # invalid: ignored
        (b"bytes=x-2", 200, HELLO, None),
        (b"items=0-1", 200, HELLO, None),
    ],
)
def test_ranges(
    site: Path, value: bytes, status: int, body: bytes, content_range: bytes | None
) -> None:
    got = fetch(site, "/static/hello.txt", (b"range", value))
    assert (got["status"], got["body"]) == (status, body)
    assert got["result"].header(b"content-range") == content_range
    expected_length = str(len(body)).encode()
    assert got["result"].header(b"content-length") == expected_length


def test_if_range_decides_whether_the_range_applies(site: Path) -> None:
    etag = _etag(site / "hello.txt")
    for if_range, status in [
        (etag, 206),
        (b'"stale"', 200),
        (b"W/" + etag, 200),  # weak tags never match If-Range
        (LAST_MODIFIED, 206),
        (b"Mon, 13 Nov 2023 00:00:00 GMT", 200),
    ]:
        got = fetch(site, "/static/hello.txt", (b"range", b"bytes=0-4"), (b"if-range", if_range))
        assert got["status"] == status, if_range


def test_head_ignores_range_and_an_empty_file_has_no_satisfiable_range(site: Path) -> None:
    got = fetch(site, "/static/hello.txt", (b"range", b"bytes=0-4"), method="HEAD")
    assert (got["status"], got["result"].header(b"content-length")) == (200, b"12")
    got = fetch(site, "/static/empty.txt", (b"range", b"bytes=0-"))
    assert (got["status"], got["result"].header(b"content-range")) == (416, b"bytes */0")


@pytest.mark.parametrize(
    ("accept", "body", "coding"),
    [
        (b"gzip, deflate, br", JS_BR, b"br"),
        (b"gzip", JS_GZ, b"gzip"),
        (b"br;q=0.5, gzip", JS_GZ, b"gzip"),
        (b"br;q=0, gzip;q=0", JS, None),
        (b"*", JS_BR, b"br"),
        (b"*;q=0.1, gzip;q=0.5", JS_GZ, b"gzip"),
        (b"identity", JS, None),
        (b"", JS, None),
    ],
)
def test_precompressed_siblings_follow_accept_encoding(
    site: Path, accept: bytes, body: bytes, coding: bytes | None
) -> None:
    got = fetch(site, "/static/app.3f2a9c1b.js", (b"accept-encoding", accept))
    result = got["result"]
    assert (got["status"], got["body"]) == (200, body)
    assert result.header(b"content-encoding") == coding
    assert result.header(b"content-length") == str(len(body)).encode()
    assert result.header(b"vary") == b"Accept-Encoding"
    assert result.header(b"content-type") == b"text/javascript; charset=utf-8"
    sibling = {None: "", b"br": ".br", b"gzip": ".gz"}[coding]
    suffix = b"" if coding is None else b"-" + coding
    assert result.header(b"etag") == _etag(site / f"app.3f2a9c1b.js{sibling}", suffix)


def test_a_range_gets_the_plain_file_even_when_compressed_is_accepted(site: Path) -> None:
    got = fetch(
        site, "/static/app.3f2a9c1b.js", (b"accept-encoding", b"br"), (b"range", b"bytes=0-6")
    )
    assert (got["status"], got["body"]) == (206, JS[:7])
    assert got["result"].header(b"content-encoding") is None
    assert got["result"].header(b"vary") == b"Accept-Encoding"


def test_hashed_names_are_cached_for_a_year(site: Path) -> None:
    got = fetch(site, "/static/app.3f2a9c1b.js")
    assert got["result"].header(b"cache-control") == b"public, max-age=31536000, immutable"
    got = fetch(site, "/static/hello.txt", max_age=None, immutable=None)
    assert got["result"].header(b"cache-control") is None
    got = fetch(site, "/static/app.3f2a9c1b.js", immutable=None, max_age=5)
    assert got["result"].header(b"cache-control") == b"public, max-age=5"


def test_a_requested_compressed_file_is_not_labelled_as_its_content(site: Path) -> None:
    got = fetch(site, "/static/app.3f2a9c1b.js.gz")
    assert (got["status"], got["body"]) == (200, JS_GZ)
    assert got["result"].header(b"content-type") == b"application/octet-stream"
    assert got["result"].header(b"content-encoding") is None


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/../hello.txt",  # inside, but never normalised
        "/static/./hello.txt",
        "/static//hello.txt",
        "/static/..\\secret.txt",
        "/static/sub\\..\\..\\secret.txt",
        "/static/hello.txt\x00.png",
        "/static/escape.txt",  # a symlink to a file outside
        "/static/escape-dir/x.txt",  # through a symlinked directory outside
        "/static/sub",  # a directory
        "/static/",
        "/static",
        "/static/missing.txt",
    ],
)
def test_nothing_outside_the_directory_and_nothing_but_files(site: Path, path: str) -> None:
    got = fetch(site, path)
    assert (got["status"], got["body"]) == (404, b"Not Found")
    assert got["result"].seen is None


def test_a_symlink_inside_the_directory_is_served(site: Path) -> None:
    assert fetch(site, "/static/inside-link.txt")["body"] == HELLO
    assert fetch(site, "/static/sub/dir/deep.txt")["body"] == b"deep"


def test_only_get_and_head_under_the_prefix(site: Path) -> None:
    for path in ("/static/hello.txt", "/static/missing.txt"):
        got = fetch(site, path, method="POST")
        assert (got["status"], got["body"]) == (405, b"Method Not Allowed")
        assert got["result"].header(b"allow") == b"GET, HEAD"


def test_fallthrough_hands_missing_files_to_the_app(site: Path) -> None:
    got = fetch(site, "/static/missing.txt", fallthrough=True)
    assert (got["status"], got["body"]) == (200, b"hello")
    assert got["result"].seen is not None
    assert fetch(site, "/static/hello.txt", method="PUT", fallthrough=True)["status"] == 405
    assert fetch(site, "/static/../secret.txt", fallthrough=True)["result"].seen is not None


@pytest.mark.parametrize("path", ["/", "/other", "/staticfoo", "/STATIC/hello.txt"])
def test_other_paths_go_to_the_app(site: Path, path: str) -> None:
    got = fetch(site, path, method="POST")
    assert (got["status"], got["body"]) == (200, b"hello")
    assert got["result"].seen is not None


def test_prefixes_and_mounts(site: Path) -> None:
    assert fetch(site, "/assets/hello.txt", prefix="/assets/")["body"] == HELLO
    assert fetch(site, "/hello.txt", prefix="")["body"] == HELLO
    request = PlainRequest(path="/static/hello.txt", root_path="/mounted")
    for way, result in run(static(site), request).items():
        assert (result.status, result.body) == (200, HELLO), way


def test_a_changed_file_gets_a_new_etag_and_its_new_content(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"one")
    middleware = StaticFiles(asgi_echo_app([]), directory=tmp_path)  # one cache throughout
    request = PlainRequest(path="/static/f.txt")
    first = call_asgi(middleware, request)
    (tmp_path / "f.txt").write_bytes(b"second")
    os.utime(tmp_path / "f.txt", ns=(1, 10**18))
    second = call_asgi(middleware, request)
    (tmp_path / "f.txt").unlink()
    third = call_asgi(middleware, request)
    assert (first.body, second.body) == (b"one", b"second")
    assert second.header(b"content-length") == b"6"
    assert first.header(b"etag") != second.header(b"etag")
    assert third.status == 404


def test_options_are_checked(tmp_path: Path) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(ValueError, match="directory"):
        StaticFiles(app, directory=tmp_path / "missing")
    with pytest.raises(ValueError, match="prefix"):
        StaticFiles(app, directory=tmp_path, prefix="static")
    with pytest.raises(ValueError, match="max_age"):
        StaticFiles(app, directory=tmp_path, max_age=-1)
    files = StaticFiles(app, directory=tmp_path, prefix="/s/")
    assert isinstance(files, StaticFiles)
    assert (files.interface, files.prefix, files.directory) == ("wsgi", "/s", str(tmp_path))


def test_a_sibling_rewritten_or_removed_after_its_file_is_noticed(tmp_path: Path) -> None:
    (tmp_path / "a.css").write_bytes(b"a { }" * 100)
    (tmp_path / "a.css.gz").write_bytes(b"old")
    middleware = StaticFiles(wsgi_echo_app([]), directory=tmp_path)  # one cache throughout
    request = PlainRequest(path="/static/a.css", headers=[(b"accept-encoding", b"gzip")])
    first = call_wsgi(middleware, request)
    (tmp_path / "a.css.gz").write_bytes(b"newer")
    os.utime(tmp_path / "a.css.gz", ns=(1, 10**18))
    second = call_wsgi(middleware, request)
    (tmp_path / "a.css.gz").unlink()
    third = call_wsgi(middleware, request)
    assert (first.body, first.header(b"content-length")) == (b"old", b"3")
    assert (second.body, second.header(b"content-length")) == (b"newer", b"5")
    assert (third.body, third.header(b"content-encoding")) == (b"a { }" * 100, None)


def test_memos_keep_only_short_keys_and_existing_files(site: Path) -> None:
    middleware = StaticFiles(wsgi_echo_app([]), directory=site)
    for index in range(300):
        call_wsgi(middleware, PlainRequest(path=f"/static/missing-{index}.txt"))
        huge = b"br;q=0.5, x%d" % index + b"x" * 5000 + b", gzip"  # unique each time
        request = PlainRequest(path="/static/app.3f2a9c1b.js", headers=[(b"accept-encoding", huge)])
        assert call_wsgi(middleware, request).body == JS_GZ
    core: Any = middleware._core
    assert core._accept_cache == {}
    assert list(core._cache) == ["app.3f2a9c1b.js"]


def test_an_outer_middleware_editing_headers_in_place_changes_no_later_response(
    site: Path,
) -> None:
    inner = StaticFiles(asgi_echo_app([]), directory=site)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        async def send_editing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-edited", b"1"))  # as Starlette's do
            await send(message)

        await inner(scope, receive, send_editing)

    wsgi = StaticFiles(wsgi_echo_app([]), directory=site)
    seen: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        headers.append(("X-Edited", "1"))  # wsgiref's handler adds to the list it is given
        seen.append(list(headers))

    for method in ("GET", "GET", "HEAD", "HEAD"):
        request = PlainRequest(method, "/static/hello.txt")
        assert call_asgi(outer, request).header(b"x-edited") == b"1"
        getattr(wsgi(request.environ(), start_response), "close", lambda: None)()
        assert [name for name, _ in seen[-1]].count("X-Edited") == 1


# --- html=True: directory indexes, the redirect to "dir/", 404.html ----------------------

INDEX = b"<h1>top</h1>\n"
DOCS = b"<h1>docs</h1>\n"
PAGE_404 = b"<h1>no such page</h1>\n"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    (root / "docs").mkdir()
    (root / "no-index").mkdir()
    (root / "caf\u00e9").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "docs" / "index.html").write_bytes(DOCS)
    (root / "docs" / "page.txt").write_bytes(b"page")
    (root / "caf\u00e9" / "index.html").write_bytes(b"cafe")
    (root / "404.html").write_bytes(PAGE_404)
    return root


def html(
    root: Path, path: str, method: str = "GET", *, query: bytes = b"", **options: Any
) -> Result:
    """The request every way with ``html=True``; every way must answer alike."""
    options.setdefault("html", True)
    request = PlainRequest(method, path, query=query)
    results = run(static(root, **options), request)
    first = results["wsgi"]
    for way, result in results.items():
        assert (result.status, result.body) == (first.status, first.body), way
        for name in (b"content-type", b"content-length", b"location", b"etag"):
            assert result.header(name) == first.header(name), (way, name)
        assert (result.seen is None) == (first.seen is None), way
    return first


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/static/", INDEX),
        ("/static/docs/", DOCS),
        ("/static/docs/index.html", DOCS),
        ("/static/docs/page.txt", b"page"),
        ("/static/caf\u00e9/", b"cafe"),
    ],
)
def test_html_serves_a_directory_index(pages: Path, path: str, body: bytes) -> None:
    result = html(pages, path)
    assert (result.status, result.body, result.seen) == (200, body, None)
    if path.endswith("/"):
        assert result.header(b"content-type") == b"text/html; charset=utf-8"
        assert result.header(b"etag") is not None
        assert result.header(b"location") is None


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/static/docs", b"", b"/static/docs/"),
        ("/static", b"", b"/static/"),
        ("/static/docs", b"a=1&b=%20c", b"/static/docs/?a=1&b=%20c"),
        ("/static/caf\u00e9", b"", b"/static/caf%C3%A9/"),
    ],
)
def test_html_redirects_a_directory_to_its_slash(
    pages: Path, path: str, query: bytes, location: bytes
) -> None:
    for method in ("GET", "HEAD"):
        result = html(pages, path, method, query=query)
        assert (result.status, result.body, result.seen) == (307, b"", None)
        assert result.header(b"location") == location
        assert result.header(b"content-length") == b"0"


def test_html_redirect_keeps_the_mount_and_a_prefix_of_root(pages: Path) -> None:
    request = PlainRequest(path="/static/docs", root_path="/mounted")
    for way, result in run(static(pages, html=True), request).items():
        assert (result.status, result.header(b"location")) == (307, b"/mounted/static/docs/"), way
    assert html(pages, "/docs", prefix="").header(b"location") == b"/docs/"
    assert html(pages, "/", prefix="").body == INDEX


@pytest.mark.parametrize(
    "path",
    ["/static/missing.txt", "/static/no-index/", "/static/no-index", "/static/docs/missing/"],
)
def test_html_sends_404_html_for_what_is_missing(pages: Path, path: str) -> None:
    result = html(pages, path)
    assert (result.status, result.body, result.seen) == (404, PAGE_404, None)
    assert result.header(b"content-type") == b"text/html; charset=utf-8"
    assert result.header(b"content-length") == str(len(PAGE_404)).encode()
    assert result.header(b"etag") is None  # no validators on an error page
    head = html(pages, path, "HEAD")
    assert (head.status, head.body) == (404, b"")
    assert head.header(b"content-length") == str(len(PAGE_404)).encode()


def test_without_html_directories_are_not_served(pages: Path) -> None:
    for path in ("/static/", "/static/docs/", "/static/docs", "/static", "/static/missing"):
        result = html(pages, path, html=False)
        assert (result.status, result.body) == (404, b"Not Found"), path


def test_html_without_a_404_page_and_with_other_methods(pages: Path, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_bytes(DOCS)
    assert (html(tmp_path, "/static/missing").status, html(tmp_path, "/static/x").body) == (
        404,
        b"Not Found",
    )
    for path in ("/static/docs", "/static/docs/", "/static/missing"):
        result = html(pages, path, "POST")
        assert (result.status, result.header(b"allow")) == (405, b"GET, HEAD"), path


def test_html_with_fallthrough_still_redirects_and_hands_missing_files_over(pages: Path) -> None:
    assert html(pages, "/static/docs", fallthrough=True).status == 307
    missing = html(pages, "/static/missing.txt", fallthrough=True)
    assert (missing.status, missing.body) == (200, b"hello")
    assert missing.seen is not None


@pytest.mark.parametrize(
    "path", ["/static/docs/../docs/", "/static/docs//", "/static//docs", "/static/./docs"]
)
def test_html_refuses_unsafe_paths_before_the_file_system(pages: Path, path: str) -> None:
    result = html(pages, path)
    assert (result.status, result.body) == (404, PAGE_404)


# --- check_changes=False: no stat per request for a known file ---------------------------


def test_check_changes_false_learns_a_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f.txt").write_bytes(b"one")
    middleware = StaticFiles(wsgi_echo_app([]), directory=tmp_path, check_changes=False)
    request = PlainRequest(path="/static/f.txt")
    first = call_wsgi(middleware, request)
    stats: list[Any] = []
    real_stat = os.stat

    def counting_stat(*args: Any, **kwargs: Any) -> Any:
        stats.append(args[0])
        return real_stat(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    (tmp_path / "f.txt").write_bytes(b"two")  # same size: the old head stays right
    os.utime(tmp_path / "f.txt", ns=(1, 10**18))
    second = call_wsgi(middleware, request)
    assert stats == []  # the known file was not looked at again
    assert (first.body, second.body) == (b"one", b"two")
    assert second.header(b"etag") == first.header(b"etag")  # as documented: not noticed
    (tmp_path / "new.txt").write_bytes(b"new")
    assert call_wsgi(middleware, PlainRequest(path="/static/new.txt")).body == b"new"
    assert call_wsgi(middleware, PlainRequest(path="/static/nope.txt")).status == 404
    # New files are still found (and their siblings looked for), missing ones looked for.
    assert [Path(name).name for name in stats] == [
        "new.txt",
        "new.txt.br",
        "new.txt.gz",
        "nope.txt",
    ]


def test_html_redirect_never_names_another_host(pages: Path) -> None:
    request = PlainRequest(
        path="/static/docs", headers=[(b"host", b"evil.example"), (b"x-forwarded-host", b"x")]
    )
    for way, result in run(static(pages, html=True), request).items():
        assert result.header(b"location") == b"/static/docs/", way
    # A mount whose path would start the Location with "//" gets no redirect at all.
    request = PlainRequest(path="/static/docs", root_path="//evil.example")
    for way, result in run(static(pages, html=True), request).items():
        assert (result.status, result.header(b"location")) == (404, None), way
    assert html(pages, "//evil.example/docs", prefix="").header(b"location") is None
