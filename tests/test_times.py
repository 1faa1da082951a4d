"""The one timestamp form the detector writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from detector.times import epoch_to_iso, iso_ms, iso_to_epoch, now_iso


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2026, 11, 28, 8, 0, 0, 123999, tzinfo=UTC), "2026-11-28T08:00:00.123Z"),
        (datetime(1601, 1, 1, tzinfo=UTC), "1601-01-01T00:00:00.000Z"),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000Z"),  # padded as Elasticsearch writes it
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
        (datetime(2026, 11, 28, 9, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))), "2026-11-28T08:00:00.000Z"),
    ],
)
def test_iso_ms(dt: datetime, text: str) -> None:
    assert iso_ms(dt) == text


def test_epoch_round_trip() -> None:
    assert epoch_to_iso(1795852800.5) == "2026-11-28T08:00:00.500Z"
    assert iso_to_epoch("2026-11-28T08:00:00.500Z") == 1795852800.5
    assert iso_to_epoch("2026-11-28T08:00:00.500") == 1795852800.5  # no zone: UTC
    assert iso_to_epoch("yesterday") is None and iso_to_epoch(17) is None
    assert iso_to_epoch(now_iso()) is not None
