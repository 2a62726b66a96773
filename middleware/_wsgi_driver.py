"""The WSGI (PEP 3333) driver: runs any core over ``environ`` / ``start_response``.

It translates the WSGI call into the neutral protocol of :mod:`middleware._core` and
back, and makes no policy decision of its own. It starts no threads and no event loops.

PEP 3333 facts that shape it:

* ``start_response`` may be called late, as long as it is called before the first
  non-empty body string reaches the server, so a core may hold the head until it has
  seen enough body to decide.
* ``close()`` of the app's iterable must be called once by whoever iterates it; the
  returned iterable's ``close()`` calls the inner one exactly once, and that is also
  when the request is complete (a server that stops early has lost its client).
* A ``wsgi.file_wrapper`` response may be sent with ``sendfile``; it is handed back as a
  file wrapper (never iterated here) and the core is told the body is opaque.
* A WebSocket handshake under ``WSGIToASGI`` is a ``GET`` whose environ carries the
  connection (``"bridge.websocket"``); it is run as the ASGI driver runs one.
* An app's exception goes to the server unchanged and the server answers 500 (its
  own response, outside any middleware): a WSGI middleware cannot both answer and
  re-raise. The core still learns of it (``Outcome.APP_EXCEPTION``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bridge._environ import _KEY_CACHE, environ_key
from bridge._http import ClientDisconnected, status_line
from bridge._request import (
    environ_client,
    environ_http_version,
    environ_root_path,
    environ_server,
    request_headers,
)
from bridge._types import Environ, Headers, OptExcInfo, StartResponse
from middleware._conversation import (
    AWAITING_START,
    COMPLETE,
    FINISHED,
    HEAD_HELD,
    STREAMING,
    Conversation,
    held_head_error,
)
from middleware._core import (
    AddHeaders,
    AddPlan,
    Core,
    Handler,
    Head,
    HeaderList,
    Outcome,
    ProtocolError,
    RequestHead,
    Response,
    handshake_headers,
)
from middleware._headers import all_known
from middleware._request import (
    STATE_KEY,
    check_header,
    check_root_path,
    check_scheme,
    request_state,
)

__all__ = ["WSGIDriver"]


_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Where WSGIToASGI puts a WebSocket connection in the handshake's environ.
_WEBSOCKET_KEY = "bridge.websocket"
_FILE_CHUNK = 65536


def _key(name: bytes) -> str:
    key = environ_key(name)
    if not key:
        # CGI cannot tell "a_b" from "a-b"; servers drop such headers, and so do we.
        raise ValueError(f"request header {name!r} cannot be expressed in a WSGI environ")
    return key


class EnvironHead(RequestHead):
    """The neutral request head over a WSGI ``environ``; changes go into the environ.

    Facts are read through bridge's environ translation, so they match the scope
    ``ASGIToWSGI`` builds from the same environ.
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: Environ) -> None:
        self.method = environ["REQUEST_METHOD"]
        self._environ = environ
        self._state = None

    def header(self, name: bytes) -> bytes | None:
        value = self._environ.get(_KEY_CACHE.get(name) or environ_key(name))
        return None if value is None else value.encode("latin-1")

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return request_headers(self._environ)

    @property
    def path(self) -> str:
        environ = self._environ
        path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.isascii():
            # PEP 3333 hands the raw path bytes over as latin-1 str; the URL is UTF-8.
            path = path.encode("latin-1").decode("utf-8", "replace")
        return path

    @property
    def root_path(self) -> str:
        return environ_root_path(self._environ)

    @property
    def query(self) -> bytes:
        query: str = self._environ.get("QUERY_STRING", "")
        return query.encode("latin-1")

    @property
    def scheme(self) -> str:
        scheme: str = self._environ.get("wsgi.url_scheme", "http")
        return scheme

    @property
    def client(self) -> tuple[str, int | None] | None:
        return environ_client(self._environ)

    @property
    def server(self) -> tuple[str, int | None] | None:
        return environ_server(self._environ)

    @property
    def http_version(self) -> str:
        return environ_http_version(self._environ)

    @property
    def state(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            state = self._state = self._environ.setdefault(STATE_KEY, {})
        return state

    def set_client(self, host: str, port: int | None = None) -> None:
        environ = self._environ
        environ["REMOTE_ADDR"] = host
        if port is None:
            environ.pop("REMOTE_PORT", None)
        else:
            environ["REMOTE_PORT"] = str(port)

    def set_scheme(self, scheme: str) -> None:
        self._environ["wsgi.url_scheme"] = check_scheme(scheme)

    def set_server(self, host: str, port: int | None = None) -> None:
        self._environ["SERVER_NAME"] = host
        self._environ["SERVER_PORT"] = _DEFAULT_PORTS[self.scheme] if port is None else str(port)

    def set_root_path(self, root_path: str) -> None:
        # PATH_INFO is already the path below the root: only SCRIPT_NAME changes.
        self._environ["SCRIPT_NAME"] = check_root_path(root_path).encode().decode("latin-1")

    def set_header(self, name: bytes, value: bytes) -> None:
        check_header(name, value)
        self._environ[_KEY_CACHE.get(name) or _key(name)] = value.decode("latin-1")

    def add_header(self, name: bytes, value: bytes) -> None:
        check_header(name, value)
        key = _KEY_CACHE.get(name) or _key(name)  # "" (dropped) is _key's to refuse
        text = value.decode("latin-1")
        environ = self._environ
        existing = environ.get(key)
        environ[key] = text if existing is None else existing + ", " + text

    def remove_header(self, name: bytes) -> None:
        check_header(name)
        self._environ.pop(_key(name), None)


class _NewEnvironHead(EnvironHead):
    """An :class:`EnvironHead` made without an ``__init__`` frame (the driver fills it in):
    ``type()`` then runs only C code, a fifth of what a do-nothing middleware costs."""

    __slots__ = ()
    __init__ = object.__init__


class _Input:
    """``wsgi.input`` with each chunk the app reads run through ``on_request_body``.

    ``more`` turns ``False`` with the chunk that completes ``CONTENT_LENGTH``, or with
    an empty read at the end of a body of unknown length.
    """

    __slots__ = ("_done", "_left", "_on_chunk", "_stream")

    def __init__(
        self, stream: Any, on_chunk: Callable[[bytes, bool], bytes], length: str | None
    ) -> None:
        self._stream = stream
        self._on_chunk = on_chunk
        self._left = int(length) if length and length.isdigit() else -1
        self._done = False

    def _through(self, data: bytes) -> bytes:
        if self._done:
            return data if not data else self._on_chunk(data, False)
        if data:
            if self._left >= 0:
                self._left = max(self._left - len(data), 0)
            more = self._left != 0
        else:
            more = False
        self._done = not more
        return self._on_chunk(data, more)

    def read(self, size: int | None = -1) -> bytes:
        return self._through(self._stream.read(-1 if size is None else size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._through(self._stream.readline(-1 if size is None else size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class _FilePart:
    """At most ``length`` bytes of ``file`` from where it stands, for a file wrapper.

    It has no ``fileno()`` on purpose: a server's ``sendfile`` may start at offset 0 or
    ignore Content-Length, so a part is read through ``read()`` on every server.
    """

    __slots__ = ("_file", "_left")

    def __init__(self, file: Any, length: int | None) -> None:
        self._file = file
        self._left = length

    def read(self, size: int = -1) -> bytes:
        left = self._left
        if left is None:
            data: bytes = self._file.read(size)
            return data
        if size < 0 or size > left:
            size = left
        data = self._file.read(size) if size else b""
        self._left = left - len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        # Without wsgi.file_wrapper the server iterates the part and closes it.
        return iter(lambda: self.read(_FILE_CHUNK), b"")

    def close(self) -> None:
        self._file.close()


# Status lines of cores' own responses, by code ("304 Not Modified" every time).
_STATUS_LINES: dict[int, str] = {}


def _status_line(code: int) -> str:
    line = status_line(code)
    if 100 <= code <= 999:  # a bounded key space, whatever a core passes
        _STATUS_LINES[code] = line
    return line


def _respond(
    environ: Environ, start_response: StartResponse, response: Response
) -> Iterable[bytes]:
    """A core's own response: bytes, the core's iterable, or a file (or part of one) by path."""
    code = response.status
    start_response(
        _STATUS_LINES.get(code) or _status_line(code), _to_wsgi_headers(response.headers)
    )
    if response.path is not None:
        # Unbuffered: the server reads in big blocks or sendfiles the descriptor, so a
        # BufferedReader would only add its own object and two syscalls (fstat, lseek).
        file = open(response.path, "rb", buffering=0)  # noqa: SIM115 - the server closes it
        whole = response.offset == 0 and response.length is None
        if not whole:
            file.seek(response.offset)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if file_wrapper is not None:
            wrapped: Iterable[bytes] = file_wrapper(
                file if whole else _FilePart(file, response.length), _FILE_CHUNK
            )
            return wrapped
        return _FilePart(file, response.length)
    if isinstance(response.body, bytes):
        return [response.body]
    return response.body  # the server iterates it and calls its close()


_DEFAULT_ON_REQUEST_BODY = Handler.on_request_body
# Bounds what one AddHeaders learns about an app's header names (app-chosen, and an
# app may echo a client's): at most this many names of at most _MAX_CLEAN_NAME chars.
_CLEAN_SIZE = 64
_MAX_CLEAN_NAME = 64
# Handler classes seen to be head_only with the default on_request_body: the driver
# skips straight to the head-only path for them. Bounded by the classes a program has.
_PLAIN_HEAD_ONLY: set[type[Handler]] = set()
# Handler classes seen to be neither head_only nor reading the request body (GZip,
# AccessLog): the driver runs them through _run_full. Bounded the same way.
_PLAIN_FULL: set[type[Handler]] = set()


# Whole header pairs repeat from response to response (Content-Type, Vary, the headers
# a core adds): converting each pair once turns two method calls and a tuple per header
# into one dict lookup. Bounded in bytes, since an app may invent pairs and echo what a
# client sent: only short pairs are kept, in memos cleared when full.
_PAIRS_IN: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_PAIRS_OUT: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_PAIR_CACHE_SIZE = 1024
_MAX_CACHED_PAIR = 256  # characters of name and value together: at most ~0.5 MiB per memo


def _pair_in(pair: tuple[str, str]) -> tuple[bytes, bytes]:
    name, value = pair
    converted = (name.lower().encode("latin-1"), value.encode("latin-1"))
    if len(name) + len(value) <= _MAX_CACHED_PAIR:
        if len(_PAIRS_IN) >= _PAIR_CACHE_SIZE:
            _PAIRS_IN.clear()
        _PAIRS_IN[pair] = converted
    return converted


def _pair_out(pair: tuple[bytes, bytes]) -> tuple[str, str]:
    name, value = pair
    converted = (name.decode("latin-1"), value.decode("latin-1"))
    if len(name) + len(value) <= _MAX_CACHED_PAIR:
        if len(_PAIRS_OUT) >= _PAIR_CACHE_SIZE:
            _PAIRS_OUT.clear()
        _PAIRS_OUT[pair] = converted
    return converted


# Status lines repeat too ("200 OK"); a str key hashes once per string object.
_CODES: dict[str, int] = {}


def _code(status: str) -> int:
    code = int(status[:3])
    if len(status) <= _MAX_CACHED_PAIR:
        if len(_CODES) >= _PAIR_CACHE_SIZE:
            _CODES.clear()
        _CODES[status] = code
    return code


def _to_neutral_headers(headers: Headers) -> HeaderList:
    get = _PAIRS_IN.get
    try:
        return [get(pair) or _pair_in(pair) for pair in headers]
    except TypeError:  # pairs given as lists (unhashable): convert each, keep nothing
        return [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]


def _to_wsgi_headers(headers: HeaderList) -> Headers:
    get = _PAIRS_OUT.get
    try:
        return [get(pair) or _pair_out(pair) for pair in headers]
    except TypeError:  # a bytearray value (unhashable): convert each, keep nothing
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


class _Exchange(Conversation):
    """One request's trip through a core: a ``start_response``/``write`` pair for the app.

    It is its own conversation (a subclass, not a second object): one object less per
    request, and the phase is one attribute away."""

    __slots__ = (
        "_app_headers",
        "_code",
        "_exc_info",
        "_neutral",
        "_outer_start",
        "_outer_write",
        "_status",
        "sent_headers",
    )

    def __init__(self, handler: Handler, start_response: StartResponse) -> None:
        self.handler = handler  # Conversation.__init__, inlined
        self.phase = AWAITING_START
        self._outer_start = start_response
        self._outer_write: Callable[[bytes], object] | None = None
        self._status = ""
        self._code = 0
        self._app_headers: Headers = []
        self._neutral: HeaderList = []
        self._exc_info: OptExcInfo | None = None
        self.sent_headers: Headers = []

    def start_response(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        phase = self.phase
        if exc_info is not None and exc_info[0] is not None:
            if phase is not AWAITING_START and phase is not HEAD_HELD:
                # PEP 3333: the headers already went out; re-raise the app's error.
                raise exc_info[1].with_traceback(exc_info[2])
        elif phase is not AWAITING_START:
            raise RuntimeError("start_response() called twice without exc_info (PEP 3333)")
        code = _CODES.get(status) or _code(status)
        try:  # _to_neutral_headers, inlined (it is the fallback)
            converted = [_PAIRS_IN.get(pair) or _pair_in(pair) for pair in headers]
        except TypeError:
            converted = _to_neutral_headers(headers)
        self._status = status
        self._code = code
        self._app_headers = headers
        self._neutral = converted
        # Conversation.start, inlined (the phase was checked above).
        result = self.handler.on_response_start(code, converted)
        self.phase = HEAD_HELD if result is None else STREAMING
        if result is None:
            self._exc_info = exc_info
        elif result[1] is converted and result[0] == code:
            # Unchanged (a rule of _core): _emit_head's shortest case, inlined.
            self.sent_headers = headers
            self._outer_write = self._outer_start(status, headers, exc_info)
        else:
            self._emit_head(result, exc_info)
        return self.write

    def _emit_head(self, head: Head, exc_info: OptExcInfo | None = None) -> None:
        code, headers = head
        # Keep the app's own reason phrase unless a core changed the status.
        status = self._status if code == self._code else status_line(code)
        # The same list back means unchanged (a rule of _core): the app's own headers go
        # out as they were, names in the app's case, with no conversion.
        if headers is self._neutral:
            wsgi_headers = self._app_headers
        else:
            try:  # _to_wsgi_headers, inlined (it is the fallback)
                wsgi_headers = [_PAIRS_OUT.get(pair) or _pair_out(pair) for pair in headers]
            except TypeError:
                wsgi_headers = _to_wsgi_headers(headers)
        self.sent_headers = wsgi_headers
        self._outer_write = self._outer_start(status, wsgi_headers, exc_info)

    def pass_body(self, chunk: bytes, more: bool) -> bytes:
        """Run one chunk through the core; emit the head when the core releases it."""
        phase = self.phase
        if phase is not STREAMING and phase is not HEAD_HELD:
            raise RuntimeError("the app sent body before calling start_response() (PEP 3333)")
        head, out = self.body(chunk, more)
        if head is not None:
            exc_info, self._exc_info = self._exc_info, None
            self._emit_head(head, exc_info)
        return out

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable (PEP 3333) for imperative apps."""
        if not data:
            return
        out = self.pass_body(data, True)
        if out:
            outer_write = self._outer_write
            if outer_write is None:  # pragma: no cover - the conversation forbids it
                raise ProtocolError("body bytes before the head was released")
            outer_write(out)

    def pass_opaque(self) -> None:
        """The body is a file wrapper the server may ``sendfile``: release the head unchanged."""
        head = self.opaque()
        if head is not None:
            exc_info, self._exc_info = self._exc_info, None
            self._emit_head(head, exc_info)


class _Body:
    """The iterable handed to the server: the app's body, run through the core."""

    __slots__ = ("_exchange", "_iterator", "_outcome", "_remaining", "_result", "_sent")

    def __init__(self, exchange: _Exchange, result: Iterable[bytes]) -> None:
        self._exchange = exchange
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._outcome = Outcome.CLIENT_DISCONNECTED  # unless the body runs to its end
        # A list or tuple says which chunk is the last, so the core can treat a one-item
        # body as complete (exact Content-Length) instead of as a stream.
        self._remaining = len(result) if isinstance(result, (list, tuple)) else -1
        self._sent = 0  # body bytes handed to the server

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        exchange = self._exchange
        phase = exchange.phase
        if phase is COMPLETE or phase is FINISHED:
            raise StopIteration
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self._result)
        try:
            for chunk in iterator:
                remaining = self._remaining = self._remaining - 1
                if remaining == 0:
                    out = exchange.pass_body(chunk, False)
                    break
                if chunk:
                    out = exchange.pass_body(chunk, True)
                    if out:
                        self._sent += len(out)
                        return out
            else:
                if exchange.phase is AWAITING_START:
                    raise StopIteration  # no start_response: the server reports the app's bug
                out = exchange.pass_body(b"", False)
        except (ClientDisconnected, StopIteration):
            raise  # the client went away (wsgi.input), or the end of the body
        except BaseException:
            self._outcome = Outcome.APP_EXCEPTION
            raise
        self._outcome = Outcome.COMPLETED
        if out:
            self._sent += len(out)
            return out
        raise StopIteration

    def _sent_content_length(self) -> bool:
        """Whether the server has every byte the response declared (it may stop there)."""
        for name, value in self._exchange.sent_headers:
            if name.lower() == "content-length":
                declared = value.strip()
                return declared.isdigit() and int(declared) == self._sent
        return False

    def close(self) -> None:
        conversation = self._exchange
        if conversation.phase is FINISHED:
            return
        if self._outcome is Outcome.CLIENT_DISCONNECTED and self._sent_content_length():
            # PEP 3333 lets a server stop iterating once Content-Length bytes are out
            # (WSGIToASGI does): that response is complete, not abandoned.
            self._outcome = Outcome.COMPLETED
        # Finished before the app's close() runs (it may re-enter); the handler hears
        # the outcome after it, so an access log's duration includes close().
        conversation.end()
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            conversation.handler.on_complete(self._outcome)


class _FileProxy:
    """A file object for a new file wrapper: ``close()`` also completes the request."""

    def __init__(self, filelike: Any, on_close: Callable[[], None]) -> None:
        self._filelike = filelike
        self._on_close: Callable[[], None] | None = on_close

    def __getattr__(self, name: str) -> Any:
        # fileno/read/seek/tell go straight to the real file, so sendfile still works.
        return getattr(self._filelike, name)

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is None:
            return
        try:
            close = getattr(self._filelike, "close", None)
            if close is not None:
                close()
        finally:
            on_close()


def _wrap_file(environ: Environ, exchange: _Exchange, result: Any) -> Iterable[bytes]:
    exchange.pass_opaque()
    conversation = exchange

    def complete() -> None:
        conversation.finish(Outcome.COMPLETED)

    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](
        _FileProxy(result.filelike, complete), getattr(result, "blksize", 8192)
    )
    return wrapper


_DEFAULT_ON_COMPLETE = Handler.on_complete


def _run_list(exchange: _Exchange, result: list[bytes]) -> list[bytes]:
    if len(result) == 1:
        # The usual list: one chunk, the whole body (_Exchange.body, inlined).
        head, data = exchange.body(result[0], False)
        if head is not None:
            exc_info, exchange._exc_info = exchange._exc_info, None
            exchange._emit_head(head, exc_info)
        return [data] if data else []
    out: list[bytes] = []
    last = len(result) - 1
    for index, chunk in enumerate(result):
        if index == last:
            data = exchange.pass_body(chunk, False)
        elif chunk:
            data = exchange.pass_body(chunk, True)
        else:
            continue
        if data:
            out.append(data)
    if last < 0:
        exchange.pass_body(b"", False)
    return out


class _CompletingList(list[bytes]):
    """A whole one-chunk body handed to the server as a list, whose ``close()`` tells
    the handler the request is complete.

    The chunk already went through the core, so nothing is left to run per chunk; this
    replaces the :class:`_Body` iterator (two ``__next__`` calls and a ``close()`` that
    looks for the app's). What it cannot see is a server that closes it without taking
    the chunk: :class:`_Body` already reports a one-chunk body complete once handed out.
    """

    __slots__ = ("_conversation",)
    _conversation: Conversation

    def close(self) -> None:
        conversation = self._conversation
        if conversation.phase is not FINISHED:  # Conversation.finish, inlined
            conversation.phase = FINISHED
            conversation.handler.on_complete(Outcome.COMPLETED)


class _NewExchange(_Exchange):
    """An :class:`_Exchange` made without an ``__init__`` frame (:func:`_run_full` fills it)."""

    __slots__ = ()
    __init__ = object.__init__


def _run_full(
    app: Any, handler: Handler, environ: Environ, start_response: StartResponse
) -> Iterable[bytes]:
    """A handler that may hold the head or rewrite the body, and reads no request body.

    The usual response, a one-chunk list (a JSON answer, a rendered page), is run
    through the core right here with the conversation's steps inlined: the floor of a
    body-rewriting middleware such as GZip, and of one that only waits for the end of
    the response (AccessLog), which gets a :class:`_CompletingList`. Anything else goes
    the general way (:func:`_finish_full`).
    """
    exchange = _NewExchange()  # _Exchange.__init__, inlined
    conversation: Conversation = exchange  # its own (see _Exchange)
    exchange.handler = handler
    exchange.phase = AWAITING_START
    exchange._outer_start = start_response
    exchange._outer_write = None
    exchange._status = ""
    exchange._code = 0
    exchange._app_headers = []
    exchange._neutral = []
    exchange._exc_info = None
    exchange.sent_headers = []
    try:
        result = app(environ, exchange.start_response)
    except BaseException:
        conversation.finish(Outcome.APP_EXCEPTION)
        raise
    phase = conversation.phase
    if (
        type(result) is not list
        or len(result) != 1
        or not (phase is HEAD_HELD or phase is STREAMING)
    ):
        return _finish_full(handler, exchange, environ, result)
    try:
        # Conversation.body for the last chunk, inlined.
        out = handler.on_body(result[0], False)
        if phase is HEAD_HELD:
            head = handler.pending_head()
            if head is None:
                raise ProtocolError(
                    f"{type(handler).__name__} still held the head after the last body "
                    "chunk (pending_head() returned None when more=False)"
                )
            conversation.phase = COMPLETE
            # _Exchange._emit_head, inlined.
            code, headers = head
            status = exchange._status if code == exchange._code else status_line(code)
            if headers is exchange._neutral:
                wsgi_headers = exchange._app_headers
            else:
                try:
                    wsgi_headers = [_PAIRS_OUT.get(pair) or _pair_out(pair) for pair in headers]
                except TypeError:
                    wsgi_headers = _to_wsgi_headers(headers)
            exc_info, exchange._exc_info = exchange._exc_info, None
            exchange.sent_headers = wsgi_headers
            exchange._outer_write = start_response(status, wsgi_headers, exc_info)
        else:
            conversation.phase = COMPLETE
    except BaseException:
        conversation.finish(Outcome.APP_EXCEPTION)
        raise
    if type(handler).on_complete is _DEFAULT_ON_COMPLETE:
        conversation.phase = FINISHED  # nobody to tell
        return [out] if out else []
    body = _CompletingList([out] if out else [])
    body._conversation = conversation
    return body


def _finish_full(
    handler: Handler, exchange: _Exchange, environ: Environ, result: Iterable[bytes]
) -> Iterable[bytes]:
    """The app returned: hand the server its body, run through the core."""
    if (
        type(result) is list
        and exchange.phase is not AWAITING_START
        and type(handler).on_complete is _DEFAULT_ON_COMPLETE
    ):
        # The whole body is already in memory and nobody waits for the end of the
        # response: run it through the core now and hand the server a list (which
        # also lets it send a Content-Length for a one-item body).
        return _run_list(exchange, result)
    file_wrapper = environ.get("wsgi.file_wrapper")
    if (
        isinstance(file_wrapper, type)
        and isinstance(result, file_wrapper)
        and hasattr(result, "filelike")
        and exchange.phase is not AWAITING_START
    ):
        try:
            return _wrap_file(environ, exchange, result)
        except BaseException:
            # A handler broke the conversation: the app's file must still close.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise
    return _Body(exchange, result)


def _head_start(handler: Handler, start_response: StartResponse) -> StartResponse:
    """``start_response`` for a ``head_only`` handler: rewrite the head, nothing else.

    A closure rather than an object: this is the whole per-request cost of a head-only
    middleware such as CORS, and a closure is made without a Python ``__init__`` frame.
    """

    def start(
        status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        code = _CODES.get(status) or _code(status)
        # _to_neutral_headers and _to_wsgi_headers inlined (they fall back to them).
        try:
            neutral = [_PAIRS_IN.get(pair) or _pair_in(pair) for pair in headers]
        except TypeError:
            neutral = _to_neutral_headers(headers)
        head = handler.on_response_start(code, neutral)
        if head is None:
            raise held_head_error(handler)
        out_code, out = head
        if out is neutral:
            converted = headers  # unchanged (a rule of _core): the app's own list
        else:
            try:
                converted = [_PAIRS_OUT.get(pair) or _pair_out(pair) for pair in out]
            except TypeError:
                converted = _to_wsgi_headers(out)
        if out_code != code:
            status = status_line(out_code)
        # exc_info rules (re-raise once the head is out) are the server's to apply.
        return start_response(status, converted, exc_info)

    return start


def _learn_wsgi(add: AddHeaders, memo: AddPlan, headers: Headers) -> bool:
    """Whether ``headers`` (an app's) name none of ``add``'s, in any case; names that
    pass are remembered as the app spelt them, so the next head is checked in one short pass."""
    names = memo.wsgi_names
    if names is None:
        names = memo.wsgi_names = frozenset([name.decode("latin-1") for name in memo.names])
    clean = memo.wsgi
    if clean is None:
        clean = memo.wsgi = set()
    passed = True
    for pair in headers:
        name = pair[0]
        if name.lower() in names:
            passed = False
        elif type(name) is str and len(clean) < _CLEAN_SIZE and len(name) <= _MAX_CLEAN_NAME:
            # Only str names are remembered: bytes (not PEP 3333, passed on as before)
            # can never equal one of ours, but a bytes subclass is not worth trusting.
            clean.add(name)
    return passed


class _AddingStart:
    """One request's ``start_response`` that applies an :class:`AddHeaders`: the app's
    own headers go out as they are unless they name one of ``add``'s (then the merge,
    rare, is done in bytes).

    A slotted object made without an ``__init__`` frame whose bound :meth:`start` the
    app calls: cheaper per request than a closure, and the app's call stays
    specialised (every request's bound method wraps the same function).
    """

    __slots__ = ("add", "clean", "start_response", "tail")

    __init__ = object.__init__

    add: AddHeaders
    clean: set[str]  # add._plan.wsgi: names seen to be none of ours
    start_response: StartResponse
    tail: Headers  # add's headers as WSGI pairs

    def start(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        # Names already seen to be none of ours (in the app's spelling).
        if all_known(headers, self.clean) or _learn_wsgi(self.add, self.add._plan, headers):
            tail = self.tail
            out = headers + tail if type(headers) is list else [*headers, *tail]
        else:
            out = _to_wsgi_headers(self.add.merged(_to_neutral_headers(headers)))
        return self.start_response(status, out, exc_info)


_new_adding_start = _AddingStart  # type() of a class whose __init__ is object's: C code only


def _adding_start(add: AddHeaders, start_response: StartResponse) -> StartResponse:
    """``start_response`` that applies ``add`` (see :class:`_AddingStart`)."""
    tail = add._wsgi
    if tail is None:
        # Once per AddHeaders: a core that returns a shared one converts it once.
        tail = add._wsgi = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in add._tail
        ]
    plan = add._plan
    clean = plan.wsgi
    if clean is None:
        clean = plan.wsgi = set()
    adding: _AddingStart = _new_adding_start()
    adding.add = add
    adding.clean = clean
    adding.start_response = start_response
    adding.tail = tail
    start: StartResponse = adding.start
    return start


class WSGIDriver:
    """Mixin giving a middleware a WSGI ``__call__`` that runs its core."""

    __slots__ = ()
    app: Any
    _core: Core
    _on_request: Callable[[RequestHead], Handler | Response | AddHeaders | None]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if _WEBSOCKET_KEY in environ:
            return self._handshake(environ, start_response)
        head = _NewEnvironHead()
        head.method = environ["REQUEST_METHOD"]
        head._environ = environ
        head._state = None
        handler = self._on_request(head)
        state = head._state
        if state is None:
            if handler is None:
                result: Iterable[bytes] = self.app(environ, start_response)
                return result  # the do-nothing path, kept shortest
            if type(handler) is Response:  # StaticFiles and other answers, inlined
                return _respond(environ, start_response, handler)
            if type(handler) is AddHeaders:  # fixed headers (SecurityHeaders), inlined
                result = self.app(environ, _adding_start(handler, start_response))
                return result  # noqa: RET504 - typed for mypy
            if (
                type(handler) in _PLAIN_HEAD_ONLY
                and isinstance(handler, Handler)  # always, in the set; narrows the type
                and handler.head_only
            ):
                # CORS and the like, inlined: the body, write() and close() stay the
                # app's own, only start_response is wrapped.
                result = self.app(environ, _head_start(handler, start_response))
                return result  # noqa: RET504 - typed for mypy
            if (
                type(handler) in _PLAIN_FULL
                and isinstance(handler, Handler)  # always, in the set; narrows the type
                and not handler.head_only
            ):
                return _run_full(self.app, handler, environ, start_response)
            return self._dispatch(handler, environ, start_response)
        token = request_state.set(state)
        try:
            return self._dispatch(handler, environ, start_response)
        finally:
            request_state.reset(token)

    def _handshake(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """A WebSocket handshake (``WSGIToASGI`` hands one over as a ``GET`` carrying the
        connection): seen only by a core with ``websocket_handshakes``, as on ASGI. A
        response refuses it (bridge sends it as the denial); a handler is not used."""
        result: Iterable[bytes]
        if not self._core.websocket_handshakes:
            result = self.app(environ, start_response)
            return result
        head = EnvironHead(environ)
        answer = self._on_request(head)
        if isinstance(answer, Response):
            answer = answer._replace(headers=handshake_headers(answer.headers))
            return _respond(environ, start_response, answer)
        state = head._state
        if state is None:
            result = self.app(environ, start_response)
            return result
        token = request_state.set(state)
        try:
            result = self.app(environ, start_response)
            return result
        finally:
            request_state.reset(token)

    def _dispatch(
        self,
        handler: Handler | Response | AddHeaders | None,
        environ: Environ,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        if handler is None:
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        if isinstance(handler, AddHeaders):
            added: Iterable[bytes] = self.app(environ, _adding_start(handler, start_response))
            return added
        if isinstance(handler, Response):
            return _respond(environ, start_response, handler)
        if type(handler).on_request_body is not _DEFAULT_ON_REQUEST_BODY:
            environ["wsgi.input"] = _Input(
                environ["wsgi.input"], handler.on_request_body, environ.get("CONTENT_LENGTH")
            )
        elif type(handler).head_only:
            _PLAIN_HEAD_ONLY.add(type(handler))
        if handler.head_only:
            # The body, write() and close() stay the app's own: nothing to wrap.
            head_result: Iterable[bytes] = self.app(environ, _head_start(handler, start_response))
            return head_result
        if type(handler).on_request_body is _DEFAULT_ON_REQUEST_BODY:
            _PLAIN_FULL.add(type(handler))
        return _run_full(self.app, handler, environ, start_response)
