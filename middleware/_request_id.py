"""RequestID: read or make a request id, hand it to the app, echo it on the response.

The id the request carries in ``header`` (default ``X-Request-ID``) is kept when it is
1 to ``max_length`` characters from ``A-Z a-z 0-9 . _ -`` (or passes ``validator``);
otherwise, or when ``trust_incoming`` is off, ``generator()`` makes one (32 random hex
digits). The check is what keeps a client from injecting into log lines and
response headers through the id (CWE-117).

The app finds the id under ``"request_id"`` in ``request.state`` (Starlette, FastAPI),
``environ["middleware.state"]`` (Flask, Django) and ``middleware.api.request_state``;
the request header it reads carries the id in use; ``AccessLog`` (outside this
middleware) has it in ``record.http["state"]`` and the ``%(request_id)s`` atom.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from middleware.api import AddHeaders, Core, CoreMiddleware, RequestHead

__all__ = ["RequestID"]

STATE_KEY = "request_id"
# What any id must be, whoever made it: visible ASCII, no quote or backslash (the
# delimiters of log fields), so it is safe in a header and in a log line.
_VISIBLE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _random_hex() -> str:
    # 128 random bits (a UUID4 has 122) without a system call per request: an id
    # correlates log lines, it is no secret (it is echoed to the client). random
    # reseeds in each forked worker, so workers do not repeat each other's ids.
    # to_bytes().hex(): a third of what formatting the int as 32 hex digits costs.
    return _getrandbits(128).to_bytes(16, "big").hex()


_getrandbits = random.getrandbits  # the module's shared generator, as random.* uses


class _RequestIDCore(Core):
    __slots__ = ("_echo", "_generator", "_max", "_name", "_safe", "_trust", "_validator")
    _echo: AddHeaders | None

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
        # The default check in one C call: the characters and the length.
        self._safe = re.compile(rb"[A-Za-z0-9._-]{1,%d}" % max_length)
        self._validator = validator
        self._trust = trust_incoming
        # Echoed in place of any id the app set; copied per request with the id in use,
        # which the drivers add without a handler.
        self._echo = AddHeaders([(name, b"-")], replace=True) if echo else None

    def _valid(self, given: bytes) -> bool:
        if self._validator is None:
            return self._safe.fullmatch(given) is not None
        text = given.decode("latin-1")
        return (
            0 < len(text) <= self._max
            and self._validator(text)
            and _VISIBLE.fullmatch(text) is not None
        )

    def on_request(self, head: RequestHead) -> AddHeaders | None:
        name = self._name
        given = head.header(name) if self._trust else None
        if given is not None and (
            (
                # The default check, inlined. bytes.isalnum() is ASCII-only, so a
                # value that passes it (dashes aside) passes the pattern too, at a
                # third of its cost; the pattern decides the rest.
                (given.isalnum() or given.replace(b"-", b"").isalnum()) and len(given) <= self._max
            )
            or self._safe.fullmatch(given) is not None
            if self._validator is None
            else self._valid(given)
        ):
            raw = given
            head.state[STATE_KEY] = given.decode()  # ASCII: checked above
        else:
            generator = self._generator
            if generator is _random_hex:
                made = _getrandbits(128).to_bytes(16, "big").hex()  # _random_hex, inlined
            else:
                made = generator()
                if not isinstance(made, str) or _VISIBLE.fullmatch(made) is None:
                    raise ValueError(f"RequestID: the generator made an invalid id {made!r}")
            raw = made.encode()  # visible ASCII: checked above (or hex digits)
            # The app reads the id in use (adding is cheaper than replacing: none there).
            if given is None and self._trust:
                head.add_header(name, raw)
            else:
                head.set_header(name, raw)
            head.state[STATE_KEY] = made
        echo = self._echo
        return None if echo is None else echo.with_value(raw)


class RequestID(CoreMiddleware):
    """Read or make a request id (``header``), hand it to the app, echo it back.

    ``generator``: makes a new id (default: 32 random hex digits). Incoming ids are kept when
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
        generator: Callable[[], str] = _random_hex,
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
