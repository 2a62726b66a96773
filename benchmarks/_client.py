"""Load-generating clients, run as their own process (pinned to the other core).

    python -m benchmarks._client load URL --connections 32 --duration 2
    python -m benchmarks._client download URL --size 67108864
    python -m benchmarks._client upload URL --size 67108864

``load`` is the fallback when ``wrk`` is not installed: keep-alive HTTP/1.1 GETs on raw
asyncio sockets (uvloop when installed), each connection sending its next request when
the previous response is read. ``download``/``upload`` move one body with
``http.client`` and time it. Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import time
import urllib.parse
from typing import Any

_UPLOAD_CHUNK = bytes(256 * 1024)


async def _one_connection(
    host: str, port: int, request: bytes, stop_at: float, counts: dict[str, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            if b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                start = lower.find(b"content-length:")
                if start >= 0:
                    end = lower.index(b"\r\n", start)
                    await reader.readexactly(int(lower[start + 15 : end]))
            counts["requests"] += 1
            if not 200 <= status < 400:
                counts["non2xx"] += 1
            if b"connection: close" in lower:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        counts["errors"] += 1
    finally:
        writer.close()


async def _load(url: str, connections: int, duration: float) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
    counts = {"requests": 0, "non2xx": 0, "errors": 0}
    start = time.perf_counter()
    stop_at = start + duration
    await asyncio.gather(
        *(_one_connection(host, port, request, stop_at, counts) for _ in range(connections))
    )
    return {**counts, "seconds": time.perf_counter() - start}


def load(url: str, connections: int, duration: float) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_load(url, connections, duration))
    except ImportError:
        return asyncio.run(_load(url, connections, duration))


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    return conn, parts.path or "/"


def download(url: str, size: int) -> dict[str, Any]:
    conn, path = _connection(url)
    start = time.perf_counter()
    conn.request("GET", f"{path}?size={size}")
    response = conn.getresponse()
    received = 0
    buffer = bytearray(1024 * 1024)
    while True:
        n = response.readinto(buffer)
        if not n:
            break
        received += n
    seconds = time.perf_counter() - start
    conn.close()
    return {"status": response.status, "bytes": received, "seconds": seconds}


def upload(url: str, size: int) -> dict[str, Any]:
    conn, path = _connection(url)
    start = time.perf_counter()
    conn.putrequest("POST", path)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    sent = 0
    while sent < size:
        chunk = _UPLOAD_CHUNK[: size - sent]
        conn.send(chunk)
        sent += len(chunk)
    response = conn.getresponse()
    answer = response.read()
    seconds = time.perf_counter() - start
    conn.close()
    counted = int(answer) if answer.isdigit() else -1
    return {"status": response.status, "bytes": counted, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["load", "download", "upload"])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args()
    if args.mode == "load":
        result = load(args.url, args.connections, args.duration)
    elif args.mode == "download":
        result = download(args.url, args.size)
    else:
        result = upload(args.url, args.size)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
