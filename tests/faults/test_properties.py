"""Property tests for the pure modules that see attacker-controlled input.

``bridge/_scope.py`` (environ -> scope, response heads), the environ -> scope -> environ
round trip through ``bridge/_environ.py``, ``middleware/_encodings.py``
(Accept-Encoding, compressors), ``middleware/_origins.py`` (the CORS allow-list) and the
access-log message. Each keeps ``max_examples`` modest so the file runs in seconds.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from typing import Any

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge._environ import build_environ
from bridge._http import HOP_BY_HOP, is_token
from bridge._scope import InvalidResponse, ScopeError, http_scope, response_head
from middleware import CORS, AccessLog
from middleware._encodings import AVAILABLE, EncoderSpec, negotiate, parse_accept_encoding
from middleware._origins import OriginMatcher, normalize_origin
from tests.middleware.harness import Reply, Request, asgi_app, call_asgi, call_wsgi, wsgi_app

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

latin1 = st.characters(min_codepoint=0, max_codepoint=0xFF)
unicode_text = st.characters(blacklist_categories=("Cs",))
segment = st.text(unicode_text, min_size=1, max_size=8).filter(lambda s: "/" not in s)


def as_environ_str(text: str) -> str:
    """PEP 3333's "bytes as latin-1" view of ``text`` sent as UTF-8."""
    return text.encode("utf-8").decode("latin-1")


# --- bridge/_scope.py --------------------------------------------------------------------


def _is_utf8(environ_text: str) -> bool:
    try:
        environ_text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FAST
@given(script=st.text(latin1, max_size=20), path=st.text(latin1, max_size=30))
def test_any_environ_path_gives_a_scope_or_a_scope_error(script: str, path: str) -> None:
    environ = {"SCRIPT_NAME": script, "PATH_INFO": path, "REQUEST_METHOD": "GET"}
    try:
        scope = http_scope(environ)
    except ScopeError:
        # The whole path, or SCRIPT_NAME alone (cut inside a UTF-8 sequence), is not text.
        assert not _is_utf8(script + path) or not _is_utf8(script)
        return
    assert scope["path"].encode("utf-8") == (script + path).encode("latin-1")
    assert scope["path"].startswith(scope["root_path"])
    assert re.fullmatch(rb"[\x21-\x7e]*", scope["raw_path"]), scope["raw_path"]


header_name = st.text(st.sampled_from("abcXYZ-_:;\r\n\x00 é"), min_size=0, max_size=8)
header_value = st.binary(max_size=12)


@FAST
@given(
    status=st.one_of(st.integers(-5, 1200), st.text(max_size=3), st.none()),
    headers=st.lists(
        st.tuples(st.one_of(header_name.map(str.encode), header_name), header_value),
        max_size=5,
    ),
)
def test_response_head_is_refused_or_safe_on_the_wire(status: Any, headers: list[Any]) -> None:
    try:
        line, out = response_head(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
    except InvalidResponse:
        return
    assert 200 <= int(line[:3]) <= 999
    for name, value in out:
        assert is_token(name)
        assert name.lower() not in HOP_BY_HOP
        assert not set(value) & {"\r", "\n", "\x00"}


# --- environ -> scope -> environ --------------------------------------------------------

cgi_word = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=6)
http_key = st.lists(cgi_word, min_size=1, max_size=3).map(lambda words: "HTTP_" + "_".join(words))
# Header values a server can hand over: latin-1, no CR/LF/NUL, no leading/trailing space.
value_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=12,
)


