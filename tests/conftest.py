"""Shared fixtures: logging capture helpers live with the tests that use them."""

from __future__ import annotations
