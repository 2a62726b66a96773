"""StaticFiles through both interfaces, and the path Response with a byte range it uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from middleware.api import Core, CoreMiddleware, RequestHead, Response
from middleware.testing import WAYS, PlainRequest, run

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