@SLOWER
@given(
    root=st.lists(segment, max_size=2).map(lambda s: "".join("/" + x for x in s)),
    rest=st.lists(segment, max_size=3).map(lambda s: "".join("/" + x for x in s)),
    query=st.text(latin1, max_size=20),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    headers=st.dictionaries(http_key, value_text, max_size=6),
    content_type=st.one_of(st.just(""), value_text),
    content_length=st.one_of(st.just(""), st.integers(0, 10**9).map(str)),
    server_port=st.integers(1, 65535).map(str),
    remote_port=st.integers(1, 65535).map(str),
)
def test_environ_to_scope_to_environ_round_trips(
    *,
    root: str,
    rest: str,
    query: str,
    method: str,
    headers: dict[str, str],
    content_type: str,
    content_length: str,
    server_port: str,
    remote_port: str,
) -> None:
    headers.pop("HTTP_CONTENT_TYPE", None)
    headers.pop("HTTP_CONTENT_LENGTH", None)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": as_environ_str(root),
        "PATH_INFO": as_environ_str(rest),
        "QUERY_STRING": query,
        "SERVER_NAME": "example.test",
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.1",
        "REMOTE_PORT": remote_port,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": content_length,
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(),
        **headers,
    }
    scope = http_scope(environ)
    back = build_environ(scope, None, max_header_repeats=100)
    for key in (
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "SERVER_PROTOCOL",
        "wsgi.url_scheme",
    ):
        assert back[key] == environ[key], key
    assert {k: v for k, v in back.items() if k.startswith("HTTP_")} == headers
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        assert back.get(key, "") == environ[key], key


# --- middleware/_encodings.py ------------------------------------------------------------


@FAST
@given(st.text(max_size=60))
def test_accept_encoding_parses_anything_into_sane_weights(value: str) -> None:
    parsed = parse_accept_encoding(value)
    for coding, weight in parsed.items():
        assert coding == coding.strip().lower()
        assert coding
        assert " " not in coding
        assert coding != "x-gzip"
        assert 0.0 <= weight <= 1.0


accept_tokens = st.sampled_from(["gzip", "x-gzip", "br", "zstd", "identity", "*", "deflate"])


@FAST
@given(
    elements=st.lists(
        st.tuples(
            accept_tokens, st.one_of(st.none(), st.floats(-1, 2), st.sampled_from(["x", ""]))
        ),
        max_size=6,
    ),
    offered=st.permutations(list(AVAILABLE)),
)
def test_negotiate_picks_an_offered_coding_with_the_highest_positive_weight(
    elements: list[tuple[str, Any]], offered: list[str]
) -> None:
    header = ", ".join(name if q is None else f"{name};q={q}" for name, q in elements)
    accept = parse_accept_encoding(header)
    chosen = negotiate(accept, offered)
    star = accept.get("*", 0.0)
    weights = {coding: accept.get(coding, star) for coding in offered}
    if chosen is None:
        best = max(weights.values(), default=0.0)
        assert best == 0.0 or accept.get("identity", -1) > best
    else:
        assert chosen in offered
        assert weights[chosen] > 0
        assert weights[chosen] == max(weights.values())


def _decompress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if coding == "br":
        return bytes(brotli.decompress(data))
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


@SLOWER
@given(
    coding=st.sampled_from(list(AVAILABLE)),
    chunks=st.lists(st.binary(max_size=300), max_size=6),
    last=st.binary(max_size=100),
)
def test_streaming_compressors_round_trip_and_every_prefix_decodes(
    coding: str, chunks: list[bytes], last: bytes
) -> None:
    level = {"gzip": 6, "br": 4, "zstd": 3}[coding]
    compressor = EncoderSpec(coding, level).streaming()
    out = b""
    sent = b""
    for chunk in chunks:
        out += compressor.compress(chunk)
        sent += chunk
        if coding == "gzip":  # a sync flush: everything so far decodes now
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            assert decoder.decompress(out) == sent
    out += compressor.flush(last)
    assert _decompress(coding, out) == sent + last
    assert _decompress(coding, EncoderSpec(coding, level).one_shot(sent + last)) == sent + last


# --- middleware/_origins.py --------------------------------------------------------------

label = st.text(st.sampled_from("abcz09-_.XY"), min_size=0, max_size=10)
origin_text = st.one_of(
    st.builds(
        lambda scheme, host, port: f"{scheme}://{host}{port}",
        st.sampled_from(["http", "https", "HTTPS", "ws", "ftp", "", "h ttp"]),
        label,
        st.sampled_from(["", ":80", ":443", ":8080", ":", ":x", ":99999", "/path", "@evil"]),
    ),
    st.text(max_size=30),
)


@FAST
@given(origin_text)
def test_normalize_origin_is_idempotent_and_lower_case(origin: str) -> None:
    normal = normalize_origin(origin)
    if normal is None:
        return
    assert normalize_origin(normal) == normal
    assert normal == normal.lower()
    scheme, _, rest = normal.partition("://")
    default = {"http": ":80", "ws": ":80", "https": ":443", "wss": ":443"}.get(scheme)
    assert default is None or not rest.endswith(default)


