"""Compress's per-thread zstd compressor under race stress: many threads compressing
whole bodies at once, each output the bytes a compressor of its own would give."""

from __future__ import annotations

import threading

import zstandard

from middleware._encodings import EncoderSpec


def test_every_thread_gets_its_own_bodies_compressed_right() -> None:
    spec = EncoderSpec("zstd", 3)
    bodies = [(b"%d-" % i) * (1 + i * 131 % 4000) for i in range(64)]
    expected = [zstandard.ZstdCompressor(level=3).compress(body) for body in bodies]
    wrong: list[tuple[int, int]] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        for round_ in range(300):
            index = (worker * 7 + round_) % len(bodies)
            if spec.one_shot(bodies[index]) != expected[index]:
                wrong.append((worker, index))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert wrong == []
