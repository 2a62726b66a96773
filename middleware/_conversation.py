"""The checks of the per-request conversation, written once for both drivers.

Each driver keeps only its transport state (what went to the server); whether a
handler kept the rules of :mod:`middleware._core` is decided here, with a
:class:`ProtocolError` that names the handler and the rule (never an ``assert``, which
``python -O`` strips).
"""

from __future__ import annotations

from middleware._core import Handler, Head, HeaderList, ProtocolError

__all__ = ["head_only_start", "opaque_head", "released_head"]


def _name(handler: Handler) -> str:
    return type(handler).__name__


def head_only_start(handler: Handler, status: int, headers: HeaderList) -> Head:
    """``on_response_start`` of a ``head_only`` handler, which must never hold the head."""
    head = handler.on_response_start(status, headers)
    if head is None:
        raise ProtocolError(
            f"{_name(handler)} is head_only but held the head (on_response_start returned None)"
        )
    return head


def released_head(handler: Handler, more: bool) -> Head | None:
    """``pending_head`` after a body chunk while the head is held; by the last chunk the
    handler must have decided."""
    head = handler.pending_head()
    if head is None and not more:
        raise ProtocolError(
            f"{_name(handler)} still held the head after the last body chunk "
            "(pending_head() returned None when more=False)"
        )
    return head


def opaque_head(handler: Handler, holding: bool) -> Head | None:
    """``on_opaque_body``: a handler holding the head must hand it back; one that
    released it already must not release it again."""
    head = handler.on_opaque_body()
    if holding and head is None:
        raise ProtocolError(
            f"{_name(handler)} held the head but on_opaque_body() did not return it"
        )
    if not holding and head is not None:
        raise ProtocolError(f"{_name(handler)} released the head twice (on_opaque_body)")
    return head
