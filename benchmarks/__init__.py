"""Benchmarks for wsgi-asgi-bridge: run ``python -m benchmarks --help`` (see README.md)."""
