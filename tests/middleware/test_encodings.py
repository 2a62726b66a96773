"""Accept-Encoding parsing and negotiation (RFC 9110 12.5.3) and the compressors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import brotli
import pytest
import zstandard

from middleware._encodings import AVAILABLE, EncoderSpec, negotiate, parse_accept_encoding

OFFERED = ("zstd", "br", "gzip")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("gzip", {"gzip": 1.0}),
        ("GZip, BR", {"gzip": 1.0, "br": 1.0}),
        ("  gzip ;  q=0.5 ,br;Q=1", {"gzip": 0.5, "br": 1.0}),
        ("gzip;q=0", {"gzip": 0.0}),
        ("x-gzip", {"gzip": 1.0}),
        ("*;q=0.1", {"*": 0.1}),
        ("identity", {"identity": 1.0}),
        ("", {}),
        (",,, ,", {}),
        ("gzip;q=abc, br", {"br": 1.0}),
        ("gzip;q=1.5, br", {"br": 1.0}),
        ("gzip;q=-1", {}),
        ("gzip;q=nan", {}),
        ("gzip;level=1;q=0.3", {"gzip": 0.3}),
        ("gzip;q=0.2, gzip", {"gzip": 0.2}),
        ("g zip", {}),
    ],
    ids=[
        "single",
        "case_insensitive",
        "whitespace_and_weights",
        "q_zero",
        "x_gzip_alias",
        "star",
        "identity",
        "empty",
        "only_commas",
        "malformed_q_ignored",
        "q_above_one_ignored",
        "negative_q_ignored",
        "nan_q_ignored",
        "other_parameters_skipped",
        "first_mention_wins",
        "not_a_token",
    ],
)
def test_accept_encoding_is_parsed_per_rfc_9110(header: str, parsed: dict[str, float]) -> None:
    assert parse_accept_encoding(header) == parsed


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("gzip;q=0", None),
        ("*", "zstd"),
        ("*;q=0.5, zstd;q=0", "br"),
        ("*;q=0", None),
        ("identity", None),
        ("deflate", None),
        ("", None),
        ("gzip;q=0.5, identity", None),
        ("gzip, identity;q=0.5", "gzip"),
    ],
    ids=[
        "browser_default_prefers_server_order",
        "br_before_gzip",
        "gzip_only",
        "client_weights_win",
        "q_zero_refuses",
        "star_takes_the_first_offer",
        "star_with_exclusion",
        "star_zero_refuses_everything",
        "identity_only",
        "unsupported_only",
        "empty_header",
        "identity_preferred_by_weight",
        "identity_less_preferred",
    ],
)
def test_negotiation_picks_the_best_offered_coding(header: str, chosen: str | None) -> None:
    assert negotiate(parse_accept_encoding(header), OFFERED) == chosen


def test_every_optional_coding_is_available_here() -> None:
    assert AVAILABLE == ("zstd", "br", "gzip")


def _decoders() -> dict[str, object]:
    return {
        "gzip": lambda: zlib.decompressobj(31),
        "br": brotli.Decompressor,
        "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    }


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
def test_each_chunk_is_decodable_as_soon_as_it_is_compressed(name: str) -> None:
    level = {"gzip": 6, "br": 4, "zstd": 3}[name]
    compressor = EncoderSpec(name, level).streaming()
    decoder = _decoders()[name]()  # type: ignore[operator]
    feed = decoder.process if name == "br" else decoder.decompress
    for event in (b"data: one\n\n", b"data: two\n\n"):
        assert feed(compressor.compress(event)) == event
    assert compressor.compress(b"") == b""
    assert feed(compressor.flush(b"data: last\n\n")) == b"data: last\n\n"


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
def test_one_shot_and_flush_round_trip(name: str) -> None:
    spec = EncoderSpec(name, 5)
    data = b"hello world " * 200
    decoders = {
        "gzip": lambda b: zlib.decompress(b, 31),
        "br": brotli.decompress,
        "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
    }
    assert decoders[name](spec.one_shot(data)) == data
    assert decoders[name](spec.streaming().flush()) == b""


@pytest.mark.parametrize(
    ("name", "level"),
    [("gzip", 10), ("gzip", -1), ("br", 12), ("zstd", 23), ("deflate", 1)],
)
def test_bad_levels_and_unknown_codings_are_refused(name: str, level: int) -> None:
    with pytest.raises(ValueError, match=r"must be|unknown"):
        EncoderSpec(name, level)


def test_without_the_optional_extras_only_gzip_is_offered() -> None:
    # A fresh interpreter where importing brotli and zstandard fails, as when the
    # extras are not installed.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["brotli"] = None
        sys.modules["zstandard"] = None
        import middleware
        from middleware import Compress
        assert middleware.AVAILABLE_ENCODINGS == ("gzip",), middleware.AVAILABLE_ENCODINGS
        app = Compress(lambda environ, start_response: [])
        assert app._core._offered == ("gzip",)
        for name in ("br", "zstd"):
            try:
                Compress(lambda environ, start_response: [], encodings=(name,))
            except ValueError as exc:
                assert "pip install" in str(exc), exc
            else:
                raise AssertionError(name)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_zstd_whole_bodies_reuse_their_threads_compressor_for_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = 0
    real = zstandard.ZstdCompressor

    def counting(**options: int) -> zstandard.ZstdCompressor:
        nonlocal made
        made += 1
        return real(**options)

    monkeypatch.setattr(zstandard, "ZstdCompressor", counting)
    spec = EncoderSpec("zstd", 3)
    bodies = [b"", b"x", b'{"id": 1}' * 100, bytes(range(256)) * 64, b"a" * 16385, b"b" * 1000]
    for body in bodies:
        assert spec.one_shot(body) == real(level=3).compress(body)
    # One compressor for every body up to 16 KiB, and one of its own for the bigger one.
    assert made == 2


def test_zstd_whole_bodies_compressed_in_many_threads_at_once_are_each_right() -> None:
    spec = EncoderSpec("zstd", 3)
    bodies = [(b"%d," % i) * (i * 37 % 5000) for i in range(400)]
    expected = [zstandard.ZstdCompressor(level=3).compress(body) for body in bodies]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(spec.one_shot, bodies)) == expected
