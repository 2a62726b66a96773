"""``wsgi.input``: a file-like view of a request body that arrives in chunks.

Pure: the stream knows nothing of ASGI. It is handed the first chunk and a ``pull``
callable that blocks until the next chunk is there, returning ``(data, more)``. A
disconnect must surface as an exception from ``pull`` (``ClientDisconnected``), so a
truncated upload can never be mistaken for the end of the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeAlias

Pull: TypeAlias = Callable[[], tuple[bytes, bool]]


class BodyTooLarge(ValueError):
    """The request body is longer than the adapter's ``max_body_size``."""


class BodyStream:
    """The request body as PEP 3333 asks for it: ``read``, ``readline``, ``readlines``, iteration.

    Only what the app has not yet consumed is held: the body is pulled on demand.
    """

    __slots__ = (
        "_buffer",
        "_first",
        "_first_pos",
        "_limit",
        "_more",
        "_pos",
        "_pull",
        "_received",
    )

    def __init__(
        self, first: bytes, more: bool, pull: Pull | None, limit: int | None = None
    ) -> None:
        # limit may be passed by position: the adapter does, since a keyword argument to
        # a class call costs a dict per request (callgrind: ~1.1k instructions).
        # A chunk kept as it came (at first the first one), read from _first_pos on
        # while the buffer is empty: a read of all of it (the usual small body) hands it
        # over without a copy, and reads of pieces of it copy each byte once.
        self._first: bytes | None = bytes(first) if first else None
        self._first_pos = 0
        self._buffer = bytearray()
        self._pos = 0
        self._more = more and pull is not None
        self._pull = pull
        self._limit = limit
        self._received = len(first)
        if limit is not None and self._received > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")

    def _next_chunk(self) -> bytes:
        """Pull the next chunk (possibly empty); sets end-of-body when there is none."""
        assert self._pull is not None
        data, self._more = self._pull()
        if data:
            self._received += len(data)
            if self._limit is not None and self._received > self._limit:
                self._more = False
                raise BodyTooLarge(f"request body exceeds {self._limit} bytes")
        return data

    def _fill(self) -> None:
        """Append the next chunk to the buffer."""
        data = self._next_chunk()
        if data:
            if self._pos:
                # Drop what was consumed so a long stream read in pieces stays O(n).
                del self._buffer[: self._pos]
                self._pos = 0
            self._buffer += data

    def _unfirst(self) -> None:
        """Move the first chunk into the buffer (before the buffer is first used)."""
        first = self._first
        if first is not None:
            self._first = None
            with memoryview(first) as view:
                self._buffer += view[self._first_pos :]

    def _take(self, end: int) -> bytes:
        # Through a view: one copy, where slicing the bytearray and then bytes() made two.
        with memoryview(self._buffer) as view:
            data = bytes(view[self._pos : end])
        self._pos = end
        if self._pos == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        return data

    def read(self, size: int | None = -1, /) -> bytes:
        first = self._first
        if first is not None:
            start = self._first_pos
            rest = len(first) - start
            if size is not None and 0 <= size < rest:
                self._first_pos = start + size
                return first[start : start + size]
            if size is not None and size > rest and self._more:
                return self._read_across(first, start, size)
            if (size is None or size < 0) and self._more:
                self._unfirst()
            else:
                self._first = None
                return first[start:] if start else first
        if size is None or size < 0:
            parts = [self._take(len(self._buffer))]
            while self._more:
                parts.append(self._next_chunk())
            return b"".join(parts)
        if self._pos == len(self._buffer) and self._more and size:
            # Nothing buffered: hand over a chunk of exactly the size asked for as it
            # came, without copying it through the buffer (reads of a whole message).
            data = self._next_chunk()
            if len(data) == size:
                return data
            if len(data) > size and type(data) is bytes:
                # Keep the chunk as it came and hand it over in pieces, instead of
                # copying it into the buffer and each piece out again.
                self._buffer.clear()
                self._pos = 0
                self._first, self._first_pos = data, size
                return data[:size]
            self._buffer += data
        while self._more and len(self._buffer) - self._pos < size:
            need = size - (len(self._buffer) - self._pos)
            data = self._next_chunk()
            if len(data) > need and type(data) is bytes:
                # The chunk completes this read: the buffer's rest and the chunk's head
                # make the answer, and the chunk is kept as it came for the next reads.
                buffered = self._take(len(self._buffer))
                self._first, self._first_pos = data, need
                return b"".join((buffered, memoryview(data)[:need]))
            if data:
                if self._pos:
                    del self._buffer[: self._pos]
                    self._pos = 0
                self._buffer += data
        return self._take(min(len(self._buffer), self._pos + size))

    def _read_across(self, first: bytes, start: int, size: int) -> bytes:
        """``read(size)`` of the kept chunk's rest and what follows it.

        The pieces are joined straight from the chunks, each byte copied once: through
        the buffer, the rest was copied in, out and into the answer (a read straddles
        every uvicorn message of 256,000 bytes read 64 KiB at a time).
        """
        self._first = None
        parts: list[bytes | memoryview] = [memoryview(first)[start:]]
        got = len(first) - start
        try:
            while self._more and got < size:
                data = self._next_chunk()
                need = size - got
                if len(data) > need and type(data) is bytes:
                    # Keep the chunk as it came for the next reads.
                    self._first, self._first_pos = data, need
                    parts.append(memoryview(data)[:need])
                    break
                parts.append(data)
                got += len(data)
        except BaseException:
            # The pull failed (the client left, the body is too large): keep what was
            # read in the buffer, where a later read finds it as before.
            for part in parts:
                self._buffer += part
            raise
        return b"".join(parts)

    def readline(self, size: int | None = -1, /) -> bytes:
        self._unfirst()
        limit = -1 if size is None else size
        scanned = self._pos
        while True:
            newline = self._buffer.find(b"\n", scanned)
            if newline >= 0:
                end = newline + 1
                break
            available = len(self._buffer) - self._pos
            if not self._more or (limit >= 0 and available >= limit):
                end = len(self._buffer)
                break
            self._fill()
            # _fill may have compacted the buffer: rescan from where we stopped.
            scanned = self._pos + available
        if limit >= 0:
            end = min(end, self._pos + limit)
        return self._take(end)

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
