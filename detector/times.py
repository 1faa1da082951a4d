"""Timestamps as the detector writes them: UTC, ISO 8601, millisecond precision, `Z` suffix.

Elasticsearch's `date` type keeps milliseconds, so every time the detector emits (event fields, alert
fields, cap windows) is written in this one form; a comparison of two such strings orders them in time.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["epoch_to_iso", "iso_ms", "iso_to_epoch", "now_iso"]


def iso_ms(dt: datetime) -> str:
    """An aware datetime as `2026-11-28T08:00:00.123Z` (microseconds truncated, as Elasticsearch does)."""
    u = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    # Formatted by hand: strftime's %Y does not pad years before 1000 on every platform ("5-01-01").
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )


def epoch_to_iso(seconds: float) -> str:
    return iso_ms(datetime.fromtimestamp(seconds, UTC))


def now_iso() -> str:
    return iso_ms(datetime.now(UTC))


def iso_to_epoch(text: object) -> float | None:
    """Seconds since the epoch of an ISO 8601 string (a written timestamp), or None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
