"""The event vocabulary: its wire format reads back what it wrote, and every kind a client
sees is documented under the name the OpenAPI document gives it."""

from __future__ import annotations

from typing import get_args

from app.api.answers import SSE_EVENT_MODELS
from app.events import (
    END,
    POKE,
    SSE_KINDS,
    EventKind,
    decode_events,
    encode_events,
    event_model_name,
    message_event,
    state_event,
    status_event,
)
from app.models import ChatState, TranscriptEntry, UpstreamStatus


def test_the_wire_format_reads_back_what_it_wrote() -> None:
    state = ChatState("Chatting", ("SendMessage",), ({"type": "Agent", "nickname": "Ann ✓"},))
    events = [
        message_event(TranscriptEntry(4, {"index": 4, "type": "Text", "text": "a\nb"}), 2),
        state_event(state),
        status_event(UpstreamStatus.DEGRADED),
        END,
        POKE,
    ]
    decoded = decode_events(encode_events(events))
    assert decoded == events
    assert decoded[0].raw == events[0].raw
    assert ChatState.from_json(decoded[1].data) == state
    assert encode_events([]) == "[]"


def test_each_kind_clients_see_is_documented_under_its_name() -> None:
    documented = {model.__name__: model for model in SSE_EVENT_MODELS}
    assert list(documented) == [event_model_name(kind) for kind in SSE_KINDS]
    for kind in SSE_KINDS:
        literal = documented[event_model_name(kind)].model_fields["event"].annotation
        assert get_args(literal) == (kind,)
    assert EventKind.RESYNC not in SSE_KINDS and EventKind.POKE not in SSE_KINDS
