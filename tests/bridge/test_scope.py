"""Table tests for ``bridge._scope``: environ -> ASGI scope, ASGI response head -> WSGI."""

from __future__ import annotations

from typing import Any

import pytest

from bridge._scope import (
    InvalidResponse,
    ScopeError,
    http_scope,
    http_version,
    request_headers,
    response_head,
)
from tests.environs import plain_environ

environ = plain_environ


def test_scope_has_every_key_the_asgi_http_spec_requires() -> None:
    scope = http_scope(environ(PATH_INFO="/a/b", QUERY_STRING="x=1"), state={"k": 1})
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/a/b",
        "raw_path": b"/a/b",
        "query_string": b"x=1",
        "root_path": "",
        "headers": [],
        "client": ("10.0.0.1", 40000),
        "server": ("example.com", 8080),
        "state": {"k": 1},
        "extensions": {},
    }


def test_scope_omits_state_when_none_is_given() -> None:
    assert "state" not in http_scope(environ())


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("HTTP/1.1", "1.1"),
        ("HTTP/1.0", "1.0"),
        ("HTTP/2", "2"),
        ("HTTP/2.0", "2"),
        ("http/1.0", "1.0"),
        ("HTTP/0.9", "1.1"),
        ("", "1.1"),
    ],
    ids=["1.1", "1.0", "2", "2.0", "lowercase", "unknown", "empty"],
)
def test_http_version_comes_from_server_protocol(protocol: str, expected: str) -> None:
    assert http_version(protocol) == expected
    assert http_scope(environ(SERVER_PROTOCOL=protocol))["http_version"] == expected


@pytest.mark.parametrize(
    ("script_name", "path_info", "path", "root_path", "raw_path"),
    [
        ("", "/", "/", "", b"/"),
        ("", "", "", "", b""),
        ("/app", "/items", "/app/items", "/app", b"/app/items"),
        ("/app", "", "/app", "/app", b"/app"),
        ("", "/caf\xc3\xa9", "/café", "", b"/caf%C3%A9"),
        ("/m\xc3\xbcnchen", "/x", "/münchen/x", "/münchen", b"/m%C3%BCnchen/x"),
        ("", "/a b", "/a b", "", b"/a%20b"),
        ("", "/a%2Fb", "/a%2Fb", "", b"/a%252Fb"),
    ],
    ids=[
        "root",
        "empty",
        "script-name-included-in-path",
        "script-name-only",
        "utf8-path-from-latin1-environ",
        "utf8-root-path",
        "space-escaped-in-raw-path",
        "literal-percent-escaped-in-raw-path",
    ],
)
def test_path_includes_root_path_and_is_decoded_as_utf8(
    script_name: str, path_info: str, path: str, root_path: str, raw_path: bytes
) -> None:
    scope = http_scope(environ(SCRIPT_NAME=script_name, PATH_INFO=path_info))
    assert scope["path"] == path
    assert scope["root_path"] == root_path
    assert scope["raw_path"] == raw_path


@pytest.mark.parametrize(
    ("extra", "raw_path"),
    [
        ({"RAW_URI": "/caf%C3%A9?q=1"}, b"/caf%C3%A9"),
        ({"REQUEST_URI": "/caf%c3%a9"}, b"/caf%c3%a9"),
        ({"RAW_URI": "/a%2Fb"}, b"/a%2Fb"),
        ({"RAW_URI": "http://example.com/caf%C3%A9?q"}, b"/caf%C3%A9"),
        ({"RAW_URI": "/other"}, b"/caf%C3%A9"),
        ({"RAW_URI": "/café"}, b"/caf%C3%A9"),
    ],
    ids=[
        "gunicorn-raw-uri-keeps-escapes",
        "request-uri-keeps-lowercase-escapes",
        "encoded-slash-survives",
        "absolute-form-target",
        "rewritten-path-ignores-stale-raw-uri",
        "non-latin1-raw-uri-ignored",
    ],
)
def test_raw_path_prefers_the_servers_raw_target_when_it_matches(
    extra: dict[str, str], raw_path: bytes
) -> None:
    path_info = "/a/b" if extra.get("RAW_URI") == "/a%2Fb" else "/caf\xc3\xa9"
    scope = http_scope(environ(PATH_INFO=path_info, **extra))
    assert scope["raw_path"] == raw_path


