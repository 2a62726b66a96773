"""RequestID: read or make a request id, hand it to the app, echo it on the response.

The id the request carries in ``header`` (default ``X-Request-ID``) is kept when it is
1 to ``max_length`` characters from ``A-Z a-z 0-9 . _ -`` (or passes ``validator``);
otherwise, or when ``trust_incoming`` is off, ``generator()`` makes one (32 hex digits
of a random UUID). The check is what keeps a client from injecting into log lines and
response headers through the id (CWE-117).

The app finds the id under ``"request_id"`` in ``request.state`` (Starlette, FastAPI),
``environ["middleware.state"]`` (Flask, Django) and ``middleware.api.request_state``;
the request header it reads carries the id in use; ``AccessLog`` (outside this
middleware) has it in ``record.http["state"]`` and the ``%(request_id)s`` atom.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, RequestHead

__all__ = ["RequestID"]

STATE_KEY = "request_id"
_SAFE = re.compile(r"[A-Za-z0-9._-]+")
# What any id must be, whoever made it: visible ASCII, no quote or backslash (the
# delimiters of log fields), so it is safe in a header and in a log line.
_VISIBLE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _uuid_hex() -> str:
    return uuid.uuid4().hex


class _Echo(Handler):
    """Puts the id on the response head, replacing any the app set; the body is untouched."""

    __slots__ = ("_pair",)
    head_only = True

    def __init__(self, pair: tuple[bytes, bytes]) -> None:
        self._pair = pair

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        name = self._pair[0]
        return status, [*(pair for pair in headers if pair[0] != name), self._pair]


class _RequestIDCore(Core):
    __slots__ = ("_echo", "_generator", "_max", "_name", "_trust", "_validator")

    def __init__(
        self,
        name: bytes,
        *,
        generator: Callable[[], str],
        max_length: int,
        validator: Callable[[str], bool] | None,
        trust_incoming: bool,
        echo: bool,
    ) -> None:
        self._name = name
        self._generator = generator
        self._max = max_length
        self._validator = validator
        self._trust = trust_incoming
        self._echo = echo

    def _valid(self, value: str) -> bool:
        if not 0 < len(value) <= self._max:
            return False
        if self._validator is None:
            return _SAFE.fullmatch(value) is not None
        return self._validator(value) and _VISIBLE.fullmatch(value) is not None

    def on_request(self, head: RequestHead) -> Handler | None:
        given = head.header(self._name) if self._trust else None
        request_id = None
        if given is not None:
            text = given.decode("latin-1")
            if self._valid(text):
                request_id = text
        if request_id is None:
            request_id = self._generator()
            if not isinstance(request_id, str) or _VISIBLE.fullmatch(request_id) is None:
                raise ValueError(f"RequestID: the generator made an invalid id {request_id!r}")
            head.set_header(self._name, request_id.encode("ascii"))
        head.state[STATE_KEY] = request_id
        return _Echo((self._name, request_id.encode("ascii"))) if self._echo else None


class RequestID(CoreMiddleware):
    """Read or make a request id (``header``), hand it to the app, echo it back.

    ``generator``: makes a new id (default: ``uuid4().hex``). Incoming ids are kept when
    at most ``max_length`` characters from ``A-Za-z0-9._-``, or when ``validator(id)``
    says so (visible ASCII without quotes or backslashes is still required);
    ``trust_incoming=False`` always makes a fresh one. ``echo=False`` leaves the
    response alone.
    """

    def __init__(
        self,
        app: Any,
        header: str = "X-Request-ID",
        *,
        generator: Callable[[], str] = _uuid_hex,
        max_length: int = 128,
        validator: Callable[[str], bool] | None = None,
        trust_incoming: bool = True,
        echo: bool = True,
        interface: str | None = None,
    ) -> None:
        if not isinstance(header, str) or _TOKEN.fullmatch(header) is None:
            raise ValueError(f"header must be a header name, not {header!r}")
        if not callable(generator):
            raise TypeError("generator must be a callable returning a str")
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, not {max_length!r}")
        core = _RequestIDCore(
            header.lower().encode("ascii"),
            generator=generator,
            max_length=max_length,
            validator=validator,
            trust_incoming=bool(trust_incoming),
            echo=bool(echo),
        )
        super().__init__(app, core, interface=interface)
