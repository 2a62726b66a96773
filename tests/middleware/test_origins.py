"""Origin normalisation and matching for CORS: pure, and where the security lives."""

from __future__ import annotations

import pytest

from middleware._origins import OriginMatcher, normalize_origin


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:443", "http://example.com:443"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://[::1]:80", "http://[::1]"),
        ("null", "null"),
        ("https://example.com/", None),
        ("https://user@example.com", None),
        ("https://example.com:port", None),
        ("example.com", None),
        ("https://exa mple.com", None),
        ("https://.example.com", None),
        ("https://example..com", None),
        ("https://[::1", None),
        ("https://[::1]x", None),
        ("1ttp://example.com", None),
    ],
)
def test_origins_are_normalised_or_refused(origin: str, normal: str | None) -> None:
    assert normalize_origin(origin) == normal


@pytest.mark.parametrize(
    ("origins", "regex", "origin", "allowed"),
    [
        (["https://example.com"], None, "https://example.com", True),
        (["https://example.com"], None, "https://EXAMPLE.com:443", True),
        (["https://example.com"], None, "http://example.com", False),
        (["https://example.com"], None, "https://example.com.evil.net", False),
        (["https://example.com:443"], None, "https://example.com", True),
        (["https://*.example.com"], None, "https://a.example.com", True),
        (["https://*.example.com"], None, "https://a.b.example.com", True),
        (["https://*.example.com"], None, "https://example.com", False),
        (["https://*.example.com"], None, "https://example.com.evil.net", False),
        (["https://*.example.com"], None, "https://evilexample.com", False),
        (["https://*.example.com"], None, "http://a.example.com", False),
        (["https://*.example.com"], None, "https://a.example.com:8443", False),
        (["https://*.example.com:8443"], None, "https://a.example.com:8443", True),
        (["https://*.example.com"], None, "https://a.example.com/", False),
        ([], r"https://.*\.example\.com", "https://evil-example.com.attacker.net", False),
        ([], r"https://.*\.example\.com", "https://x.example.com", True),
        ([], r"https://[a-z]+\.example\.com", "https://x.example.com.evil.net", False),
        ([], r"https://[a-z]+\.example\.com", "https://x.example.com/path", False),
        (["*"], None, "https://anything.net", True),
        ([], None, "null", False),
        (["null"], None, "null", True),
    ],
    ids=[
        "exact",
        "exact_after_normalising",
        "scheme_differs",
        "suffix_attack",
        "configured_with_default_port",
        "wildcard_one_label",
        "wildcard_two_labels",
        "wildcard_not_the_bare_domain",
        "wildcard_suffix_attack",
        "wildcard_label_boundary",
        "wildcard_scheme_differs",
        "wildcard_port_differs",
        "wildcard_with_port",
        "wildcard_with_path",
        "regex_is_a_full_match",
        "regex_matches",
        "regex_suffix_attack",
        "regex_with_path",
        "star",
        "null_refused_by_default",
        "null_when_listed",
    ],
)
def test_origin_matching(origins: list[str], regex: str | None, origin: str, allowed: bool) -> None:
    matcher = OriginMatcher(origins, regex)
    assert matcher(origin.encode()) is allowed
    assert matcher(origin.encode()) is allowed  # memoised answer is the same


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        "https://example.com/path",
        "https://a.*.example.com",
        "https://*",
        "*.x.com",
        "https://example.com:65536",
        "https://*.example.com:0443",
    ],
)
def test_bad_allow_list_entries_are_refused_at_construction(entry: str) -> None:
    with pytest.raises(ValueError, match="allow_origins"):
        OriginMatcher([entry])


def test_a_bad_regex_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        OriginMatcher([], "https://(")


def test_the_memo_stays_bounded() -> None:
    matcher = OriginMatcher(["https://example.com"])
    for i in range(3000):
        assert not matcher(f"https://host{i}.net".encode())
    assert len(matcher._cache) <= 1024


@pytest.mark.parametrize("origin", [b"*", b"https://a.example/path", b"", b"javascript:x"])
def test_star_allows_only_things_that_are_origins(origin: bytes) -> None:
    assert not OriginMatcher(["*"])(origin)
    assert OriginMatcher(["*"])(b"https://a.example")


@pytest.mark.parametrize(
    "origin",
    [
        "https://a.example.com:65536",
        "https://a.example.com:65979",  # 65979 - 65536 = 443: must not wrap to the default
        "https://a.example.com:99999",
        "https://a.example.com:0443",
        "https://a.example.com:000443",
        "https://a.example.com:" + "4" * 5000,  # int() refuses this many digits
        "https://a.example.com:",
        "https://a.example.com:+443",
        "https://a.example.com:\N{ARABIC-INDIC DIGIT FOUR}43",
        "http://[::1]:65536",
        "http://[::1]:",
    ],
)
def test_malformed_ports_match_nothing_under_any_kind_of_entry(origin: str) -> None:
    assert normalize_origin(origin) is None
    raw = origin.encode()
    for matcher in (
        OriginMatcher(["*"]),
        OriginMatcher(["https://a.example.com", "http://[::1]"]),
        OriginMatcher(["https://*.example.com"]),
        OriginMatcher([], r"https?://.*"),
        OriginMatcher([], r"https://a\.example\.com(:\d+)?"),
    ):
        assert matcher(raw) is False, matcher


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://a.example.com:65535", "https://a.example.com:65535"),
        ("https://a.example.com:1", "https://a.example.com:1"),
        ("https://a.example.com:0", "https://a.example.com:0"),
        ("http://[::1]:65535", "http://[::1]:65535"),
    ],
)
def test_ports_up_to_65535_are_kept(origin: str, normal: str) -> None:
    assert normalize_origin(origin) == normal