def test_raw_path_from_raw_uri_includes_script_name_under_a_dispatcher() -> None:
    scope = http_scope(environ(SCRIPT_NAME="/app", PATH_INFO="/x%y", RAW_URI="/app/x%25y"))
    assert scope["raw_path"] == b"/app/x%25y"
    assert scope["path"] == "/app/x%y"


@pytest.mark.parametrize(
    "path_info", ["/\xff", "/caf\xe9", "/\xc3"], ids=["0xff", "latin1-e-acute", "truncated-utf8"]
)
def test_undecodable_path_is_a_scope_error(path_info: str) -> None:
    with pytest.raises(ScopeError, match="not UTF-8"):
        http_scope(environ(PATH_INFO=path_info))


def test_undecodable_script_name_is_a_scope_error() -> None:
    with pytest.raises(ScopeError):
        http_scope(environ(SCRIPT_NAME="/\xff"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", b""),
        ("a=1&b=2", b"a=1&b=2"),
        ("q=caf\xc3\xa9", b"q=caf\xc3\xa9"),
        ("q=%C3%A9", b"q=%C3%A9"),
        ("q=\u20ac", b"q=\xe2\x82\xac"),
    ],
    ids=["empty", "ascii", "raw-utf8-bytes", "escaped", "non-latin1-server-string"],
)
def test_query_string_is_latin1_encoded_bytes(query: str, expected: bytes) -> None:
    assert http_scope(environ(QUERY_STRING=query))["query_string"] == expected


def test_query_string_missing_is_empty_bytes() -> None:
    env = environ()
    del env["QUERY_STRING"]
    assert http_scope(env)["query_string"] == b""


def test_request_headers_are_lowercase_bytes_with_content_headers_from_cgi_names() -> None:
    headers = request_headers(
        environ(
            HTTP_HOST="example.com",
            HTTP_X_FORWARDED_FOR="1.2.3.4",
            HTTP_COOKIE="a=1; b=2",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH="12",
            HTTP_X_LATIN="caf\xe9",
        )
    )
    assert sorted(headers) == [
        (b"content-length", b"12"),
        (b"content-type", b"application/json"),
        (b"cookie", b"a=1; b=2"),
        (b"host", b"example.com"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-latin", b"caf\xe9"),
    ]


def test_empty_cgi_content_headers_are_absent() -> None:
    assert request_headers(environ(CONTENT_TYPE="", CONTENT_LENGTH="")) == []


def test_server_copies_of_content_headers_are_not_duplicated() -> None:
    headers = request_headers(
        environ(CONTENT_TYPE="text/plain", HTTP_CONTENT_TYPE="text/plain", HTTP_CONTENT_LENGTH="3")
    )
    assert headers == [(b"content-type", b"text/plain")]


def test_empty_header_values_are_kept() -> None:
    assert request_headers(environ(HTTP_X_EMPTY="")) == [(b"x-empty", b"")]


@pytest.mark.parametrize(
    ("scheme", "port", "server"),
    [
        ("http", "8080", ("example.com", 8080)),
        ("http", "", ("example.com", 80)),
        ("https", "", ("example.com", 443)),
        ("https", None, ("example.com", 443)),
        ("http", "abc", ("example.com", 80)),
    ],
    ids=["explicit", "empty-http", "empty-https", "missing-https", "non-numeric"],
)
def test_server_port_defaults_to_the_schemes_port(
    scheme: str, port: str | None, server: tuple[str, int]
) -> None:
    env = environ(**{"wsgi.url_scheme": scheme})
    if port is None:
        del env["SERVER_PORT"]
    else:
        env["SERVER_PORT"] = port
    scope = http_scope(env)
    assert scope["server"] == server
    assert scope["scheme"] == scheme


def test_server_is_none_without_server_name() -> None:
    assert http_scope(environ(SERVER_NAME=""))["server"] is None


@pytest.mark.parametrize(
    ("addr", "port", "client"),
    [
        ("10.0.0.1", "40000", ("10.0.0.1", 40000)),
        ("10.0.0.1", "", ("10.0.0.1", None)),
        ("10.0.0.1", None, ("10.0.0.1", None)),
        ("", "40000", None),
        (None, None, None),
    ],
    ids=["addr-and-port", "empty-port", "missing-port", "empty-addr", "missing-addr"],
)
def test_client_comes_from_remote_addr_and_port(
    addr: str | None, port: str | None, client: tuple[str, int | None] | None
) -> None:
    env = environ()
    for key, value in (("REMOTE_ADDR", addr), ("REMOTE_PORT", port)):
        if value is None:
            del env[key]
        else:
            env[key] = value
    assert http_scope(env)["client"] == client


def test_method_is_uppercase() -> None:
    assert http_scope(environ(REQUEST_METHOD="post"))["method"] == "POST"


def test_extensions_are_passed_through() -> None:
    extensions: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
    assert http_scope(environ(), extensions=extensions)["extensions"] is extensions


# --- response_head ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [(200, "200 OK"), (404, "404 Not Found"), (299, "299 Success"), (599, "599 Server Error")],
    ids=["200", "404", "unknown-2xx", "unknown-5xx"],
)
def test_response_status_gets_its_reason_phrase(status: int, line: str) -> None:
    assert response_head({"type": "http.response.start", "status": status}) == (line, [])


