"""AccessLog: one stdlib ``logging`` record per request, written when it is complete.

The message uses gunicorn's access-log atoms (``%(h)s``, ``%(r)s``, ``%(s)s`` ...,
``%({header}i)s`` for a request header and ``%({header}o)s`` for a response header):
only the atoms the format names are computed, ``logging`` formats the message (the
record's ``msg`` is the format, its ``args`` the atoms) only if a handler emits it, and
no record is built at all when the logger is not enabled for the level. The same facts
go on the record as ``record.http`` (a dict) for JSON formatters.

Status is 499 (nginx's "client closed request") when the client went away before the
response was complete, and 500 when the app raised; the exception itself propagates
unchanged. Bytes are body bytes as they left this middleware (after any inner
compression); for an opaque body (pathsend, file wrapper) the ``Content-Length``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Collection
from threading import current_thread, get_ident, local
from typing import Any

from middleware._headers import find
from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, Outcome, RequestHead

__all__ = ["DEFAULT_FORMAT", "AccessLog"]

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
"""gunicorn's default ``access_log_format``."""

# What a client can put in a log line must not forge or disguise one (CWE-117). Every
# atom a client can influence (path, query, method, protocol, headers, user, and the
# client address, which is X-Forwarded-For under a server's proxy-headers option) goes
# through _escape: a character is kept only if it is printable (str.isprintable: no
# C0/C1 control, DEL, line or paragraph separator, Unicode format control such as the
# bidi overrides U+202A-U+202E and isolates U+2066-U+2069, zero-width characters,
# surrogates, private-use or unassigned code points, nor any space but ASCII space) and
# is not the quote or backslash that delimit fields. The rest is written as \xHH,
# \uHHHH or \UHHHHHHHH; since a backslash itself becomes \x5C, a reader can always
# tell an escape from text the client sent.
_KEPT = frozenset('"\\')  # printable, yet escaped


def _escape_code(code: int) -> str:
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _escape(text: str) -> str:
    """``text`` safe for one log line: see the rules above."""
    if text.isprintable():
        # The common case, decided in C: only the delimiters may need escaping
        # (backslashes first, so the quote's escape is not escaped again).
        if '"' in text or "\\" in text:
            return text.replace("\\", "\\x5C").replace('"', "\\x22")
        return text
    return "".join(
        char if char.isprintable() and char not in _KEPT else _escape_code(ord(char))
        for char in text
    )


_PLAIN_ATOMS = frozenset(
    ["h", "l", "u", "t", "r", "s", "m", "U", "q", "H", "b", "B", "f", "a", "T", "D", "M", "L", "p"]
) | {"request_id"}  # what RequestID (inside this middleware) handed the app
_ATOM = re.compile(r"%\(([^)]*)\)")
_HEADER_ATOM = re.compile(r"\{([^}]+)\}([io])\Z")
CLIENT_CLOSED_REQUEST = 499
_COMPLETED = Outcome.COMPLETED
_DISCONNECTED = Outcome.CLIENT_DISCONNECTED
_perf_counter = time.perf_counter
_time = time.time


# The %(t)s text of the last second seen: requests in the same second share it, which
# saves a localtime() and a strftime() per line. One entry, replaced as a whole.
_last_time: tuple[int, str] = (-1, "")


def _request_time(wall: float) -> str:
    global _last_time
    second = int(wall)
    cached = _last_time
    if cached[0] == second:
        return cached[1]
    text = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
    _last_time = (second, text)
    return text


def _text(value: bytes | None) -> str:
    return "-" if value is None else _escape(value.decode("latin-1"))


def _basic_user(value: bytes | None) -> str | None:
    if value is None or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


