"""The neutral per-request conversation both drivers run: phases and broken rules."""

from __future__ import annotations

from typing import Any

import pytest

from middleware._conversation import Conversation, Phase
from middleware.api import Handler, Head, HeaderList, Outcome, ProtocolError


class Holder(Handler):
    """Holds the head until ``release_after`` chunks were seen."""

    def __init__(self, release_after: int = 1, leak: bool = False) -> None:
        self.seen = 0
        self.release_after = release_after
        self.leak = leak
        self.head: Head | None = None
        self.outcomes: list[Outcome] = []

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        self.head = (status, headers)
        return None

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        self.seen += 1
        return chunk if self.leak or self.seen >= self.release_after else b""

    def pending_head(self) -> Head | None:
        return self.head if self.seen >= self.release_after else None

    def on_complete(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def test_a_held_head_is_released_with_the_chunk_that_decides() -> None:
    conversation = Conversation(Holder(release_after=2))
    assert conversation.start(200, []) is None
    assert conversation.phase is Phase.HEAD_HELD
    assert conversation.body(b"a", True) == (None, b"")
    assert conversation.body(b"b", True) == ((200, []), b"b")
    assert conversation.phase is Phase.STREAMING
    assert conversation.body(b"", False) == (None, b"")
    assert conversation.phase is Phase.COMPLETE


def test_on_complete_is_called_exactly_once() -> None:
    handler = Holder()
    conversation = Conversation(handler)
    conversation.finish(Outcome.COMPLETED)
    conversation.finish(Outcome.APP_EXCEPTION)
    assert handler.outcomes == [Outcome.COMPLETED]
    assert conversation.end() is False


@pytest.mark.parametrize(
    ("handler", "more", "error"),
    [
        (Holder(release_after=5), False, "still held the head after the last body chunk"),
        (Holder(release_after=5, leak=True), True, "returned body bytes while holding the head"),
    ],
    ids=["held_past_the_end", "bytes_while_held"],
)
def test_broken_rules_raise_protocol_error_naming_the_handler(
    handler: Holder, more: bool, error: str
) -> None:
    conversation = Conversation(handler)
    conversation.start(200, [])
    with pytest.raises(ProtocolError, match=f"Holder {error}"):
        conversation.body(b"x", more)


def test_events_out_of_order_are_refused() -> None:
    conversation = Conversation(Handler())
    with pytest.raises(ProtocolError, match="body while the response is AWAITING_START"):
        conversation.body(b"x", True)
    conversation.start(200, [])
    conversation.body(b"x", False)
    with pytest.raises(ProtocolError, match="start while the response is COMPLETE"):
        conversation.start(200, [])
    assert conversation.restart() is False


@pytest.mark.parametrize(
    ("handler", "bodies", "error"),
    [
        (Holder(release_after=5), [(b"x", True), (b"", False)], "still held the head"),
        (Holder(release_after=5, leak=True), [(b"x", True)], "returned body bytes while"),
    ],
    ids=["held_past_the_end", "bytes_while_held"],
)
async def test_the_asgi_driver_refuses_the_same_broken_rules(
    handler: Holder, bodies: list[tuple[bytes, bool]], error: str
) -> None:
    from middleware.api import Core, CoreMiddleware

    class One(Core):
        def on_request(self, head: object) -> Handler:
            return handler

    class Wrap(CoreMiddleware):
        def __init__(self, app: object) -> None:
            super().__init__(app, One())

    async def app(scope: object, receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for body, more in bodies:
            await send({"type": "http.response.body", "body": body, "more_body": more})

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(ProtocolError, match=f"Holder {error}"):
        await Wrap(app)(scope, receive, send)
    assert not [m for m in sent if m["type"] == "http.response.body"]
