"""Response framing for ``ASGIToWSGI``: which responses carry a body, and how long it is.

WSGI servers trust the app's framing: they write whatever the iterable yields after
the head the app chose. ASGI apps expect the opposite (the server drops a ``HEAD``
body and enforces Content-Length; Starlette relies on it). So ``ASGIToWSGI`` frames
responses itself, from these pure rules:

* RFC 9110 6.4.1 / 9.3.2: responses to ``HEAD``, and 1xx, 204 and 304 responses, have
  no content; their headers (a ``HEAD`` response's Content-Length included) are kept.
* RFC 9110 8.6: Content-Length is one non-negative decimal number. ``+5``, ``-1``,
  ``5, 6``, non-ASCII digits or two different values are refused (a list is refused
  even when its members agree); repeated fields with the same value are folded to one.
* RFC 9112 6.3: a body shorter or longer than its Content-Length desynchronises a
  keep-alive connection, so the byte count is checked (by ``_a2w_exchange.py``).

No I/O, threads or event loops here.
"""

from __future__ import annotations

from bridge._http import InvalidResponse
from bridge._types import Headers

# Statuses whose responses never have content (1xx never reaches here: WSGI cannot send it).
_NO_CONTENT = frozenset({204, 304})


def has_no_body(method: object, status: int) -> bool:
    """Whether the response to ``method`` with ``status`` carries no content at all."""
    return method == "HEAD" or status in _NO_CONTENT or 100 <= status < 200


def content_length(headers: Headers) -> tuple[Headers, int | None]:
    """``(headers, length)``: the declared Content-Length, and the headers with repeated
    equal Content-Length fields folded into the first one (whitespace trimmed).

    Raises ``InvalidResponse`` for a value that is not ASCII digits only (surrounding
    spaces and tabs aside) or for two different values.
    """
    length: int | None = None
    rewrite = False  # a repeat, or a value with whitespace: the headers are rebuilt
    for name, value in headers:
        if len(name) != 14 or name.lower() != "content-length":
            continue
        digits = value.strip(" \t")
        # isdigit() alone takes "²" (latin-1 0xB2); within ASCII it means 0-9 exactly.
        if not (digits.isascii() and digits.isdigit()):
            raise InvalidResponse(f"invalid Content-Length {value!r} in http.response.start")
        number = int(digits)
        if length is not None:
            if number != length:
                raise InvalidResponse(
                    f"conflicting Content-Length values {length} and {number} "
                    "in http.response.start"
                )
            rewrite = True
        elif digits is not value:  # strip() returns the same object when nothing was cut
            rewrite = True
        length = number
    if rewrite:
        headers = _fold(headers, str(length))
    return headers, length


def _fold(headers: Headers, value: str) -> Headers:
    folded: Headers = []
    seen = False
    for name, original in headers:
        if len(name) == 14 and name.lower() == "content-length":
            if seen:
                continue
            seen = True
            folded.append((name, value))
        else:
            folded.append((name, original))
    return folded
