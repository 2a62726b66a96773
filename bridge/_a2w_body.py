"""The WSGI response iterable of an ``ASGIToWSGI`` request, and the pathsend file."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from bridge._a2w_exchange import COMPLETE, DONE, STREAMING, Exchange
from bridge._http import InvalidResponse


class PathFile(io.FileIO):
    """The file named by ``http.response.pathsend``; closing it also ends the request.

    A real file object, so servers can ``sendfile()`` it through ``wsgi.file_wrapper``.
    """

    def __init__(self, path: str, on_close: Callable[[], None]) -> None:
        super().__init__(path, "rb")
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        super().close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


class ResponseBody:
    """The WSGI response iterable: yields body chunks as the ASGI app sends them.

    ``close()`` (PEP 3333: called by the server once it is done, early or not) finishes
    the request: it lets background work run (bounded) after a complete response, or
    cancels the task when the client went away first.
    """

    __slots__ = ("_closed", "_ex", "_file")

    def __init__(self, exchange: Exchange) -> None:
        self._ex = exchange
        self._file: io.FileIO | None = None
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        ex = self._ex
        while True:
            # The state first: the loop side appends chunks (or sets the path) before it
            # moves the state on, so chunks found after a final state are all there is.
            state = ex.state
            if ex.chunks:
                return ex.take()
            if ex.path is not None:
                return self._next_from_file(ex.path)
            if state is STREAMING:
                ex.wait_progress()
            elif state is COMPLETE or state is DONE:
                raise StopIteration
            else:
                # Raising makes the server abort the connection rather than reuse it
                # after a body that does not match its framing; the server logs it.
                raise ex.failure()

    def _next_from_file(self, path: str) -> bytes:
        ex = self._ex
        if self._file is None:
            self._file = io.FileIO(path, "rb")
        data = self._file.read(ex.chunk_size)
        expected = ex.expected
        if expected is not None:
            ex.sent += len(data)
            if ex.sent > expected or (not data and ex.sent < expected):
                raise InvalidResponse(
                    f"http.response.pathsend file {path!r} does not match "
                    f"its Content-Length {expected}"
                )
        if data:
            return data
        self._file.close()
        ex.path = None
        raise StopIteration

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        self._ex.finish()