class _AccessHandler(Handler):
    __slots__ = (
        "core",
        "duration",
        "fields",
        "head",
        "response_headers",
        "sent",
        "start",
        "status",
        "ttfb",
        "wall",
    )

    fields: dict[str, Any]  # record.http, set in on_complete

    def __init__(self, core: _AccessLogCore, head: RequestHead) -> None:
        # What _AccessLogCore.on_request does inline (without this frame).
        self.core = core
        self.head = head
        self.start = _perf_counter()
        self.wall = _time()
        self.status = 0
        self.sent = 0
        self.ttfb: float | None = None
        self.duration = 0.0
        self.response_headers: HeaderList = []

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        self.status = status
        self.response_headers = headers
        if self.ttfb is None:
            self.ttfb = _perf_counter() - self.start
        return status, headers

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        self.sent += len(chunk)
        return chunk

    def on_opaque_body(self) -> Head | None:
        length = find(self.response_headers, b"content-length")
        if length is not None and length.isdigit():
            self.sent = int(length)
        return None

    def on_complete(self, outcome: Outcome) -> None:
        # The whole line is built in this one frame (atoms of the default format
        # inline, no per-atom call): it is most of AccessLog's per-request cost.
        duration = self.duration = _perf_counter() - self.start
        if outcome is _COMPLETED:
            status = self.status
            name = "completed"
        elif outcome is _DISCONNECTED:
            status = self.status = CLIENT_CLOSED_REQUEST
            name = "client_disconnected"
        else:
            status = self.status = 500
            name = "app_exception"
        head = self.head
        core = self.core
        client = head.client
        host = None if client is None else client[0]
        agent = head.header(b"user-agent")
        user_agent = None if agent is None else agent.decode("latin-1")
        referer = head.header(b"referer")
        referer_text = None if referer is None else referer.decode("latin-1")
        method = head.method
        path = head.path
        query = head.query.decode("latin-1")
        version = head.http_version
        fields = self.fields = {
            "method": method,
            "path": path,
            "query": query,
            "status": status,
            "bytes": self.sent,
            "duration": duration,
            "ttfb": self.ttfb,
            "client": host,
            "user_agent": user_agent,
            "referer": referer_text,
            "http_version": version,
            "scheme": head.scheme,
            "outcome": name,
            # What inner middleware handed the app (a request id...), via the public API.
            "state": dict(head.state),
        }
        # The format's atoms; logging still does the % formatting (the record's msg is
        # the format, its args this mapping), only if a handler emits.
        if core._default:
            line = (
                f"{method} {path}?{query} HTTP/{version}"
                if query
                else (f"{method} {path} HTTP/{version}")
            )
            authorization = head.header(b"authorization")
            wall = self.wall
            cached = _last_time  # _request_time's memo, read here first: no call per line
            # _escape's common case (printable, no delimiter) tested inline: a call per
            # atom was a tenth of the line's cost.
            if host is None:
                host_text = "-"
            else:
                host_text = str(host)
                if not host_text.isprintable() or '"' in host_text or "\\" in host_text:
                    host_text = _escape(host_text)
            if not line.isprintable() or '"' in line or "\\" in line:
                line = _escape(line)
            if referer_text is None:
                referer_text = "-"
            elif not referer_text.isprintable() or '"' in referer_text or "\\" in referer_text:
                referer_text = _escape(referer_text)
            if user_agent is None:
                agent_text = "-"
            elif not user_agent.isprintable() or '"' in user_agent or "\\" in user_agent:
                agent_text = _escape(user_agent)
            else:
                agent_text = user_agent
            atoms: dict[str, object] = {
                "h": host_text,
                "l": "-",
                "u": "-" if authorization is None else _escape(_basic_user(authorization) or "-"),
                "t": cached[1] if cached[0] == int(wall) else _request_time(wall),
                "r": line,
                "s": status,
                "b": self.sent,
                "f": referer_text,
                "a": agent_text,
            }
        else:
            atoms = {"l": "-"}  # never empty: logging takes it as the mapping
            for atom, get in core._getters:
                atoms[atom] = get(self)
        # No logger.log(): it walks the stack to find the caller (the costliest step,
        # and the caller is always this module anyway).
        core._logger.handle(
            core._records.make(core._level, core._format, atoms, fields, self.wall + duration)
        )


def _micros(h: _AccessHandler) -> int:
    return round(h.duration * 1_000_000)


def _client(h: _AccessHandler) -> object:
    # X-Forwarded-For under proxy headers (uvicorn, gunicorn): client-chosen.
    client = h.fields["client"]
    return _escape(str(client)) if client is not None else "-"


def _request_line(h: _AccessHandler) -> object:
    fields = h.fields
    query = fields["query"]
    target = fields["path"] + ("?" + query if query else "")
    return _escape(f"{fields['method']} {target} HTTP/{fields['http_version']}")


def _optional(key: str) -> Callable[[_AccessHandler], object]:
    def get(h: _AccessHandler) -> object:
        value = h.fields[key]
        return "-" if value is None else _escape(value)

    return get