def test_response_headers_become_latin1_strings_in_order_with_repeats_kept() -> None:
    message = {
        "status": 200,
        "headers": [
            (b"set-cookie", b"a=1"),
            (b"Content-Type", b"text/plain"),
            (b"set-cookie", b"b=2"),
            (b"x-latin", b"caf\xe9"),
        ],
    }
    assert response_head(message) == (
        "200 OK",
        [
            ("set-cookie", "a=1"),
            ("Content-Type", "text/plain"),
            ("set-cookie", "b=2"),
            ("x-latin", "caf\xe9"),
        ],
    )


def test_hop_by_hop_response_headers_are_dropped() -> None:
    message = {
        "status": 200,
        "headers": [
            (b"connection", b"close"),
            (b"transfer-encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"x-kept", b"1"),
        ],
    }
    assert response_head(message) == ("200 OK", [("x-kept", "1")])


@pytest.mark.parametrize(
    "message",
    [
        {"status": "200"},
        {"status": 200.0},
        {"status": True},
        {"status": 101},
        {"status": 1000},
        {"status": 200, "headers": [(b"x", b"a\r\nSet-Cookie: evil=1")]},
        {"status": 200, "headers": [(b"x", b"a\nb")]},
        {"status": 200, "headers": [(b"x", b"a\x00b")]},
        {"status": 200, "headers": [(b"bad name", b"v")]},
        {"status": 200, "headers": [(b"x\r\n", b"v")]},
        {"status": 200, "headers": [(b"", b"v")]},
        {"status": 200, "headers": [("x", b"v")]},
        {"status": 200, "headers": [(b"x", "v")]},
        {"status": 200, "headers": [(b"x",)]},
        {"status": 200, "headers": [None]},
    ],
    ids=[
        "str-status",
        "float-status",
        "bool-status",
        "informational",
        "four-digits",
        "crlf-injection",
        "bare-lf",
        "nul",
        "space-in-name",
        "crlf-in-name",
        "empty-name",
        "str-name",
        "str-value",
        "one-tuple",
        "none-header",
    ],
)
def test_invalid_response_heads_are_rejected(message: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponse):
        response_head(message)


def test_each_scope_gets_its_own_mutable_parts() -> None:
    first, second = http_scope(environ()), http_scope(environ())
    assert first["asgi"] is not second["asgi"]
    assert first["headers"] is not second["headers"]
