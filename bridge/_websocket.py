"""The synchronous WebSocket a WSGI app finds in ``environ["bridge.websocket"]``.

This module is the worker-thread half of one connection: the app calls ``accept``,
``receive``, ``send`` and ``close`` from its own thread, and they trade ASGI WebSocket
messages (ASGI spec, "WebSocket") with the event loop through bounded queues. The
loop half, which talks to the server, is ``_websocket_session``; neither side ever
blocks the other's thread:

- inbound, the loop stops calling ``receive()`` while the app has ``queue`` messages
  (or ``queue_bytes`` bytes) not yet read, so the server's own flow control holds the
  client back;
- outbound, ``send`` blocks while as much is waiting for the server to take it, so a
  slow client holds the app back instead of filling memory.

The connection's life is an explicit state machine (``WebSocketState`` and ``_ALLOWED``).
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from bridge._http import ClientDisconnected, invalid_value_reason, is_token
from bridge._types import Message


class WebSocketClosed(ClientDisconnected):
    """The WebSocket is closed: the client left, the app closed it, or the server is stopping.

    Raised by ``receive`` (once every message that arrived before the close has been
    read) and by ``send``. ``code`` is the close code (1000 normal, 1001 going away,
    1006 gone without a close frame) and ``reason`` its text.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WebSocketState(enum.Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"  # the handshake waits for the app to accept or refuse
    OPEN = "open"  # accepted; messages flow both ways
    CLOSED = "closed"  # closed by either side, refused, or the server is stopping


_ALLOWED: Final = {
    WebSocketState.CONNECTING: frozenset({WebSocketState.OPEN, WebSocketState.CLOSED}),
    WebSocketState.OPEN: frozenset({WebSocketState.CLOSED}),
    WebSocketState.CLOSED: frozenset[WebSocketState](),
}

#: RFC 6455 7.4.1: 1004 is reserved; 1005, 1006 and 1015 must never be sent.
_SENDABLE_CODES: Final = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})

#: Close code for a connection whose app raised (RFC 6455 7.4.1: "internal error").
INTERNAL_ERROR: Final = 1011


class End:
    """The worker's last post: the app has returned and its iterable is closed."""

    __slots__ = ()


