"""SecurityHeaders: a behaviour table run through all four ways (WSGI, ASGI, both adapters)."""

from __future__ import annotations

from typing import Any

import pytest

from middleware import Middleware, ProxyHeaders, SecurityHeaders, Stack
from middleware.testing import PlainRequest, run

DEFAULTS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
APP = [(b"content-type", b"text/plain")]


def _added(result: Any) -> list[tuple[bytes, bytes]]:
    return [pair for pair in result.headers if pair not in APP]


def test_defaults_on_http_have_no_hsts() -> None:
    for way, result in run(SecurityHeaders, PlainRequest(), headers=APP).items():
        assert _added(result) == DEFAULTS, way
        assert result.body == b"hello", way


def test_defaults_on_https_add_hsts() -> None:
    for way, result in run(SecurityHeaders, PlainRequest(scheme="https"), headers=APP).items():
        assert _added(result) == [HSTS, *DEFAULTS], way


def test_hsts_follows_the_forwarded_scheme_only_from_a_trusted_proxy() -> None:
    stack = Stack([Middleware(ProxyHeaders), Middleware(SecurityHeaders)])
    tls = [(b"x-forwarded-proto", b"https")]
    for way, result in run(stack, PlainRequest(headers=tls), headers=APP).items():
        assert result.header(b"strict-transport-security") == HSTS[1], way
    spoofed = PlainRequest(headers=tls, client=("203.0.113.9", 1))
    for way, result in run(stack, spoofed, headers=APP).items():
        assert result.header(b"strict-transport-security") is None, way


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_app_s_own_header_wins_unless_told_otherwise(overwrite: bool) -> None:
    app_headers = [*APP, (b"x-frame-options", b"SAMEORIGIN"), (b"referrer-policy", b"no-referrer")]
    make: Any = lambda app: SecurityHeaders(app, overwrite=overwrite)  # noqa: E731
    for way, result in run(make, headers=app_headers).items():
        frame = result.header(b"x-frame-options")
        referrer = result.header(b"referrer-policy")
        if overwrite:
            assert (frame, referrer) == (b"DENY", b"strict-origin-when-cross-origin"), way
        else:
            assert (frame, referrer) == (b"SAMEORIGIN", b"no-referrer"), way
        assert result.header(b"x-content-type-options") == b"nosniff", way
        assert len(result.headers) == len(app_headers) + 2, way  # never doubled


def test_every_option() -> None:
    make: Any = lambda app: SecurityHeaders(  # noqa: E731
        app,
        hsts="max-age=63072000; includeSubDomains; preload",
        content_type_options=None,
        referrer_policy="no-referrer",
        frame_options="SAMEORIGIN",
        content_security_policy="default-src 'self'; ",
        permissions_policy="camera=(), microphone=()",
    )
    for way, result in run(make, PlainRequest(scheme="https"), headers=APP).items():
        assert _added(result) == [
            (b"strict-transport-security", b"max-age=63072000; includeSubDomains; preload"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"content-security-policy", b"default-src 'self'; frame-ancestors 'self'"),
            (b"permissions-policy", b"camera=(), microphone=()"),
        ], way


def test_a_policy_that_says_frame_ancestors_is_kept_as_given() -> None:
    make: Any = lambda app: SecurityHeaders(  # noqa: E731
        app, content_security_policy="frame-ancestors https://a.example", frame_options=None
    )
    for way, result in run(make, headers=APP).items():
        assert result.header(b"content-security-policy") == b"frame-ancestors https://a.example"
        assert result.header(b"x-frame-options") is None, way


def test_everything_off_leaves_the_response_alone() -> None:
    make: Any = lambda app: SecurityHeaders(  # noqa: E731
        app, hsts=None, content_type_options=None, referrer_policy=None, frame_options=None
    )
    for way, result in run(make, PlainRequest(scheme="https"), headers=APP).items():
        assert result.headers == APP, way


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frame_options": "ALLOW-FROM x"},
        {"frame_options": 1},
        {"hsts": "max-age=1\r\nx: y"},
        {"referrer_policy": 1},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"frame_options|hsts|referrer_policy"):
        SecurityHeaders(lambda e, s: [], **kwargs)
