"""Why a record a source recognised yielded no event.

Normalisers return `[]` for what the rule does not read (another event id or channel): NOT_COVERED. A
normaliser that recognises the source but not the record's layout returns `not_understood()`, an empty
list flagged as such: SHAPE_NOT_UNDERSTOOD. Being a list, it changes nothing for callers that only want
events; `no_event_reason` tells the two apart, so that no record leaves the accounting without a reason.
"""

from __future__ import annotations

from detector.sources.base import Event

# Short and stable: a metric label and a summary key.
NOT_COVERED = "not_covered"
SHAPE_NOT_UNDERSTOOD = "shape_not_understood"
NO_EVENT_REASONS = (NOT_COVERED, SHAPE_NOT_UNDERSTOOD)


class NotUnderstood(list[Event]):
    """The empty result of a normaliser that recognised the source but not the record's layout."""


def not_understood() -> list[Event]:
    return NotUnderstood()


def no_event_reason(events: list[Event]) -> str | None:
    """None when there are events; otherwise which of NO_EVENT_REASONS applies."""
    if events:
        return None
    return SHAPE_NOT_UNDERSTOOD if isinstance(events, NotUnderstood) else NOT_COVERED


__all__ = [
    "NOT_COVERED",
    "NO_EVENT_REASONS",
    "SHAPE_NOT_UNDERSTOOD",
    "NotUnderstood",
    "no_event_reason",
    "not_understood",
]