def _escaped(key: str) -> Callable[[_AccessHandler], object]:
    def get(h: _AccessHandler) -> object:
        return _escape(h.fields[key])

    return get


# gunicorn's atoms, each computed from the finished request: only the atoms a format
# uses are looked up, once, when the core is made (no per-atom dispatch per line).
_GETTERS: dict[str, Callable[[_AccessHandler], object]] = {
    "h": _client,
    "l": lambda h: "-",
    "u": lambda h: _escape(_basic_user(h.head.header(b"authorization")) or "-"),
    "t": lambda h: _request_time(h.wall),
    "r": _request_line,
    "s": lambda h: h.status,
    "m": _escaped("method"),
    "U": _escaped("path"),
    "q": _escaped("query"),
    "H": lambda h: _escape(f"HTTP/{h.fields['http_version']}"),
    "b": lambda h: h.sent,
    "B": lambda h: h.sent,
    "f": _optional("referer"),
    "a": _optional("user_agent"),
    "request_id": lambda h: _escape(str(h.head.state.get("request_id", "-"))),
    "T": lambda h: _micros(h) // 1_000_000,
    "D": _micros,
    "M": lambda h: _micros(h) // 1000,
    "L": lambda h: f"{_micros(h) // 1_000_000}.{_micros(h) % 1_000_000:06d}",
    "p": lambda h: f"<{os.getpid()}>",
}


def _getter(atom: str) -> Callable[[_AccessHandler], object]:
    plain = _GETTERS.get(atom)
    if plain is not None:
        return plain
    match = _HEADER_ATOM.match(atom)
    if match is None:  # pragma: no cover - _check_format refused it
        raise ValueError(f"unknown atom {atom!r}")
    name = match.group(1).lower().encode("latin-1")
    if match.group(2) == "i":
        return lambda h: _text(h.head.header(name))
    return lambda h: _text(find(h.response_headers, name))


class _Records:
    """Makes this logger's records as ``Logger.makeRecord`` would, from a template.

    The parts of a ``LogRecord`` that never change for one logger, level and format
    (names, level name, path, file and module: most of ``LogRecord.__init__``) are
    computed once; each record copies them and sets the time, thread and process.
    Used only while logging's own factory and ``makeRecord`` are in place, so a
    program's ``setLogRecordFactory`` or Logger subclass is still honoured.
    """

    __slots__ = ("_forks", "_logger", "_template")

    def __init__(self, logger: logging.Logger, level: int, fmt: str) -> None:
        self._logger = logger
        self._forks = -1
        self._template: dict[str, Any] = {}
        self._refresh(level, fmt)

    def _refresh(self, level: int, fmt: str) -> None:
        # A record made the stdlib way: a forked worker (a new pid) refreshes it.
        record = logging.LogRecord(
            self._logger.name, level, __file__, 0, fmt, None, None, "AccessLog"
        )
        self._template = dict(vars(record))
        self._forks = _forks

    def make(
        self, level: int, fmt: str, args: dict[str, object], http: dict[str, Any], now: float
    ) -> Any:
        """The record, created at ``now`` (a ``time.time()`` value)."""
        logger = self._logger
        if (
            _LOGGING["_logRecordFactory"] is not _LogRecord  # getLogRecordFactory(), no frame
            or type(logger).makeRecord is not _MAKE_RECORD
        ):
            return logger.makeRecord(
                logger.name, level, __file__, 0, fmt, (args,), None, "AccessLog", {"http": http}
            )
        if self._forks != _forks:
            self._refresh(level, fmt)
        # A copy of the template becomes the record's __dict__: one C copy rather than
        # an insert per attribute into the new record's own dict.
        values = self._template.copy()
        values["args"] = args
        values["created"] = now
        # LogRecord's int((now - int(now)) * 1000) + 0.0, in float arithmetic alone: for
        # a positive time, now % 1.0 is exactly now - int(now), and // 1.0 truncates.
        values["msecs"] = now % 1.0 * 1000 // 1.0
        values["relativeCreated"] = (now - _START) * 1000
        if values["thread"] is not None:
            values["thread"] = get_ident()
            try:
                thread = _threads.current
            except AttributeError:
                thread = _threads.current = current_thread()
            values["threadName"] = thread.name
        if "taskName" in values:  # Python 3.12+
            values["taskName"] = _task_name()
        values["http"] = http
        record = _new(_LogRecord)
        record.__dict__ = values
        return record


