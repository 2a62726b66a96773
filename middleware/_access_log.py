"""AccessLog: one stdlib ``logging`` record per request, written when it is complete.

The message uses gunicorn's access-log atoms (``%(h)s``, ``%(r)s``, ``%(s)s`` ...,
``%({header}i)s`` for a request header and ``%({header}o)s`` for a response header),
computed lazily: ``logging`` formats the message only if a handler emits it, and no
record is built at all when the logger is not enabled for the level. The same facts go
on the record as ``record.http`` (a dict) for JSON formatters.

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
import time
from collections.abc import Collection
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


def _outcome_name(outcome: Outcome) -> str:
    # Identity tests: Enum's .value and its hash (a dict lookup) both run Python code.
    if outcome is _COMPLETED:
        return "completed"
    return "client_disconnected" if outcome is _DISCONNECTED else "app_exception"


class _Atoms(dict[str, object]):
    """gunicorn's atoms for one request, computed only when the message is formatted.

    A ``dict`` whose missing keys are computed on lookup: ``logging`` and ``%`` then see
    a real mapping and find it non-empty in C, without calling back into Python for
    ``len()`` or an ``isinstance(..., Mapping)`` walk.
    """

    __slots__ = ("_h",)
    _h: _AccessHandler

    def __missing__(self, key: str) -> object:
        h = self._h
        head = h.head
        # Request facts come from record.http's fields, read from the head once in emit.
        fields = h.fields
        if key == "h":
            # X-Forwarded-For under proxy headers (uvicorn, gunicorn): client-chosen.
            client = fields["client"]
            return _escape(str(client)) if client is not None else "-"
        if key == "l":
            return "-"
        if key == "u":
            return _escape(_basic_user(head.header(b"authorization")) or "-")
        if key == "t":
            return _request_time(h.wall)
        if key == "r":
            query = fields["query"]
            target = fields["path"] + ("?" + query if query else "")
            return _escape(f"{fields['method']} {target} HTTP/{fields['http_version']}")
        if key == "s":
            return h.status
        if key == "m":
            return _escape(fields["method"])
        if key == "U":
            return _escape(fields["path"])
        if key == "q":
            return _escape(fields["query"])
        if key == "H":
            return _escape(f"HTTP/{fields['http_version']}")
        if key in ("b", "B"):
            return h.sent
        if key == "f":
            referer = fields["referer"]
            return "-" if referer is None else _escape(referer)
        if key == "a":
            agent = fields["user_agent"]
            return "-" if agent is None else _escape(agent)
        if key == "request_id":
            return _escape(str(head.state.get("request_id", "-")))
        micros = round(h.duration * 1_000_000)
        if key == "T":
            return micros // 1_000_000
        if key == "D":
            return micros
        if key == "M":
            return micros // 1000
        if key == "L":
            return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
        if key == "p":
            return f"<{os.getpid()}>"
        match = _HEADER_ATOM.match(key)
        if match is not None:
            name = match.group(1).lower().encode("latin-1")
            if match.group(2) == "i":
                return _text(head.header(name))
            return _text(find(h.response_headers, name))
        return "-"


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

    fields: dict[str, Any]  # record.http, set in emit

    def __init__(self, core: _AccessLogCore, head: RequestHead) -> None:
        self.core = core
        self.head = head
        self.start = time.perf_counter()
        self.wall = time.time()
        self.status = 0
        self.sent = 0
        self.ttfb: float | None = None
        self.duration = 0.0
        self.response_headers: HeaderList = []

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        self.status = status
        self.response_headers = headers
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - self.start
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
        self.duration = time.perf_counter() - self.start
        if outcome is Outcome.CLIENT_DISCONNECTED:
            self.status = CLIENT_CLOSED_REQUEST
        elif outcome is Outcome.APP_EXCEPTION:
            self.status = 500
        self.core.emit(self, outcome)


class _AccessLogCore(Core):
    __slots__ = ("_exclude", "_format", "_level", "_logger")

    def __init__(
        self, logger: logging.Logger, fmt: str, exclude_paths: frozenset[str], level: int
    ) -> None:
        self._logger = logger
        self._format = fmt
        self._exclude = exclude_paths
        self._level = level

    def on_request(self, head: RequestHead) -> Handler | None:
        if head.path in self._exclude or not self._logger.isEnabledFor(self._level):
            return None
        return _AccessHandler(self, head)

    def emit(self, h: _AccessHandler, outcome: Outcome) -> None:
        head = h.head
        client = head.client
        agent = head.header(b"user-agent")
        referer = head.header(b"referer")
        fields = {
            "method": head.method,
            "path": head.path,
            "query": head.query.decode("latin-1"),
            "status": h.status,
            "bytes": h.sent,
            "duration": h.duration,
            "ttfb": h.ttfb,
            "client": None if client is None else client[0],
            "user_agent": None if agent is None else agent.decode("latin-1"),
            "referer": None if referer is None else referer.decode("latin-1"),
            "http_version": head.http_version,
            "scheme": head.scheme,
            "outcome": _outcome_name(outcome),
            # What inner middleware handed the app (a request id...), via the public API.
            "state": dict(head.state),
        }
        h.fields = fields
        atoms = _Atoms(l="-")  # non-empty, so logging passes it as the mapping
        atoms._h = h
        # makeRecord + handle, not logger.log(): log() walks the stack to find the caller
        # (the costliest step, and the caller is always this module anyway).
        logger = self._logger
        record = logger.makeRecord(
            logger.name,
            self._level,
            __file__,
            0,
            self._format,
            (atoms,),
            None,
            "AccessLog",
            {"http": fields},
        )
        logger.handle(record)


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
