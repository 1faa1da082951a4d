"""Per-source normalisation over hand-written fixtures (tests/fixtures/sources/<source>/*.ndjson):
detection, concrete ECS values, schema validity of every event, and NormalizeError for bad types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.sources import (
    DETECTION_ORDER,
    SOURCES,
    VERBATIM_FIELDS,
    NormalizeError,
    UnknownSourceError,
    detect_source,
    normalize,
)
from detector.sources.base import iso_to_ms, lookup, win_basename

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "sources"
SCHEMA = json.loads((REPO / "schemas" / "ecs_event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
EXPECTED_NAMES = {
    "endgame",
    "endpoint",
    "crowdstrike_fdr",
    "m365_defender",
    "sentinel_one_cloud_funnel",
    "system_security",
    "windows_sysmon",
    "winlogbeat",
}


def lines(source: str, kind: str) -> list[dict[str, Any]]:
    path = FIXTURES / source / f"{kind}.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def good_lines(source: str) -> list[dict[str, Any]]:
    return lines(source, "positives") + lines(source, "negatives")


def first_event(record: dict[str, Any]) -> dict[str, Any]:
    _, events = normalize(record)
    assert len(events) == 1
    return events[0]


def get(event: dict[str, Any], dotted: str) -> Any:
    return lookup(event, dotted)


def test_registry_names() -> None:
    assert set(SOURCES) == EXPECTED_NAMES
    assert set(DETECTION_ORDER) == EXPECTED_NAMES
    for name, src in SOURCES.items():
        assert src.name == name and src.description and src.fields
        assert src.normalize.__doc__, f"{name}: normalizer needs its mapping docstring"


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_fixtures_exist(source: str) -> None:
    assert lines(source, "positives") and lines(source, "negatives") and lines(source, "bad")


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_detect_source_on_every_fixture_line(source: str) -> None:
    for record in good_lines(source) + lines(source, "bad"):
        assert detect_source(record) == source, json.dumps(record)[:200]


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_events_validate_against_schema(source: str) -> None:
    for record in good_lines(source):
        for pinned in (None, source):
            name, events = normalize(record, pinned)
            assert name == source
            for event in events:
                errors = sorted(VALIDATOR.iter_errors(event), key=str)
                assert not errors, f"{source}: {errors[0].message} at {list(errors[0].path)}"


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_bad_types_are_dropped_or_rejected_never_silent(source: str) -> None:
    # A malformed value is dropped and reported (Elastic's ignore_malformed); a wrong structure (an
    # object where a value belongs, or a value where an object belongs) rejects the record. Either way
    # the field is named.
    for record in lines(source, "bad"):
        ignored: list[tuple[str, str]] = []
        try:
            _, events = normalize(record, ignored=ignored)
        except NormalizeError as exc:
            assert not isinstance(exc, UnknownSourceError)
            assert ":" in str(exc)  # "<field>: <reason>"
            continue
        assert ignored, (source, record)
        for field, why in ignored:
            assert field and why.startswith(field.split("[")[0]), (field, why)
        for event in events:
            errors = sorted(VALIDATOR.iter_errors(event), key=str)
            assert not errors, f"{source}: {errors[0].message} at {list(errors[0].path)}"


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_positives_yield_process_start_events(source: str) -> None:
    for record in lines(source, "positives"):
        _, events = normalize(record)
        assert events
        for event in events:
            assert get(event, "event.category") == ["process"]
            assert "start" in get(event, "event.type")
            assert get(event, "host.os.type") == "windows"


@pytest.mark.parametrize("source", sorted(EXPECTED_NAMES))
def test_verbatim_fields_are_substrings_of_the_raw_record(source: str) -> None:
    # The prefilter's safety contract, checked on every fixture: raw JSON text (as sent) contains each value.
    for record in good_lines(source):
        raw = json.dumps(record, ensure_ascii=False).lower()
        for event in normalize(record)[1]:
            for field in VERBATIM_FIELDS:
                value = get(event, field)
                if value is not None:
                    assert json.dumps(value, ensure_ascii=False)[1:-1].lower() in raw, (source, field, value)


# --- concrete values ---------------------------------------------------------------------------------


def test_crowdstrike_process_rollup() -> None:
    ev = first_event(lines("crowdstrike_fdr", "positives")[0])
    assert ev["@timestamp"] == "2024-11-11T04:40:01.000Z"
    assert get(ev, "process.executable") == "\\Device\\HarddiskVolume3\\Users\\bob\\AppData\\Roaming\\NSM\\client32.exe"
    assert get(ev, "process.name") == "client32.exe"
    assert get(ev, "process.pid") == 7001
    assert get(ev, "process.entity_id") == "290000000001"
    assert get(ev, "process.parent.entity_id") == "280000000001"
    assert get(ev, "process.parent.name") == "explorer.exe"
    assert get(ev, "process.parent.pid") is None and get(ev, "process.parent.executable") is None
    assert get(ev, "host.os.type") == "windows" and get(ev, "host.name") == "WKS-FIN-0042"
    assert get(ev, "event.id").count("|") == 2
    assert get(ev, "user.name") == "bob"


def test_crowdstrike_volume_numbers_of_ten_and_more_kept_verbatim() -> None:
    ev = first_event(lines("crowdstrike_fdr", "negatives")[1])
    assert get(ev, "process.executable").startswith("\\Device\\HarddiskVolume12\\Users\\")
    assert get(ev, "process.name") == "client32.exe"


def test_crowdstrike_non_process_events() -> None:
    negatives = lines("crowdstrike_fdr", "negatives")
    end = first_event(negatives[4])
    assert get(end, "event.category") == ["process"] and get(end, "event.type") == ["end"]
    ransom = first_event(negatives[5])
    assert get(ransom, "event.category") == ["file"] and get(ransom, "event.type") == ["access"]
    assert get(ransom, "process.entity_id") == "290000000016"
    mac = first_event(negatives[3])
    assert get(mac, "host.os.type") == "macos" and get(mac, "process.name") == "client32.exe"


def test_crowdstrike_original_filename_when_present() -> None:
    ev = first_event(lines("crowdstrike_fdr", "positives")[4])
    assert get(ev, "process.pe.original_file_name") == "client32.exe"
    assert get(ev, "process.name") == "svchost.exe"


def test_m365_envelope_yields_one_event_per_record() -> None:
    envelope = lines("m365_defender", "positives")[0]
    name, events = normalize(envelope)
    assert name == "m365_defender" and len(events) == 2
    assert [get(e, "process.name") for e in events] == ["client32.exe", "CLIENT32.EXE"]
    assert events[0]["@timestamp"] == "2024-11-11T04:40:01.123Z"
    assert get(events[0], "event.action") == "processcreated"
    assert get(events[0], "host.name") == "wks-hr-0107.corp.example"
    assert get(events[0], "process.parent.pid") == 4001


def test_m365_child_of_client32_keeps_lowercase_parent_path() -> None:
    ev = first_event(lines("m365_defender", "positives")[2])
    assert get(ev, "process.parent.executable") == "c:\\users\\alice\\appdata\\roaming\\nsm\\client32.exe"
    assert get(ev, "process.parent.name") == "client32.exe"


def test_m365_host_os_type_needs_a_windows_marker() -> None:
    envelope = lines("m365_defender", "negatives")[0]
    events = normalize(envelope)[1]
    assert get(events[0], "host.os.type") == "windows"
    assert get(events[1], "host.os.type") is None  # no InitiatingProcessAccountSid, no OSPlatform
    assert get(events[2], "event.category") == ["file"]
    assert get(events[2], "process.name") == "explorer.exe"  # file events: process = initiating process
    assert normalize(lines("m365_defender", "negatives")[-1]) == ("m365_defender", [])


def test_m365_other_tables_are_not_covered() -> None:
    record = {"category": "AdvancedHunting-EmailEvents", "properties": {"Subject": "hi"}}
    assert normalize(record) == ("m365_defender", [])


def test_sentinel_one_target_is_the_new_process() -> None:
    ev = first_event(lines("sentinel_one_cloud_funnel", "positives")[2])
    assert get(ev, "process.name") == "cmd.exe"
    assert get(ev, "process.parent.executable") == "C:\\Users\\carol\\AppData\\Roaming\\NSM\\client32.exe"
    assert get(ev, "process.pid") == 6103 and get(ev, "process.parent.pid") == 3103
    assert get(ev, "host.hostname") == "WKS-ENG-0311" and get(ev, "host.name") is None
    assert get(ev, "user.name") == "carol" and get(ev, "user.domain") == "CORP"
    assert ev["@timestamp"] == "2024-11-11T04:40:00.003Z"
    end = first_event(lines("sentinel_one_cloud_funnel", "negatives")[1])
    assert get(end, "event.type") == ["end"]


def test_security_4688_hex_pids_and_basenames() -> None:
    ev = first_event(lines("system_security", "positives")[0])
    assert get(ev, "process.pid") == 0x1101 and get(ev, "process.parent.pid") == 0x901
    assert get(ev, "process.name") == "client32.exe" and get(ev, "process.parent.name") == "explorer.exe"
    assert get(ev, "user.name") == "dave" and get(ev, "user.id").startswith("S-1-5-21-")
    assert get(ev, "host.os.type") == "windows" and get(ev, "host.os.family") == "windows"
    assert ev["@timestamp"] == "2024-11-11T09:15:01.451Z"
    assert get(ev, "event.code") == "4688" and get(ev, "event.action") == "created-process"
    assert get(ev, "process.entity_id") is None and get(ev, "process.pe.original_file_name") is None
    upper = first_event(lines("system_security", "positives")[1])
    assert get(upper, "process.name") == "CLIENT32.EXE"


def test_security_other_events() -> None:
    negatives = lines("system_security", "negatives")
    assert get(first_event(negatives[1]), "event.type") == ["end"]
    assert normalize(negatives[3]) == ("system_security", [])


def test_sysmon_process_create() -> None:
    ev = first_event(lines("windows_sysmon", "positives")[1])
    assert get(ev, "process.pe.original_file_name") == "client32.exe"
    assert get(ev, "process.name") == "update.exe"
    assert get(ev, "process.pid") == 8202 and get(ev, "process.parent.pid") == 4202
    assert get(ev, "process.entity_id") == "{9F32B55F-7C4E-5F98-5803-000000000502}"
    assert get(ev, "user.domain") == "CORP" and get(ev, "user.name") == "erin"
    assert ev["@timestamp"] == "2024-11-11T10:20:02.517Z"  # from UtcTime, not @timestamp
    dash = first_event(lines("windows_sysmon", "negatives")[4])
    assert get(dash, "process.pe.original_file_name") is None  # Sysmon's "-" means no value


def test_sysmon_action_and_image_load() -> None:
    record = lines("windows_sysmon", "positives")[1]
    own = dict(record, event={**record.get("event", {}), "action": "Process Create (rule: ProcessCreate)"})
    assert get(first_event(own), "event.action") == "Process Create (rule: ProcessCreate)"  # the task name
    bare = dict(record, event={k: v for k, v in record.get("event", {}).items() if k != "action"})
    assert get(first_event(bare), "event.action") == "Process creation"  # else by event id
    # Event 7's OriginalFileName is the loaded image's (Elastic: file.pe), not the process's.
    load = {**bare, "winlog": {**record["winlog"], "event_id": "7"}}
    loaded = first_event(load)
    assert get(loaded, "process.pe.original_file_name") is None and get(loaded, "process.name") == "update.exe"


def test_winlogbeat_dispatch() -> None:
    positives = lines("winlogbeat", "positives")
    sec = first_event(positives[0])
    assert get(sec, "event.module") == "security" and get(sec, "process.pid") == 0x1101
    smon = first_event(positives[1])
    assert (
        get(smon, "event.module") == "sysmon"
        and get(smon, "process.executable") == "C:\\ProgramData\\nsm\\client32.exe"
    )
    legacy = first_event(positives[3])
    assert get(legacy, "host.os.type") == "windows" and get(legacy, "host.os.family") == "windows"
    assert get(legacy, "process.pid") == 9004
    assert normalize(lines("winlogbeat", "negatives")[1]) == ("winlogbeat", [])


def test_endpoint_nested_and_flat_agree() -> None:
    nested = first_event(lines("endpoint", "positives")[0])
    flat = first_event(lines("endpoint", "positives")[3])
    assert get(nested, "event.dataset") == "endpoint.events.process"
    assert get(nested, "process.parent.command_line") is None  # "" in the record: omitted
    assert nested["@timestamp"] == "2024-11-11T11:00:01.657Z"
    assert set(flat) == set(nested) and get(flat, "process.pid") == 3004


def test_endgame_native_and_ecs() -> None:
    ecs = first_event(lines("endgame", "positives")[0])
    assert get(ecs, "event.category") == ["process"] and get(ecs, "event.type") == ["start"]
    native = first_event(lines("endgame", "positives")[2])
    assert get(native, "process.entity_id") == "73" and get(native, "process.parent.pid") == 1103
    assert get(native, "host.os.type") == "windows"
    assert native["@timestamp"] == "2017-08-30T20:48:38.000Z"  # FILETIME 131485997180000000


# --- registry behaviour and helpers ------------------------------------------------------------------


def test_unknown_source_and_unknown_name() -> None:
    with pytest.raises(UnknownSourceError):
        normalize({"hello": "world"})
    with pytest.raises(ValueError, match="unknown source"):
        normalize({"hello": "world"}, "splunk")
    assert detect_source({"bucket": "fdrBucket", "files": []}) is None


@pytest.mark.parametrize(
    ("record", "ignored_fields"),
    [
        # A malformed value is dropped and named; the rest of the record is still an event.
        ({"event_simpleName": "ProcessRollup2", "aid": "x", "ImageFileName": {"x": 1}}, ["ImageFileName"]),
        (
            {"winlog": {"channel": "Security", "event_id": "4688", "event_data": {"ProcessId": {"x": 1}}}},
            ["winlog.event_data.ProcessId"],
        ),
        ({"agent": {"type": "endpoint"}, "@timestamp": 5}, ["@timestamp"]),
        ({"agent": {"type": "endpoint"}, "process": {"pid": 2**63}}, ["process.pid"]),
        ({"agent": {"type": "endpoint"}, "process": {"pid": 1.2345e29}}, ["process.pid"]),
        ({"agent": {"type": "endpoint"}, "process": {"name": 1.5}}, ["process.name"]),
        # What Elasticsearch coerces is not malformed: integers and booleans in keyword fields, a
        # fractional number in a long field (truncated).
        ({"tgt.process.pid": 1.5, "tgt.process.name": "a.exe", "meta.event.name": "PROCESSCREATION"}, []),
        ({"winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": True}}, []),
        ({"agent": {"type": "endgame"}, "event": {"category": [1]}}, []),
    ],
)
def test_malformed_values_are_dropped_and_named(record: dict[str, Any], ignored_fields: list[str]) -> None:
    ignored: list[tuple[str, str]] = []
    _, events = normalize(record, ignored=ignored)
    assert len(events) == 1
    assert [f for f, _ in ignored] == ignored_fields
    for field in ignored_fields:
        assert get(events[0], field) is None


@pytest.mark.parametrize(
    "record",
    [
        {"category": "AdvancedHunting-DeviceProcessEvents", "properties": "nope"},
        {"winlog": {"channel": "Security", "event_id": "4688", "event_data": ["not", "an", "object"]}},
    ],
)
def test_wrong_structure_raises_normalize_error(record: dict[str, Any]) -> None:
    with pytest.raises(NormalizeError):
        normalize(record)


def test_one_bad_record_in_an_envelope_spares_its_siblings() -> None:
    good = lines("m365_defender", "positives")[0]
    good_records = good.get("records", [good])
    envelope = {
        "records": [
            "not a record",
            {"category": "AdvancedHunting-DeviceProcessEvents", "properties": "nope"},
            *good_records,
        ]
    }
    ignored: list[tuple[str, str]] = []
    _, events = normalize(envelope, ignored=ignored)
    assert len(events) == len(good_records) >= 1
    assert [f for f, _ in ignored] == ["records[]", "records[]"]
    assert ignored[0][1].startswith("records[0]:") and ignored[1][1].startswith("records[1]: properties:")


def test_ecs_fields_hold_every_value_elasticsearch_indexes() -> None:
    # Both routes to process.executable (a dotted key beside the nested object) are indexed by
    # Elasticsearch: the rule must see both values, whichever comes first.
    record = {
        "agent": {"type": "endpoint"},
        "event": {"category": "process", "type": "start"},
        "process": {"executable": "C:\\Windows\\notepad.exe", "pid": [4, 5]},
        "process.executable": "C:\\Users\\a\\client32.exe",
        "host": [{"name": "a"}, {"name": "b"}],
    }
    _, events = normalize(record)
    event = events[0]
    assert event["process"]["executable"] == ["C:\\Windows\\notepad.exe", "C:\\Users\\a\\client32.exe"]
    assert event["process"]["pid"] == [4, 5]
    assert event["host"]["name"] == ["a", "b"]
    assert event["event"]["category"] == ["process"]


def test_helpers() -> None:
    assert win_basename("\\Device\\HarddiskVolume11\\Users\\a\\client32.exe") == "client32.exe"
    assert win_basename("client32.exe") == "client32.exe"
    assert iso_to_ms("2019-11-14T17:10:15.1515514Z", "t") == "2019-11-14T17:10:15.151Z"
    assert iso_to_ms("2020-10-27 20:00:14.320", "t") == "2020-10-27T20:00:14.320Z"
    assert iso_to_ms("2020-10-27T22:00:14+02:00", "t") == "2020-10-27T20:00:14.000Z"
    with pytest.raises(NormalizeError, match="invalid timestamp"):  # outside normalize(): an error
        iso_to_ms("2020-13-45T00:00:00Z", "t")


def test_malformed_values_beyond_the_itemised_limit_are_counted_not_listed() -> None:
    from detector.sources.base import MAX_ITEMISED, MORE

    record = {"agent": {"type": "endpoint"}, "process": {"name": "a.exe", "pid": [f"bad{i}" for i in range(1000)]}}
    ignored: list[tuple[str, str]] = []
    _, events = normalize(record, ignored=ignored)
    assert events[0]["process"] == {"name": "a.exe"}
    assert len(ignored) == MAX_ITEMISED + 1
    assert ignored[-1] == (MORE, f"{1000 - MAX_ITEMISED} more malformed values in this record, not itemised")