END: Final = End()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WebSocket:
    """One WebSocket connection, used synchronously from the WSGI app's thread.

    The handshake request reaches the app as a ``GET`` whose environ holds this object
    under ``"bridge.websocket"``; routing, sessions and authentication work as for any
    request. Call :meth:`accept` (or :meth:`close` to refuse), then :meth:`receive`,
    :meth:`send` or iterate. Whatever the app returns after accepting is ignored (its
    ``close()`` is still called); an app that returns without accepting refuses the
    connection: the client gets the app's HTTP response where the server supports
    denial responses, else a 403.
    """

    __slots__ = (
        "_closed",
        "_inbox",
        "_inbox_bytes",
        "_lock",
        "_loop",
        "_outbox",
        "_outbox_bytes",
        "_pump_waiter",
        "_queue",
        "_queue_bytes",
        "_readable",
        "_reader_waiter",
        "_unsent",
        "_writable",
        "state",
        "subprotocols",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        subprotocols: Iterable[str] = (),
        *,
        queue: int = 16,
        queue_bytes: int = 1 << 20,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._queue_bytes = queue_bytes
        #: The subprotocols the client offered, in its order of preference.
        self.subprotocols: tuple[str, ...] = tuple(subprotocols)
        #: Where the connection is; see :class:`WebSocketState`.
        self.state = WebSocketState.CONNECTING
        self._closed: WebSocketClosed | None = None
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._writable = threading.Condition(self._lock)
        self._inbox: deque[str | bytes] = deque()
        self._inbox_bytes = 0
        self._outbox: deque[Message | End] = deque()
        self._outbox_bytes = 0  # bytes of messages posted and not yet taken by the server
        self._unsent = 0  # messages posted and not yet taken by the server
        self._pump_waiter: asyncio.Future[None] | None = None  # the loop waits for posts
        self._reader_waiter: asyncio.Future[None] | None = None  # the loop waits for room

    def __repr__(self) -> str:
        return f"<WebSocket {self.state.value}>"

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else ``None``."""
        closed = self._closed
        return None if closed is None else closed.code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed, else ``None``."""
        closed = self._closed
        return None if closed is None else closed.reason

    # -- worker side: the public API -------------------------------------------------

    def _enter(self, state: WebSocketState) -> None:
        if state not in _ALLOWED[self.state]:
            raise RuntimeError(f"WebSocket cannot go from {self.state.value!r} to {state.value!r}")
        self.state = state

    def _post_locked(self, message: Message | End) -> None:
        self._outbox.append(message)
        waiter, self._pump_waiter = self._pump_waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:  # the loop is closed: nobody is left to talk to
            self._close_locked(WebSocketClosed(1006, "the server's event loop has closed"))

    def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Complete the handshake, choosing ``subprotocol`` (one the client offered).

        ``headers`` are extra response headers (``(name, value)`` str pairs, latin-1).
        Raises :class:`WebSocketClosed` when the client has already left.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {list(self.subprotocols)})"
            )
        raw: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if not isinstance(name, str) or not is_token(name):
                raise ValueError(f"invalid header name {name!r}")
            problem = invalid_value_reason(value) if isinstance(value, str) else "not a str"
            if problem is not None:
                raise ValueError(f"invalid value for header {name!r}: {problem}")
            raw.append((name.lower().encode("ascii"), value.encode("latin-1")))
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._enter(WebSocketState.OPEN)
            self._post_locked(
                {"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw}
            )

    def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message: ``str`` for a text frame, ``bytes`` for a binary one.

        Blocks for at most ``timeout`` seconds (``None``: until a message comes) and
        raises ``TimeoutError`` when none came. Raises :class:`WebSocketClosed` once the
        connection is closed and every message received before that has been read.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self.state is WebSocketState.CONNECTING:
                raise RuntimeError("accept() the WebSocket before receiving")
            while not self._inbox:
                if self._closed is not None:
                    raise self._closed
                if deadline is None:
                    self._readable.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._readable.wait(remaining):
                        if self._inbox or self._closed is not None:
                            continue
                        raise TimeoutError(f"no WebSocket message within {timeout} s")
            message = self._inbox.popleft()
            self._inbox_bytes -= len(message)
            waiter, self._reader_waiter = self._reader_waiter, None
            if waiter is not None:
                self._wake(waiter)
            return message

    def __iter__(self) -> Iterator[str | bytes]:
        """Every message until the connection closes (then ``close_code`` says why)."""
        while True:
            try:
                yield self.receive()
            except WebSocketClosed:
                return

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send one message: a text frame for ``str``, a binary frame for bytes.

        Blocks while the outbound queue is full (a slow client holds the app back).
        Raises :class:`WebSocketClosed` when the connection is closed.
        """
        if isinstance(data, str):
            message: Message = {"type": "websocket.send", "text": data}
            size = len(data)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
            message = {"type": "websocket.send", "bytes": payload}
            size = len(payload)
        else:
            raise TypeError(f"WebSocket messages are str or bytes, not {type(data).__name__}")
        with self._lock:
            if self.state is WebSocketState.CONNECTING:
                raise RuntimeError("accept() the WebSocket before sending")
            while (
                self._unsent >= self._queue or self._outbox_bytes >= self._queue_bytes
            ) and self._closed is None:
                self._writable.wait()
            if self._closed is not None:
                raise self._closed
            self._outbox_bytes += size
            self._unsent += 1
            self._post_locked(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (or refuse it, before ``accept``); idempotent."""
        if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
            raise ValueError(f"{code} is not a close code an endpoint may send (RFC 6455 7.4)")
        if len(reason.encode("utf-8")) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8 (RFC 6455 5.5)")
        with self._lock:
            if self.state is WebSocketState.CLOSED:
                return
            self._close_locked(WebSocketClosed(code, reason))
            self._post_locked({"type": "websocket.close", "code": code, "reason": reason})

    def refuse(self, messages: Iterable[Message]) -> None:
        """Worker side, for the session: refuse the handshake with an HTTP response."""
        with self._lock:
            if self.state is WebSocketState.CLOSED:
                return
            self._close_locked(WebSocketClosed(1000, "refused"))
            for message in messages:
                self._post_locked(message)

    # -- shared ----------------------------------------------------------------------

    def _close_locked(self, closed: WebSocketClosed) -> None:
        """Enter CLOSED (lock held): every blocked or later call raises ``closed``."""
        if self._closed is None:
            self._closed = closed
        if self.state is not WebSocketState.CLOSED:
            self._enter(WebSocketState.CLOSED)
        self._readable.notify_all()
        self._writable.notify_all()

    # -- loop side -------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether the app has read enough for the loop to receive another message."""
        return len(self._inbox) < self._queue and self._inbox_bytes < self._queue_bytes

    def wait_for_room(self) -> asyncio.Future[None] | None:
        """A future the loop awaits until the app reads; ``None`` when there is room."""
        with self._lock:
            if self.has_room() or self._closed is not None:
                return None
            waiter = self._reader_waiter = self._loop.create_future()
            return waiter

    def deliver(self, data: str | bytes) -> None:
        """A message from the client, for the app's next ``receive``."""
        with self._lock:
            if self._closed is not None:
                return  # the app closed; the server still drains the socket
            self._inbox.append(data)
            self._inbox_bytes += len(data)
            self._readable.notify()

    def disconnected(self, code: int, reason: str = "") -> None:
        """The client has gone (``websocket.disconnect``)."""
        with self._lock:
            self._close_locked(WebSocketClosed(code, reason))

    def going_away(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """The server is stopping: close with ``code`` now, whatever the app is doing."""
        with self._lock:
            if self.state is WebSocketState.CLOSED:
                return
            self._close_locked(WebSocketClosed(code, reason))
            # Ahead of anything the app queued: it is not going to be read.
            self._outbox.appendleft({"type": "websocket.close", "code": code, "reason": reason})
            waiter, self._pump_waiter = self._pump_waiter, None
        if waiter is not None:
            _resolve(waiter)

    def take(self) -> tuple[deque[Message | End], asyncio.Future[None] | None]:
        """Everything posted so far, or (nothing and) a future resolved at the next post."""
        with self._lock:
            batch = self._outbox
            if batch:
                self._outbox = deque()
                return batch, None
            waiter = self._pump_waiter = self._loop.create_future()
            return batch, waiter

    def sent(self, count: int, size: int) -> None:
        """The server took ``count`` messages of ``size`` bytes: a blocked ``send`` goes on."""
        with self._lock:
            self._unsent -= count
            self._outbox_bytes -= size
            self._writable.notify_all()  # several app threads may share one connection

    def post(self, message: Message | End) -> None:
        """Worker side, for the session: queue a message that bypasses the state checks."""
        with self._lock:
            self._post_locked(message)