WILDCARD = OriginMatcher(["https://*.example.com"])


@FAST
@given(
    prefix=label,
    suffix=st.sampled_from(
        [
            ".example.com",
            "example.com",
            ".example.com.evil.net",
            ".example.co",
            ".example.com:8443",
            ".EXAMPLE.com",
        ]
    ),
)
def test_wildcard_matches_only_true_subdomains_with_the_same_scheme_and_port(
    prefix: str, suffix: str
) -> None:
    origin = f"https://{prefix}{suffix}"
    if WILDCARD(origin.encode("latin-1")):
        normal = normalize_origin(origin)
        assert normal is not None
        host = normal.removeprefix("https://")
        assert host.endswith(".example.com")
        assert host != ".example.com"
        assert ":" not in host


REGEX = r"https://[a-z]+\.example\.com"
BY_REGEX = OriginMatcher([], REGEX)


@FAST
@given(origin_text)
def test_regex_entries_match_the_whole_origin_only(origin: str) -> None:
    try:
        raw = origin.encode("latin-1")
    except UnicodeEncodeError:
        return
    if BY_REGEX(raw):
        normal = normalize_origin(origin)
        assert re.fullmatch(REGEX, origin) or (normal and re.fullmatch(REGEX, normal))


def _cors_asgi(origin: bytes) -> list[tuple[str, str]]:
    app = CORS(asgi_app(Reply()), allow_origins=["*"], allow_credentials=True)
    result = call_asgi(app, Request(headers=(("Origin", origin.decode("latin-1")),)))
    return result.headers


@FAST
@given(st.binary(min_size=1, max_size=30).filter(lambda b: not set(b) & set(b"\r\n")))
def test_credentials_are_never_allowed_with_a_wildcard_origin(origin: bytes) -> None:
    headers = dict(_cors_asgi(origin))
    if headers.get("access-control-allow-credentials") == "true":
        assert headers.get("access-control-allow-origin") != "*"


def test_origin_star_is_not_echoed_with_credentials() -> None:
    headers = dict(_cors_asgi(b"*"))
    assert headers.get("access-control-allow-origin") != "*"


# --- the access-log message --------------------------------------------------------------

printable_or_not = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=20)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _access_records(interface: str, request: Request, status: int = 200) -> list[logging.LogRecord]:
    logger = logging.getLogger("faults.properties.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = _Records()
    logger.addHandler(handler)
    try:
        reply = Reply(status=status)
        if interface == "wsgi":
            call_wsgi(AccessLog(wsgi_app(reply), logger=logger), request, validate=False)
        else:
            call_asgi(AccessLog(asgi_app(reply), logger=logger), request)
    finally:
        logger.removeHandler(handler)
    return handler.records


@FAST
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@given(
    path=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(lambda p: "/" + p),
    query=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    user_agent=printable_or_not,
    authorization=printable_or_not,
    status=st.sampled_from([200, 404, 500]),
)
def test_access_log_formats_any_request(
    interface: str,
    *,
    path: str,
    query: str,
    user_agent: str,
    authorization: str,
    status: int,
) -> None:
    request = Request(
        "GET",
        as_environ_str(path) if interface == "wsgi" else path,
        query,
        (("User-Agent", user_agent), ("Authorization", authorization)),
    )
    records = _access_records(interface, request, status)
    assert len(records) == 1
    message = records[0].getMessage()
    assert f'" {status} ' in message
    assert records[0].http["status"] == status  # type: ignore[attr-defined]


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_access_log_line_cannot_be_forged_with_a_newline(interface: str) -> None:
    forged = '/a\n10.0.0.1 - admin [01/Jan/2026:00:00:00 +0000] "GET /admin HTTP/1.1" 200 0'
    path = as_environ_str(forged) if interface == "wsgi" else forged
    request = Request("GET", path, "", (("User-Agent", "ua\r\nx"),))
    (record,) = _access_records(interface, request)
    message = record.getMessage()
    assert "\n" not in message
    assert "\r" not in message
