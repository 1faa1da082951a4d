"""Sysmon event id -> event.category/event.type, row by row against the Windows integration's
sysmon_operational pipeline (elastic/integrations packages/windows/data_stream/sysmon_operational/
elasticsearch/ingest_pipeline/default.yml, commit bf3be6b2ca0eb305677128e9db73c75536000433)."""

from __future__ import annotations

from typing import Any

import pytest

from detector.sources import SOURCES
from detector.sources.base import lookup
from detector.sources.mapping import builtin_mapping

# Written out from the pipeline independently of the map's table (maps/windows_sysmon.toml
# [tables.categories]); None = the row sets no such key.
PIPELINE_ROWS: dict[int, tuple[list[str] | None, list[str] | None]] = {
    1: (["process"], ["start"]),
    2: (["file"], ["change"]),
    3: (["network"], ["start", "connection", "protocol"]),
    4: (["process"], ["change"]),
    5: (["process"], ["end"]),
    6: (["driver"], ["start"]),
    7: (["process"], ["change"]),
    8: (["process"], ["change"]),
    9: (["process"], ["access"]),
    10: (["process"], ["access"]),
    11: (["file"], ["creation"]),
    12: (["configuration", "registry"], ["change"]),
    13: (["configuration", "registry"], ["change"]),
    14: (["configuration", "registry"], ["change"]),
    15: (["file"], ["access"]),
    16: (["configuration"], ["change"]),
    17: (["file"], ["creation"]),
    18: (["file"], ["access"]),
    19: (["process"], ["creation"]),
    20: (["process"], ["creation"]),
    21: (["process"], ["access"]),
    22: (["network"], ["connection", "protocol", "info"]),
    23: (["file"], ["deletion"]),
    24: (None, ["change"]),
    25: (["process"], ["change"]),
    26: (["file"], ["deletion"]),
    27: (["file"], ["creation", "denied"]),
    28: (["file"], ["deletion", "denied"]),
    29: (["file"], ["creation"]),
    255: (["process"], ["error"]),
}


def sysmon(event_id: int) -> dict[str, Any]:
    return {
        "@timestamp": "2024-11-11T10:20:01.520Z",
        "host": {"name": "wks-ops-0009"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "provider_name": "Microsoft-Windows-Sysmon",
            "event_id": event_id,
            "event_data": {
                "UtcTime": "2024-11-11 10:20:01.517",
                "Image": "C:\\Users\\erin\\AppData\\Roaming\\NSM\\client32.exe",
                "ProcessId": "8201",
            },
        },
    }


TABLE = builtin_mapping("windows_sysmon").tables["categories"]


def test_the_map_has_every_pipeline_row_and_no_other() -> None:
    assert sorted(int(k) for k in TABLE) == sorted(PIPELINE_ROWS)
    for key, row in TABLE.items():
        category, types = PIPELINE_ROWS[int(key)]
        assert (row.get("category"), row.get("type")) == (category, types), key


@pytest.mark.parametrize("event_id", sorted(PIPELINE_ROWS))
def test_every_pipeline_row(event_id: int) -> None:
    category, types = PIPELINE_ROWS[event_id]
    events = SOURCES["windows_sysmon"].normalize(sysmon(event_id))
    assert len(events) == 1
    assert lookup(events[0], "event.category") == category
    assert lookup(events[0], "event.type") == types
    assert lookup(events[0], "event.code") == str(event_id)


def test_ids_outside_the_table_get_no_category() -> None:
    (event,) = SOURCES["windows_sysmon"].normalize(sysmon(30))
    assert lookup(event, "event.category") is None and lookup(event, "event.type") is None
