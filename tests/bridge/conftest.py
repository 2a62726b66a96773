"""Fixtures shared by the ASGIToWSGI tests of this package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge._asgi_to_wsgi import ASGIToWSGI


@pytest.fixture(params=["thread", "shared"])
def loop_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make() -> Iterator[Callable[..., ASGIToWSGI]]:
    """Build adapters that are always closed at the end of the test."""
    made: list[ASGIToWSGI] = []

    def factory(app: Any, **options: Any) -> ASGIToWSGI:
        options.setdefault("lifespan", "off")
        adapter = ASGIToWSGI(app, **options)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
