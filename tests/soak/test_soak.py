"""Soak: minutes of mixed, concurrent traffic per adapter against a real server.

Run with ``pytest -m soak tests/soak`` (deselected by default); ``SOAK_SECONDS`` sets
the duration of each run (default 180), ``SOAK_CLIENTS`` the concurrency (default 32),
``SOAK_REPORT`` a file to append a JSON summary of each run to.

The mix: small GETs, uploads up to 1 MiB (checked by sha256), streamed responses,
Server-Sent Events, clients that hang up mid-stream, and requests to a route that
raises (the only errors allowed, and they must come back as 500 or a cut stream).

The server process must stay flat: resident memory of the last minute within 10 % of
the first minute's (after a warm-up), and threads and file descriptors, once idle
again, back to their idle level before the run (within a few).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.servers import asgi_server_argv, free_port, require_module, serve, wsgi_server_argv
from tests.soak.soak_apps import stream_chunk

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "180"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "32"))
WARMUP = min(30.0, SECONDS / 4)
#: The mix, as (kind, weight).
MIX = [
    ("small", 40),
    ("upload", 10),
    ("stream", 15),
    ("sse", 15),
    ("disconnect", 12),
    ("raise", 8),
]


@dataclass
class Sample:
    t: float
    rss_kb: int
    threads: int
    fds: int


def sample(pid: int, start: float) -> Sample:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(value.split()[0])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(time.monotonic() - start, values["VmRSS"], values["Threads"], fds)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def ok(self, kind: str) -> None:
        with self.lock:
            self.done[kind] += 1

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(text)
            self.done["error"] += 1


def _one(kind: str, client: httpx.Client, address: tuple[str, int], rng: random.Random) -> None:
    """One request of ``kind``; raises AssertionError when the outcome is wrong."""
    if kind == "small":
        response = client.get("/small")
        assert response.status_code == 200, response
        assert response.content == b"ok", response
    elif kind == "upload":
        data = rng.randbytes(rng.choice([1, 64 * 1024, 512 * 1024, 1024 * 1024]))
        response = client.post("/echo", content=data)
        assert response.status_code == 200, response
        assert response.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    elif kind == "stream":
        n, size = rng.choice([(10, 1024), (50, 16 * 1024), (200, 4096)])
        received = []
        with client.stream("GET", f"/stream?n={n}&size={size}") as response:
            assert response.status_code == 200
            received.extend(response.iter_bytes())
        data = b"".join(received)
        expected = b"".join(stream_chunk(i, size) for i in range(n))
        if data != expected:
            got = [int(data[i : i + 8]) for i in range(0, len(data), size)]
            raise AssertionError(f"n={n} size={size}: got {len(data)} bytes, chunks {got}")
    elif kind == "sse":
        n = rng.choice([5, 20])
        with client.stream("GET", f"/sse?n={n}") as response:
            assert response.status_code == 200
            text = b"".join(response.iter_bytes()).decode()
        assert text.count("data: event") == n, text[-200:]
    elif kind == "disconnect":
        with socket.create_connection(address, timeout=30) as sock:
            sock.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: soak\r\n\r\n")
            received = 0
            wanted = rng.choice([1, 4096, 20_000])
            while received < wanted:
                chunk = sock.recv(65536)
                assert chunk, "the server closed a stream the client was still reading"
                received += len(chunk)
            if rng.random() < 0.5:  # an abortive close (RST), not a FIN
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
    elif kind == "raise":
        if rng.random() < 0.5:
            response = client.get("/raise")
            assert response.status_code == 500, response
        else:
            # Injected failure mid-stream: the stream is cut; that is the expected outcome.
            # (ASGIToWSGI: an app raising before the server took its head gets a 500.)
            try:
                response = client.get("/raise-mid")
            except httpx.HTTPError:
                pass
            else:
                if response.status_code != 500:
                    raise AssertionError("a stream whose app raised arrived complete")


def _client_loop(
    url: str, address: tuple[str, int], stop: threading.Event, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    client = httpx.Client(base_url=url, timeout=60)
    try:
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            try:
                _one(kind, client, address, rng)
            except Exception as exc:
                tally.error(f"{kind}: {exc!r}")
                if kind == "raise":
                    client.close()
                    client = httpx.Client(base_url=url, timeout=60)
            else:
                tally.ok(kind)
    finally:
        client.close()


def _stats(url: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as client:
        data: dict[str, Any] = client.get("/stats").json()
    return data


def _wait_idle(url: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = _stats(url)
        if (stats["busy"] <= 1 and stats.get("pending", 1) <= 1) or time.monotonic() > deadline:
            time.sleep(1.0)  # let closed connections and finished threads go away
            return _stats(url)
        time.sleep(0.2)


def _load(url: str, seconds: float, tally: Tally, seed: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(url, (host, int(port)), stop, tally, seed + i),
            name=f"soak-client-{i}",
            daemon=True,
        )
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a soak client hung"


SERVERS = {
    "wsgi_to_asgi-uvicorn": ("uvicorn", "tests.soak.soak_apps:wsgi_to_asgi"),
    "asgi_to_wsgi-gunicorn_gthread": ("gunicorn", "tests.soak.soak_apps:asgi_to_wsgi"),
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    name: str = request.param
    module, target = SERVERS[name]
    require_module(module)
    port = free_port()
    if module == "uvicorn":
        argv = asgi_server_argv("uvicorn", target, port)
    else:
        argv = wsgi_server_argv("gunicorn-gthread", target, port)
    with serve(argv, port) as url:
        yield name, url


@pytest.mark.timeout(SECONDS * 2 + 600)
def test_soak(server: tuple[str, str]) -> None:
    name, url = server
    # Warm-up: fill the pools, caches and allocator arenas, then measure idle levels.
    _load(url, WARMUP, Tally(), seed=1)
    idle_before = _wait_idle(url)
    pid = idle_before["pid"]

    tally = Tally()
    samples: list[Sample] = []
    start = time.monotonic()
    stop_sampling = threading.Event()

    def sampler() -> None:
        while not stop_sampling.is_set():
            samples.append(sample(pid, start))
            stop_sampling.wait(2.0)

    sampling = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
    sampling.start()
    try:
        _load(url, SECONDS, tally, seed=1000)
    finally:
        stop_sampling.set()
        sampling.join(10)
    idle_after = _wait_idle(url)

    minute = min(60.0, SECONDS / 2)
    first = [s for s in samples if s.t <= minute]
    last = [s for s in samples if s.t >= SECONDS - minute]
    rss_first = statistics.median(s.rss_kb for s in first)
    rss_last = statistics.median(s.rss_kb for s in last)
    summary = {
        "server": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": SECONDS,
        "clients": CLIENTS,
        "load_average": os.getloadavg(),
        "requests": dict(tally.done),
        "requests_per_second": round(sum(tally.done.values()) / SECONDS, 1),
        "errors": tally.errors[:10],
        "rss_kb_first_minute_median": rss_first,
        "rss_kb_last_minute_median": rss_last,
        "rss_growth_percent": round(100 * (rss_last - rss_first) / rss_first, 2),
        "threads_first_minute_max": max(s.threads for s in first),
        "threads_last_minute_max": max(s.threads for s in last),
        "fds_first_minute_max": max(s.fds for s in first),
        "fds_last_minute_max": max(s.fds for s in last),
        "idle_before": {k: idle_before[k] for k in ("threads", "fds")},
        "idle_after": {k: idle_after[k] for k in ("threads", "fds")},
    }
    report = os.environ.get("SOAK_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(json.dumps(summary) + "\n")
    print(json.dumps(summary, indent=2))

    # Injected failures ("raise") are counted as successes when they fail as injected.
    assert not tally.errors, tally.errors[:10]
    assert sum(tally.done.values()) > CLIENTS, "the load did not run"
    assert rss_last < rss_first * 1.10, summary
    assert summary["threads_last_minute_max"] <= summary["threads_first_minute_max"] + 4, summary
    assert idle_after["threads"] <= idle_before["threads"] + 4, summary
    assert idle_after["fds"] <= idle_before["fds"] + 4, summary
