"""The per-request conversation with a handler, written once for both drivers.

A driver translates its interface's events (``start_response``, ``send`` messages, the
body iterable, ``close()``) into calls on one :class:`Conversation` and turns what it
returns back into native output. Whether the response head is held, released or
streamed, and whether a handler kept the rules of :mod:`middleware._core`, is decided
here, once; a broken rule raises :class:`ProtocolError` naming the handler and the rule
(never an ``assert``, which ``python -O`` strips). No I/O here.

Phases and the events allowed in each::

    AWAITING_START --start--> HEAD_HELD (head held) | STREAMING (head released)
    HEAD_HELD      --body---> HEAD_HELD | STREAMING | COMPLETE (last chunk)
    HEAD_HELD      --start--> (again: a WSGI exc_info restart, or the driver's 500)
    STREAMING      --body---> STREAMING | COMPLETE (last chunk)
    HEAD_HELD, STREAMING --opaque--> COMPLETE
    any            --end----> FINISHED (on_complete exactly once)
"""

from __future__ import annotations

import enum

from middleware._core import Handler, Head, HeaderList, Outcome, ProtocolError

__all__ = [
    "BareConversation",
    "Conversation",
    "Phase",
    "head_only_start",
    "held_head_error",
    "leaked_body_error",
    "still_held_error",
]


class Phase(enum.Enum):
    """Where the response is, seen from the handler's side."""

    AWAITING_START = enum.auto()  # nothing from the app yet
    HEAD_HELD = enum.auto()  # the app started; the handler holds the head
    STREAMING = enum.auto()  # the head went out; body chunks follow
    COMPLETE = enum.auto()  # the last chunk (or an opaque body) went out
    FINISHED = enum.auto()  # on_complete was called


AWAITING_START = Phase.AWAITING_START
HEAD_HELD = Phase.HEAD_HELD
STREAMING = Phase.STREAMING
COMPLETE = Phase.COMPLETE
FINISHED = Phase.FINISHED


def _name(handler: Handler) -> str:
    return type(handler).__name__


def head_only_start(handler: Handler, status: int, headers: HeaderList) -> Head:
    """``on_response_start`` of a ``head_only`` handler, which must never hold the head."""
    head = handler.on_response_start(status, headers)
    if head is None:
        raise held_head_error(handler)
    return head


def held_head_error(handler: Handler) -> ProtocolError:
    """The error for a ``head_only`` handler whose ``on_response_start`` returned ``None``
    (drivers that inline :func:`head_only_start` raise it themselves)."""
    return ProtocolError(
        f"{_name(handler)} is head_only but held the head (on_response_start returned None)"
    )


def still_held_error(handler: Handler) -> ProtocolError:
    """The error for a handler still holding the head after the last body chunk."""
    return ProtocolError(
        f"{_name(handler)} still held the head after the last body chunk "
        "(pending_head() returned None when more=False)"
    )


def leaked_body_error(handler: Handler) -> ProtocolError:
    """The error for a handler that returned body bytes while holding the head."""
    return ProtocolError(
        f"{_name(handler)} returned body bytes while holding the head "
        "(release it with pending_head() first)"
    )


class Conversation:
    """One request's calls into its handler, in the order of :mod:`middleware._core`."""

    __slots__ = ("handler", "phase")

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.phase = AWAITING_START

    def _refuse(self, event: str) -> ProtocolError:
        # Drivers only send events their own state allows; reaching this is a bug in a
        # driver, reported the same way as a handler's.
        return ProtocolError(f"{event} while the response is {self.phase.name}")

    def start(self, status: int, headers: HeaderList) -> Head | None:
        """The app's response head; returns the head to send now, or ``None`` (held)."""
        phase = self.phase
        # Identity tests, not set membership: hashing an Enum member runs Python code.
        if phase is not AWAITING_START and phase is not HEAD_HELD:
            raise self._refuse("start")
        head = self.handler.on_response_start(status, headers)
        self.phase = HEAD_HELD if head is None else STREAMING
        return head

    def body(self, chunk: bytes, more: bool) -> tuple[Head | None, bytes]:
        """One body chunk: the head to send first (when released now) and the bytes."""
        phase = self.phase
        if phase is not HEAD_HELD and phase is not STREAMING:
            raise self._refuse("body")
        handler = self.handler
        out = handler.on_body(chunk, more)
        head = None
        if phase is HEAD_HELD:
            head = handler.pending_head()
            if head is None:
                if not more:
                    raise still_held_error(handler)
                if out:
                    raise leaked_body_error(handler)
                return None, out
            self.phase = STREAMING
        if not more:
            self.phase = COMPLETE
        return head, out

    def opaque(self) -> Head | None:
        """The body will not pass through Python; returns the held head to send, if any."""
        phase = self.phase
        if phase is not HEAD_HELD and phase is not STREAMING:
            raise self._refuse("opaque")
        holding = phase is HEAD_HELD
        head = self.handler.on_opaque_body()
        if holding and head is None:
            raise ProtocolError(
                f"{_name(self.handler)} held the head but on_opaque_body() did not return it"
            )
        if not holding and head is not None:
            raise ProtocolError(f"{_name(self.handler)} released the head twice (on_opaque_body)")
        self.phase = COMPLETE
        return head

    def restart(self) -> bool:
        """Forget a held head (the driver answers 500 instead); ``False`` once it went out."""
        if self.phase is AWAITING_START or self.phase is HEAD_HELD:
            self.phase = AWAITING_START
            return True
        return False

    def end(self) -> bool:
        """Mark the request finished; ``False`` if it already was (report only once)."""
        if self.phase is FINISHED:
            return False
        self.phase = FINISHED
        return True

    def finish(self, outcome: Outcome) -> None:
        """Tell the handler how the request ended, exactly once."""
        if self.end():
            self.handler.on_complete(outcome)


class BareConversation(Conversation):
    """A :class:`Conversation` made without an ``__init__`` frame, for the drivers' hot
    paths: the maker sets ``handler`` and ``phase`` (``AWAITING_START``) itself."""

    __slots__ = ()
    __init__ = object.__init__
