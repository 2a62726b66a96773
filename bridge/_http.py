"""HTTP facts both adapters share: status phrases, header syntax, hop-by-hop names.

Pure functions and constants only: no I/O, no threads, no event loops.
RFC 9110 section 5.1 (field names are tokens) and 5.5 (field values never hold CR, LF
or NUL) decide what a valid header is here.
"""

from __future__ import annotations

import http
import re

# RFC 9110 5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 5.5: obs-text (0x80-0xFF) is allowed, controls other than HTAB are not.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_BAD_VALUE_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9110 7.6.1 and PEP 3333 ("hop-by-hop" headers are the server's business).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


def reason_phrase(code: int) -> str:
    """The standard reason phrase for ``code``; unknown codes get a generic class phrase."""
    phrase = _PHRASES.get(code)
    if phrase is not None:
        return phrase
    return {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error"}.get(
        code // 100, "Server Error"
    )


def status_line(code: int) -> str:
    """A WSGI status string such as ``"404 Not Found"``."""
    return f"{code} {reason_phrase(code)}"


def is_token(name: str) -> bool:
    return _TOKEN.match(name) is not None


def is_token_bytes(name: bytes) -> bool:
    return _TOKEN_BYTES.match(name) is not None


def invalid_value_reason(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value, or ``None`` when it can."""
    if value.isascii() and value.isprintable():
        return None  # the common case, checked in C
    bad = _BAD_VALUE.search(value)
    if bad is None:
        return None
    char = bad.group()
    if ord(char) > 0xFF:
        return f"character {char!r} is not latin-1 (PEP 3333 header values are latin-1 str)"
    return f"control character {char!r} (CR, LF and NUL would allow header injection)"


def invalid_value_bytes(value: bytes) -> bool:
    return _BAD_VALUE_BYTES.search(value) is not None


class InvalidResponse(ValueError):
    """An app's status or headers break its interface's spec or could corrupt the response.

    Raised when a WSGI app calls ``start_response`` with them, and for an ASGI app's
    ``http.response.start``; either way the client gets a 500, never the bad bytes.
    """


class ClientDisconnected(OSError):
    """The client went away before the request or response was complete.

    Raised from ``wsgi.input.read()`` when the body stops mid-upload (so a truncated
    body never looks like end-of-body), and from ``write()`` once the client is gone.
    """
