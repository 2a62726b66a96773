"""One behaviour table, run through the WSGI driver and the ASGI driver.

Every case builds the same tiny app on both interfaces, wraps it in the middleware, and
requires the same status, the same headers and the same decoded body from both, plus
the case's own expectations.
"""

from __future__ import annotations

import gzip as gzip_module
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from middleware import CORS, AccessLog, Compress, GZip, Middleware, Stack
from tests.middleware.harness import Reply, Request, Result, run_both

BIG = b'{"items": [' + b", ".join(b'{"id": %d, "name": "item"}' % i for i in range(100)) + b"]}"
SMALL = b'{"ok": true}'
PRE_GZIPPED = gzip_module.compress(BIG)
JSON = (("Content-Type", "application/json"),)


@dataclass(frozen=True)
class Case:
    id: str
    wrap: Callable[[Any], Any]
    reply: Reply
    request: Request
    status: int = 200
    # header name -> expected value; None means the header must be absent.
    expect: dict[str, str | None] = field(default_factory=dict)
    body: bytes | None = None  # expected decoded body; defaults to the reply's


def cors(**options: Any) -> Callable[[Any], Any]:
    defaults: dict[str, Any] = {
        "allow_origins": ["https://app.example.com", "https://*.example.org"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["X-Token"],
        "expose_headers": ["X-Total"],
    }
    return lambda app: CORS(app, **{**defaults, **options})


def gzip(**options: Any) -> Callable[[Any], Any]:
    return lambda app: GZip(app, **options)


def compress(**options: Any) -> Callable[[Any], Any]:
    return lambda app: Compress(app, **options)


ORIGIN = (("Origin", "https://app.example.com"),)
GZIP = (("Accept-Encoding", "gzip"),)


def preflight(method: str = "POST", headers: str | None = None, **extra: str) -> Request:
    pairs = [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", method)]
    if headers is not None:
        pairs.append(("Access-Control-Request-Headers", headers))
    pairs.extend((k.replace("_", "-"), v) for k, v in extra.items())
    return Request("OPTIONS", headers=tuple(pairs))


CASES = [
    # --- CORS: simple requests ------------------------------------------------------
    Case(
        "cors echoes an allowed origin and exposes headers",
        cors(),
        Reply(),
        Request(headers=ORIGIN),
        expect={
            "access-control-allow-origin": "https://app.example.com",
            "access-control-expose-headers": "X-Total",
            "access-control-allow-credentials": None,
            "vary": "Origin",
        },
    ),
    Case(
        "cors gives a disallowed origin no cors headers",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://evil.example.net"),)),
        expect={
            "access-control-allow-origin": None,
            "access-control-expose-headers": None,
            "vary": "Origin",
        },
    ),
    Case(
        "cors varies on origin even without one",
        cors(),
        Reply(),
        Request(),
        expect={"access-control-allow-origin": None, "vary": "Origin"},
    ),
    Case(
        "cors wildcard entry allows a deep subdomain",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://a.b.example.org"),)),
        expect={"access-control-allow-origin": "https://a.b.example.org"},
    ),
    Case(
        "cors wildcard entry refuses the bare domain",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://example.org"),)),
        expect={"access-control-allow-origin": None},
    ),
    Case(
        "cors refuses an allowed origin with a port above 65535",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://app.example.com:65979"),)),
        expect={"access-control-allow-origin": None, "vary": "Origin"},
    ),
    Case(
        "cors wildcard entry refuses a port above 65535",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://a.example.org:65979"),)),
        expect={"access-control-allow-origin": None, "vary": "Origin"},
    ),
    Case(
        "cors wildcard entry refuses a lookalike suffix",
        cors(),
        Reply(),
        Request(headers=(("Origin", "https://example.org.evil.net"),)),
        expect={"access-control-allow-origin": None},
    ),
    Case(
        "cors normalises case and default port of the origin",
        cors(),
        Reply(),
        Request(headers=(("Origin", "HTTPS://App.Example.com:443"),)),
        expect={"access-control-allow-origin": "HTTPS://App.Example.com:443"},
    ),
    Case(
        "cors regex must match the whole origin",
        cors(allow_origins=(), allow_origin_regex=r"https://.*\.example\.com"),
        Reply(),
        Request(headers=(("Origin", "https://evil-example.com.attacker.net"),)),
        expect={"access-control-allow-origin": None},
    ),
    Case(
        "cors regex allows a full match",
        cors(allow_origins=(), allow_origin_regex=r"https://[a-z]+\.example\.com"),
        Reply(),
        Request(headers=(("Origin", "https://shop.example.com"),)),
        expect={"access-control-allow-origin": "https://shop.example.com"},
    ),
    Case(
        "cors never answers credentials with a star",
        cors(allow_origins=["*"], allow_credentials=True),
        Reply(),
        Request(headers=ORIGIN),
        expect={
            "access-control-allow-origin": "https://app.example.com",
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        },
    ),
    Case(
        "cors public mode sends a star to everyone without vary",
        cors(allow_origins=["*"]),
        Reply(),
        Request(),
        expect={"access-control-allow-origin": "*", "vary": None},
    ),
    Case(
        "cors keeps headers on error responses from the app",
        cors(),
        Reply(status=500, chunks=(b"boom",)),
        Request(headers=ORIGIN),
        status=500,
        expect={"access-control-allow-origin": "https://app.example.com"},
    ),
    Case(
        "cors keeps headers on a 404 from the app",
        cors(),
        Reply(status=404, chunks=(b"nope",)),
        Request(headers=ORIGIN),
        status=404,
        expect={"access-control-allow-origin": "https://app.example.com"},
    ),
    Case(
        "cors merges vary with the app's own vary",
        cors(),
        Reply(headers=(("Content-Type", "text/plain"), ("Vary", "Accept-Language"))),
        Request(headers=ORIGIN),
        expect={"vary": "Accept-Language, Origin"},
    ),
    Case(
        "cors replaces the app's own allow origin header",
        cors(),
        Reply(headers=(("Content-Type", "text/plain"), ("Access-Control-Allow-Origin", "*"))),
        Request(headers=ORIGIN),
        expect={"access-control-allow-origin": "https://app.example.com"},
    ),
    # --- CORS: preflight ------------------------------------------------------------
    Case(
        "cors preflight allowed is answered without the app",
        cors(),
        Reply(status=418),
        preflight("POST", "x-token, Content-Type"),
        expect={
            "access-control-allow-origin": "https://app.example.com",
            "access-control-allow-methods": "GET, POST",
            "access-control-allow-headers": "accept, accept-language, content-language, "
            "content-type, x-token",
            "access-control-max-age": "600",
            "access-control-allow-private-network": None,
        },
        body=b"OK",
    ),
    Case(
        "cors preflight with a disallowed method is refused",
        cors(),
        Reply(),
        preflight("DELETE"),
        status=400,
        expect={"access-control-allow-origin": None},
        body=b"Disallowed CORS method",
    ),
    Case(
        "cors preflight with a disallowed header is refused",
        cors(),
        Reply(),
        preflight("GET", "X-Other"),
        status=400,
        body=b"Disallowed CORS headers",
    ),
    Case(
        "cors preflight from a disallowed origin is refused",
        cors(),
        Reply(),
        Request(
            "OPTIONS",
            headers=(("Origin", "https://evil.net"), ("Access-Control-Request-Method", "GET")),
        ),
        status=400,
        expect={"access-control-allow-origin": None},
        body=b"Disallowed CORS origin",
    ),
    Case(
        "cors preflight with star methods and headers echoes the request",
        cors(allow_methods=["*"], allow_headers=["*"]),
        Reply(),
        preflight("PATCH", "X-Anything"),
        expect={
            "access-control-allow-methods": "PATCH",
            "access-control-allow-headers": "X-Anything",
        },
        body=b"OK",
    ),
    Case(
        "cors preflight grants private network access when enabled",
        cors(allow_private_network=True),
        Reply(),
        preflight("GET", Access_Control_Request_Private_Network="true"),
        expect={"access-control-allow-private-network": "true"},
        body=b"OK",
    ),
    Case(
        "cors preflight withholds private network access by default",
        cors(),
        Reply(),
        preflight("GET", Access_Control_Request_Private_Network="true"),
        expect={"access-control-allow-private-network": None},
        body=b"OK",
    ),
    Case(
        "cors lets an options request without request method reach the app",
        cors(),
        Reply(chunks=(b"app",)),
        Request("OPTIONS", headers=ORIGIN),
        expect={"access-control-allow-origin": "https://app.example.com"},
    ),
    # --- GZip -----------------------------------------------------------------------
    Case(
        "gzip compresses a large body and fixes content length",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "vary": "Accept-Encoding"},
    ),
    Case(
        "gzip leaves a small body with content length alone",
        gzip(),
        Reply(headers=JSON, chunks=(SMALL,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None, "content-length": str(len(SMALL))},
    ),
    Case(
        "gzip compresses a small stream of unknown length from its first chunk",
        gzip(),
        Reply(headers=JSON, chunks=(b"a" * 100, b"b" * 100)),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "vary": "Accept-Encoding", "content-length": None},
    ),
    Case(
        "gzip leaves a small body with content length alone however it is chunked",
        gzip(),
        Reply(headers=JSON, chunks=(b"a" * 100, b"b" * 100), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None, "content-length": "200"},
    ),
    Case(
        "gzip compresses a stream chunk by chunk",
        gzip(),
        Reply(headers=JSON, chunks=(b"a" * 200, b"b" * 200, b"c" * 200, b"d" * 2000)),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "content-length": None},
    ),
    Case(
        "gzip takes content encoding identity as the opt out",
        gzip(),
        Reply(headers=(*JSON, ("Content-Encoding", "identity")), chunks=(BIG,)),
        Request(headers=GZIP),
        expect={"content-encoding": "identity", "vary": None},
    ),
    Case(
        "gzip takes any content encoding as the opt out",
        gzip(),
        Reply(headers=(*JSON, ("Content-Encoding", " Identity ")), chunks=(BIG, BIG)),
        Request(headers=GZIP),
        expect={"content-encoding": " Identity ", "vary": None},
    ),
    Case(
        "gzip leaves application octet stream alone",
        gzip(),
        Reply(headers=(("Content-Type", "application/octet-stream"),), chunks=(BIG,)),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip leaves any image subtype alone",
        gzip(),
        Reply(headers=(("Content-Type", "image/x-future"),), chunks=(BIG,)),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip compresses svg images",
        gzip(),
        Reply(headers=(("Content-Type", "image/svg+xml"),), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "vary": "Accept-Encoding"},
    ),
    Case(
        "gzip compresses octet streams when the exclusions are overridden",
        gzip(exclude_content_types=()),
        Reply(
            headers=(("Content-Type", "application/octet-stream"),),
            chunks=(BIG,),
            content_length=True,
        ),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip"},
    ),
    Case(
        "gzip drops content length of a compressed stream",
        gzip(),
        Reply(headers=JSON, chunks=(BIG, BIG, BIG), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "content-length": None},
    ),
    Case(
        "gzip leaves server sent events uncompressed",
        gzip(),
        Reply(headers=(("Content-Type", "text/event-stream"),), chunks=(b"data: x\n\n" * 100,)),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip leaves images uncompressed",
        gzip(),
        Reply(headers=(("Content-Type", "image/png"),), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": None},
    ),
    Case(
        "gzip leaves video of any subtype uncompressed",
        gzip(),
        Reply(headers=(("Content-Type", "video/mp4"),), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": None},
    ),
    Case(
        "gzip leaves an already encoded response alone",
        gzip(),
        Reply(headers=(*JSON, ("Content-Encoding", "gzip")), chunks=(PRE_GZIPPED,)),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip", "vary": None},
        body=BIG,
    ),
    Case(
        "gzip leaves partial content alone",
        gzip(),
        Reply(
            status=206,
            headers=(*JSON, ("Content-Range", f"bytes 0-{len(BIG) - 1}/99999")),
            chunks=(BIG,),
        ),
        Request(headers=GZIP),
        status=206,
        expect={"content-encoding": None},
    ),
    Case(
        "gzip leaves no content alone",
        gzip(),
        Reply(status=204, headers=(), chunks=()),
        Request(headers=GZIP),
        status=204,
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip leaves not modified alone",
        gzip(),
        Reply(status=304, headers=(("ETag", '"v1"'),), chunks=()),
        Request(headers=GZIP),
        status=304,
        expect={"content-encoding": None, "etag": '"v1"'},
    ),
    Case(
        "gzip leaves head requests alone",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request("HEAD", headers=GZIP),
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip respects cache control no transform",
        gzip(),
        Reply(
            headers=(*JSON, ("Cache-Control", "public, No-Transform")),
            chunks=(BIG,),
            content_length=True,
        ),
        Request(headers=GZIP),
        expect={"content-encoding": None},
    ),
    Case(
        "gzip varies for a client that does not accept gzip",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "identity"),)),
        expect={"content-encoding": None, "vary": "Accept-Encoding"},
    ),
    Case(
        "gzip varies for a client without accept encoding",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(),
        expect={"content-encoding": None, "vary": "Accept-Encoding"},
    ),
    Case(
        "gzip treats q zero as a refusal",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "gzip;q=0, deflate"),)),
        expect={"content-encoding": None},
    ),
    Case(
        "gzip reads accept encoding in any case and spacing",
        gzip(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "  deflate ,  GZIP ; Q=0.5 "),)),
        expect={"content-encoding": "gzip"},
    ),
    Case(
        "gzip weakens a strong etag",
        gzip(),
        Reply(headers=(*JSON, ("ETag", '"abc"')), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"etag": 'W/"abc"', "content-encoding": "gzip"},
    ),
    Case(
        "gzip keeps a weak etag as it is",
        gzip(),
        Reply(headers=(*JSON, ("ETag", 'W/"abc"')), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"etag": 'W/"abc"'},
    ),
    Case(
        "gzip merges vary without duplicating",
        gzip(),
        Reply(
            headers=(*JSON, ("Vary", "Origin, accept-encoding")), chunks=(BIG,), content_length=True
        ),
        Request(headers=GZIP),
        expect={"vary": "Origin, accept-encoding"},
    ),
    Case(
        "gzip leaves vary star alone",
        gzip(),
        Reply(headers=(*JSON, ("Vary", "*")), chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"vary": "*", "content-encoding": "gzip"},
    ),
    Case(
        "gzip honours a custom minimum size",
        gzip(minimum_size=5000),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=GZIP),
        expect={"content-encoding": None, "vary": None},
    ),
    Case(
        "gzip compresses excluded types when the exclusions are emptied",
        gzip(exclude_content_types=()),
        Reply(
            headers=(("Content-Type", "text/event-stream"),),
            chunks=(b"data: x\n\n" * 100,),
            content_length=True,
        ),
        Request(headers=GZIP),
        expect={"content-encoding": "gzip"},
    ),
    # --- Compress: negotiation --------------------------------------------------------
    Case(
        "compress prefers zstd when the client takes anything",
        compress(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "gzip, deflate, br, zstd"),)),
        expect={"content-encoding": "zstd"},
    ),
    Case(
        "compress uses brotli when offered before gzip",
        compress(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "gzip, br"),)),
        expect={"content-encoding": "br"},
    ),
    Case(
        "compress follows the client's weights",
        compress(),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "br;q=0.5, gzip;q=0.9"),)),
        expect={"content-encoding": "gzip"},
    ),
    Case(
        "compress reads star as any coding",
        compress(encodings=("br", "gzip")),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(("Accept-Encoding", "*"),)),
        expect={"content-encoding": "br"},
    ),
    Case(
        "compress streams brotli",
        compress(encodings=("br",)),
        Reply(headers=JSON, chunks=(BIG, BIG, BIG)),
        Request(headers=(("Accept-Encoding", "br"),)),
        expect={"content-encoding": "br", "content-length": None},
    ),
    Case(
        "compress streams zstd",
        compress(encodings=("zstd",)),
        Reply(headers=JSON, chunks=(BIG, BIG, BIG)),
        Request(headers=(("Accept-Encoding", "zstd"),)),
        expect={"content-encoding": "zstd", "content-length": None},
    ),
    # --- Stack ---------------------------------------------------------------------------
    Case(
        "stack adds cors headers to a compressed response",
        Stack(
            [
                Middleware(AccessLog),
                Middleware(CORS, allow_origins=["https://app.example.com"]),
                Middleware(GZip),
            ]
        ),
        Reply(headers=JSON, chunks=(BIG,), content_length=True),
        Request(headers=(*ORIGIN, *GZIP)),
        expect={
            "content-encoding": "gzip",
            "access-control-allow-origin": "https://app.example.com",
            "vary": "Accept-Encoding, Origin",
        },
    ),
    Case(
        "stack answers a preflight before compression",
        Stack(
            [
                Middleware(CORS, allow_origins=["https://app.example.com"]),
                Middleware(GZip, minimum_size=0),
            ]
        ),
        Reply(),
        preflight("GET"),
        expect={"content-encoding": None},
        body=b"OK",
    ),
]


def _normal(result: Result) -> tuple[int, list[tuple[str, str]], bytes]:
    return result.status, sorted(result.headers), result.decoded


@pytest.mark.parametrize("case", CASES, ids=[case.id.replace(" ", "_") for case in CASES])
def test_behaviour_is_the_same_on_wsgi_and_asgi(case: Case) -> None:
    via_wsgi, via_asgi = run_both(case.wrap, case.reply, case.request)
    assert _normal(via_wsgi) == _normal(via_asgi)
    for result in (via_wsgi, via_asgi):
        assert result.status == case.status
        for name, expected in case.expect.items():
            assert result.header(name) == expected, name
        expected_body = case.body or b"".join(case.reply.chunks)
        if case.request.method == "HEAD":
            expected_body = b"".join(case.reply.chunks)  # the tiny apps ignore HEAD
        assert result.decoded == expected_body
        length = result.header("content-length")
        if length is not None:
            assert int(length) == len(result.body)
        assert result.header_count("vary") <= 1