_LogRecord = logging.LogRecord
# logging's globals: what logging.getLogRecordFactory() returns is read from here.
_LOGGING: dict[str, Any] = vars(logging)
_MAKE_RECORD = logging.Logger.makeRecord
_START: float = getattr(logging, "_startTime", time.time())
_new = object.__new__
# The Thread object of each thread that logged (its name is read per record, as logging
# does): threading.current_thread() costs more than the rest of the record's thread facts.
_threads = local()
# Forks seen by this process: a forked worker (new pid, maybe a new process name) makes
# its template again, found without a getpid() system call per record.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forked)


def _task_name() -> str | None:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or not getattr(logging, "logAsyncioTasks", True):
        return None
    try:
        task = asyncio.current_task()
    except Exception:
        return None
    return None if task is None else str(task.get_name())


class _AccessLogCore(Core):
    __slots__ = ("_default", "_exclude", "_format", "_getters", "_level", "_logger", "_records")

    def __init__(
        self, logger: logging.Logger, fmt: str, exclude_paths: frozenset[str], level: int
    ) -> None:
        self._logger = logger
        self._format = fmt
        self._exclude = exclude_paths
        self._level = level
        self._getters = [(atom, _getter(atom)) for atom in dict.fromkeys(_ATOM.findall(fmt))]
        # gunicorn's default line (most deployments' format) is built inline.
        self._default = fmt == DEFAULT_FORMAT
        self._records = _Records(logger, level, fmt)

    def on_request(self, head: RequestHead) -> Handler | None:
        exclude = self._exclude
        if (exclude and head.path in exclude) or not self._logger.isEnabledFor(self._level):
            return None
        # _AccessHandler(self, head), inlined: one Python frame less per request.
        handler: _AccessHandler = _new(_AccessHandler)
        handler.core = self
        handler.head = head
        handler.start = _perf_counter()
        handler.wall = _time()
        handler.status = 0
        handler.sent = 0
        handler.ttfb = None
        handler.duration = 0.0
        handler.response_headers = []
        return handler


def _check_format(fmt: str) -> str:
    if not isinstance(fmt, str):
        raise TypeError(f"format must be a str, not {type(fmt).__name__}")
    for atom in _ATOM.findall(fmt):
        if atom not in _PLAIN_ATOMS and _HEADER_ATOM.match(atom) is None:
            raise ValueError(
                f"format: unknown atom %({atom})s; known: {' '.join(sorted(_PLAIN_ATOMS))}, "
                "{header}i, {header}o"
            )
    probe: dict[str, object] = dict.fromkeys(_PLAIN_ATOMS, 0)
    probe.update((atom, "-") for atom in _ATOM.findall(fmt))
    try:
        fmt % probe  # only to surface a bad conversion now, not per request
    except (ValueError, TypeError) as exc:
        raise ValueError(f"format {fmt!r} is not a valid %-format: {exc}") from None
    return fmt


class AccessLog(CoreMiddleware):
    """Log one line per request through stdlib ``logging`` (default ``middleware.access``).

    ``format`` uses gunicorn's atoms (default: gunicorn's default format);
    ``exclude_paths`` are exact paths never logged (health checks); ``level`` is the
    record's level. Put it outermost in a stack.
    """

    def __init__(
        self,
        app: Any,
        logger: logging.Logger | str | None = None,
        format: str | None = None,  # shadows the builtin: gunicorn calls it format
        exclude_paths: Collection[str] = (),
        *,
        level: int = logging.INFO,
        interface: str | None = None,
    ) -> None:
        if logger is None:
            logger = logging.getLogger("middleware.access")
        elif isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger, a name or None, not {logger!r}")
        if isinstance(exclude_paths, str) or not isinstance(exclude_paths, Collection):
            raise TypeError("exclude_paths must be a collection of paths such as ('/health',)")
        if not isinstance(level, int) or isinstance(level, bool):
            raise TypeError(f"level must be a logging level int, not {level!r}")
        core = _AccessLogCore(
            logger,
            _check_format(DEFAULT_FORMAT if format is None else format),
            frozenset(exclude_paths),
            level,
        )
        super().__init__(app, core, interface=interface)
