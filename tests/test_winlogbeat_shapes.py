"""Winlogbeat in all its shapes: 6.x top-level messages, 7.x module output (with and without the Beat's
markers) and 8.x raw winlog documents, and the reason a recognised record yields no event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import detect_source, normalize
from detector.sources.base import lookup
from detector.sources.no_event import NOT_COVERED, SHAPE_NOT_UNDERSTOOD, no_event_reason

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "sources" / "winlogbeat"
SAMPLES = REPO.parent / "shared" / "vendor-samples" / "winlogbeat"
ENGINE = Engine(load_rules(), use_prefilter=False)


def fixture(kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / f"{kind}.ndjson").read_text().splitlines() if line.strip()]


def by_version(kind: str, prefix: str) -> list[dict[str, Any]]:
    return [r for r in fixture(kind) if "log_name" in r and (r.get("beat") or {}).get("version", "").startswith(prefix)]


def v6_to_v8(record: dict[str, Any]) -> dict[str, Any]:
    """The same event as Winlogbeat 8.x would ship it: the event-log fields under `winlog`."""
    return {
        "@timestamp": record["@timestamp"],
        "@metadata": {"beat": "winlogbeat", "type": "_doc", "version": "8.15.3"},
        "host": {"name": record["computer_name"]},
        "winlog": {
            "channel": record["log_name"],
            "event_id": str(record["event_id"]),
            "provider_name": record["source_name"],
            "computer_name": record["computer_name"],
            "event_data": record["event_data"],
        },
    }


def v8_to_v6(record: dict[str, Any]) -> dict[str, Any]:
    """An 8.x message moved back to the 6.x layout (winlog.* at the top level, event_id a number)."""
    winlog = record["winlog"]
    out: dict[str, Any] = {
        "@timestamp": record["@timestamp"],
        "@metadata": {"beat": "winlogbeat", "type": "doc", "version": "6.8.23"},
        "beat": {"name": "shipper", "hostname": "shipper", "version": "6.8.23"},
        "log_name": winlog["channel"],
        "event_id": int(winlog["event_id"]),
        "source_name": winlog["provider_name"],
        "computer_name": winlog["computer_name"],
        "event_data": winlog["event_data"],
        "type": "wineventlog",
    }
    if "user" in winlog:
        out["user"] = winlog["user"]
    return out


# --- 6.x --------------------------------------------------------------------------------------------


def test_v6_security_4688_maps_as_8x() -> None:
    record = by_version("positives", "6.")[0]
    assert record["@metadata"]["version"].startswith("6.8.")
    name, events = normalize(record)
    assert name == "winlogbeat" and len(events) == 1
    ev = events[0]
    assert ev == normalize(v6_to_v8(record))[1][0]
    assert lookup(ev, "event.module") == "security" and lookup(ev, "event.code") == "4688"
    assert lookup(ev, "process.executable") == "C:\\Users\\henry\\AppData\\Roaming\\NSM\\client32.exe"
    assert lookup(ev, "process.name") == "client32.exe"
    assert lookup(ev, "process.pid") == 0x1A2C and lookup(ev, "process.parent.pid") == 0x9A8
    assert lookup(ev, "process.parent.name") == "explorer.exe"
    assert lookup(ev, "user.name") == "henry" and lookup(ev, "user.domain") == "CORP"
    assert lookup(ev, "host.name") == "WKS-OLD-0003.corp.example"  # computer_name, not the shipper's name
    assert ev["@timestamp"] == "2019-06-12T10:15:01.123Z"


def test_v6_sysmon_1_maps_as_8x() -> None:
    record = by_version("positives", "6.")[1]
    ev = normalize(record)[1][0]
    assert ev == normalize(v6_to_v8(record))[1][0]
    assert lookup(ev, "event.module") == "sysmon" and lookup(ev, "event.category") == ["process"]
    assert lookup(ev, "process.pe.original_file_name") == "client32.exe"
    assert lookup(ev, "process.entity_id") == "{7D3E1A20-4C11-5D01-6A02-000000000601}"
    assert lookup(ev, "process.pid") == 6604 and lookup(ev, "process.parent.pid") == 4404
    assert lookup(ev, "user.domain") == "CORP" and lookup(ev, "user.name") == "gina"
    assert ev["@timestamp"] == "2019-06-12T10:16:01.987Z"  # Sysmon's UtcTime, as for 8.x


def test_v6_without_metadata_is_detected_by_its_shape() -> None:
    record = by_version("positives", "6.")[2]
    assert "@metadata" not in record and "agent" not in record
    assert detect_source(record) == "winlogbeat"
    assert lookup(normalize(record)[1][0], "process.name") == "client32.exe"


@pytest.mark.parametrize(
    ("drop", "expected"),
    [((), "WKS-OLD-0003.corp.example"), (("computer_name",), "WKS-OLD-0003"), (("computer_name", "host"), "BEAT-HOST")],
)
def test_v6_host_name_falls_back_to_the_shipper(drop: tuple[str, ...], expected: str) -> None:
    record = copy.deepcopy(by_version("positives", "6.")[0])
    record["beat"]["hostname"] = "BEAT-HOST"
    for key in drop:
        del record[key]
    assert lookup(normalize(record)[1][0], "host.name") == expected


def test_v6_positives_alert_and_negatives_do_not() -> None:
    for record in by_version("positives", "6."):
        out = ENGINE.process(orjson.dumps(record))
        assert out.rejection is None and out.source == "winlogbeat" and len(out.alerts) == 1, record["@timestamp"]
    for record in by_version("negatives", "6."):
        out = ENGINE.process(orjson.dumps(record))
        assert out.rejection is None and out.source == "winlogbeat" and out.alerts == [], record["@timestamp"]


def test_v6_other_events_and_channels_are_not_covered() -> None:
    logon, application = by_version("negatives", "6.")[2:4]
    assert logon["event_id"] == 4624 and application["log_name"] == "Application"
    for record in (logon, application):
        name, events = normalize(record)
        assert (name, events) == ("winlogbeat", []) and no_event_reason(events) == NOT_COVERED


def test_v6_event_data_of_the_wrong_structure_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="event_data: expected an object"):
        normalize(fixture("bad")[-1])


@pytest.mark.parametrize(
    "sample",
    [
        "CONSTRUCTED__winlogbeat8-kafka-message__security-4688.json",
        "CONSTRUCTED__winlogbeat8-kafka-message__sysmon-eventid1.json",
    ],
)
def test_real_8x_samples_moved_to_the_6x_layout_give_the_same_event(sample: str) -> None:
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip("../shared/vendor-samples is not beside the repository")
    v8 = json.loads(path.read_text())
    v6 = v8_to_v6(v8)
    assert detect_source(v6) == "winlogbeat"
    expected = normalize(v8)[1]
    got = normalize(v6)[1]
    assert len(got) == len(expected) == 1
    # host.name differs by construction (6.x: computer_name; 8.x: the shipper's host metadata), and so does a
    # Sysmon event.action: 8.x carries the task name the Beat wrote, which the map keeps; the 6.x layout has
    # none, so the map names the event id.
    for ev in (got[0], expected[0]):
        ev.get("host", {}).pop("name", None)
        if ev["event"]["module"] == "sysmon":
            ev["event"].pop("action")
    if "Sysmon" in sample:
        assert v8["event"]["action"] == "Process Create (rule: ProcessCreate)"
    assert got == expected


# --- 7.x without the Beat's markers -----------------------------------------------------------------


def stripped_sysmon() -> dict[str, Any]:
    record = fixture("positives")[-1]
    assert "@metadata" not in record and "agent" not in record and record["event"]["module"] == "sysmon"
    return record


def test_stripped_7x_sysmon_is_winlogbeat_and_alerts() -> None:
    record = stripped_sysmon()
    assert detect_source(record) == "winlogbeat"
    out = ENGINE.process(orjson.dumps(record), keep_events=True)
    assert out.source == "winlogbeat" and len(out.alerts) == 1
    assert lookup(out.events[0], "process.executable") == record["process"]["executable"]
    assert lookup(out.events[0], "host.os.type") == "windows"


def test_stripped_7x_sysmon_pinned_to_windows_sysmon_alerts_with_the_same_event() -> None:
    record = stripped_sysmon()
    out = ENGINE.process(orjson.dumps(record), "windows_sysmon", keep_events=True)
    assert out.rejection is None and out.source == "windows_sysmon" and len(out.alerts) == 1
    assert out.events == normalize(record)[1]
    assert lookup(out.events[0], "event.module") == "sysmon"  # as the module wrote it, not re-mapped


def test_stripped_7x_security_pinned_to_system_security_alerts() -> None:
    record = copy.deepcopy(stripped_sysmon())
    record["event"] |= {"module": "security", "code": "4688", "provider": "Microsoft-Windows-Security-Auditing"}
    record["winlog"] = {"channel": "Security", "event_id": 4688, "event_data": {"SubjectLogonId": "0x3e7"}}
    assert detect_source(record) == "winlogbeat"
    out = ENGINE.process(orjson.dumps(record), "system_security")
    assert out.rejection is None and len(out.alerts) == 1


def test_raw_event_data_keeps_the_raw_mapping() -> None:
    # A winlog document with event.module and process.* that still holds the raw process fields is read
    # from event_data, which is what Elastic's pipeline would read.
    record = copy.deepcopy(stripped_sysmon())
    record["winlog"]["event_data"] |= {"Image": "C:\\Users\\ivan\\nsm\\client32.exe", "ProcessId": "7310"}
    assert detect_source(record) == "windows_sysmon"
    ev = normalize(record)[1][0]
    assert lookup(ev, "process.executable") == "C:\\Users\\ivan\\nsm\\client32.exe"
    assert lookup(ev, "event.module") == "windows"


# --- no event --------------------------------------------------------------------------------------


def test_winlogbeat_message_of_unknown_layout_is_not_understood() -> None:
    record = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "@metadata": {"beat": "winlogbeat", "version": "9.0.0"},
        "message": "x",
    }
    name, events = normalize(record)
    assert (name, events) == ("winlogbeat", []) and no_event_reason(events) == SHAPE_NOT_UNDERSTOOD
    no_channel = record | {"winlog": {"event_id": "4688"}}
    assert no_event_reason(normalize(no_channel)[1]) == SHAPE_NOT_UNDERSTOOD


def test_winlogbeat_sysmon_record_without_event_id_is_not_understood() -> None:
    v8 = v6_to_v8(by_version("positives", "6.")[1])
    del v8["winlog"]["event_id"]
    assert no_event_reason(normalize(v8)[1]) == SHAPE_NOT_UNDERSTOOD


def test_security_record_without_event_id_is_not_understood() -> None:
    record = {"@timestamp": "2024-01-01T00:00:00Z", "winlog": {"channel": "Security", "event_data": {}}}
    assert no_event_reason(normalize(record)[1]) == SHAPE_NOT_UNDERSTOOD
    other = {"@timestamp": "2024-01-01T00:00:00Z", "winlog": {"channel": "Security", "event_id": "4624"}}
    assert no_event_reason(normalize(other)[1]) == NOT_COVERED


def test_events_have_no_reason() -> None:
    assert no_event_reason(normalize(fixture("positives")[0])[1]) is None
