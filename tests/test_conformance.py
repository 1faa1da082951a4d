"""Our normalizers against the ECS documents Elastic's own pipelines produce from the same raw records
(../shared/vendor-samples beside the repository; skipped only when that folder is absent)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from detector.rules.model import load_rules
from detector.sources import Event, detect_source, normalize
from detector.sources.base import iso_to_ms, lookup

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "vendor-samples"

# What the rule reads, plus what alerts show.
RULE_FIELDS = (
    "event.category",
    "event.type",
    "process.name",
    "process.executable",
    "process.pe.original_file_name",
    "process.parent.name",
    "process.parent.executable",
)
EXTRA_FIELDS = ("@timestamp", "process.pid", "process.parent.pid", "user.name", "host.name")

# (raw file, expected file, source, fields whose expected value comes from an older pipeline we do not
# follow). The RansomwareOpenFile sample is 8.0.0-beta1 output: @timestamp came from ContextTimeStamp;
# today's pipeline copies event.created (from `timestamp`), which we compare instead.
CASES: list[tuple[str, str | None, str, frozenset[str]]] = [
    (
        "crowdstrike_fdr/elastic-integrations__crowdstrike-fdr__test-windows.log__ProcessRollup2.raw.ndjson",
        "crowdstrike_fdr/elastic-integrations__crowdstrike-fdr__test-windows.log__ProcessRollup2.expected.json",
        "crowdstrike_fdr",
        frozenset(),
    ),
    (
        "crowdstrike_fdr/elastic-integrations__crowdstrike-fdr__sample_event__RansomwareOpenFile_DeviceHarddiskVolume.raw.ndjson",
        "crowdstrike_fdr/elastic-integrations__crowdstrike-fdr__sample_event__RansomwareOpenFile_DeviceHarddiskVolume.expected.json",
        "crowdstrike_fdr",
        frozenset({"@timestamp"}),
    ),
    (
        "m365_defender/elastic-integrations__m365_defender-event__test-device.log__DeviceProcessEvents_ProcessCreated.raw.ndjson",
        "m365_defender/elastic-integrations__m365_defender-event__test-device.log__DeviceProcessEvents_ProcessCreated.expected.json",
        "m365_defender",
        frozenset(),
    ),
    (
        "m365_defender/CONSTRUCTED__eventhub-message-envelope__records-wrapping-test-device-record.json",
        "m365_defender/elastic-integrations__m365_defender-event__test-device.log__DeviceProcessEvents_ProcessCreated.expected.json",
        "m365_defender",
        frozenset(),
    ),
    (
        "sentinel_one_cloud_funnel/elastic-integrations__sentinel_one_cloud_funnel-event__test-process.log__ProcessCreation.raw.ndjson",
        "sentinel_one_cloud_funnel/elastic-integrations__sentinel_one_cloud_funnel-event__test-process.log__ProcessCreation.expected.json",
        "sentinel_one_cloud_funnel",
        frozenset(),
    ),
    (
        "system_security_4688/elastic-beats__winlogbeat-security__collection__security-windows2019_4688_Process_Created.evtx.golden.json",
        "system_security_4688/elastic-beats__winlogbeat-security__ingest__security-windows2019_4688_Process_Created.golden.json",
        "system_security",
        frozenset(),
    ),
    (
        "windows_sysmon_operational/elastic-beats__winlogbeat-sysmon__collection__sysmon-12-processcreate.evtx.golden.json",
        "windows_sysmon_operational/elastic-beats__winlogbeat-sysmon__ingest__sysmon-12-processcreate.golden.json",
        "windows_sysmon",
        frozenset(),
    ),
    (
        "winlogbeat/CONSTRUCTED__winlogbeat8-kafka-message__security-4688.json",
        "system_security_4688/elastic-beats__winlogbeat-security__ingest__security-windows2019_4688_Process_Created.golden.json",
        "winlogbeat",
        frozenset(),
    ),
    (
        "winlogbeat/CONSTRUCTED__winlogbeat8-kafka-message__sysmon-eventid1.json",
        "windows_sysmon_operational/elastic-beats__winlogbeat-sysmon__ingest__sysmon-12-processcreate.golden.json",
        "winlogbeat",
        frozenset(),
    ),
    # Elastic Defend has no raw->ECS pipeline: the document is its own expectation.
    ("elastic_defend/elastic-endpoint-package__process__sample_event.json", None, "endpoint", frozenset()),
]


@pytest.fixture(scope="module", autouse=True)
def _need_shared() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent")


def _load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if path.name.endswith(".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def _expected_value(doc: dict[str, Any], field: str) -> Any:
    value = lookup(doc, field)
    if field == "@timestamp" and value is not None:
        return iso_to_ms(value, field)  # the index stores milliseconds
    if field in ("event.category", "event.type") and isinstance(value, str):
        return [value]
    return value


@pytest.mark.parametrize(
    ("raw", "expected", "source", "diverges"),
    CASES,
    ids=[c[0].split("/")[0] + ":" + c[0].split("__")[-1] for c in CASES],
)
def test_matches_elastic_pipeline_output(raw: str, expected: str | None, source: str, diverges: frozenset[str]) -> None:
    records = _load(SAMPLES / raw)
    expected_docs = _load(SAMPLES / expected) if expected else records
    assert len(records) == 1 and len(expected_docs) == 1
    record, want = records[0], expected_docs[0]
    assert detect_source(record) == source
    name, events = normalize(record)
    assert name == source and len(events) == 1
    got = events[0]

    for field in RULE_FIELDS + EXTRA_FIELDS:
        if field in diverges:
            continue
        assert lookup(got, field) == _expected_value(want, field), f"{source} {field}"
    # host.os.type only where Elastic's document has it (older pipelines set none).
    want_os = lookup(want, "host.os.type")
    if want_os is not None:
        assert lookup(got, "host.os.type") == want_os
    if "@timestamp" in diverges:
        assert got["@timestamp"] == _expected_value(want, "event.created")


def test_sqs_notification_is_not_a_record() -> None:
    # The FDR S3 notification names data files; it is not telemetry and must not pass as any source.
    (note,) = _load(
        SAMPLES / "crowdstrike_fdr/elastic-integrations__crowdstrike-fdr__aws-s3.yml.hbs__fdr-sqs-notification.json"
    )
    assert detect_source(note) is None


def test_every_raw_sample_is_covered() -> None:
    raws = {
        str(p.relative_to(SAMPLES))
        for p in SAMPLES.rglob("*")
        if p.is_file()
        and (
            p.name.endswith(".raw.ndjson")
            or "collection" in p.name
            or p.name.startswith("CONSTRUCTED__")
            or "elastic_defend" in str(p)
        )
    }
    assert raws <= {c[0] for c in CASES}, raws - {c[0] for c in CASES}


# --- Elastic's pipeline test data, kept as fixtures (tests/fixtures/conformance/*/PROVENANCE.md) ---------
#
# Each case is a raw record from an elastic/integrations `_dev/test/pipeline` file (or an elastic/beats
# golden file) with the fields of Elastic's expected document that a rule or an alert reads. Records
# identical to ../shared's samples are left out of the fixtures; the tests above cover those.

CONFORMANCE = Path(__file__).parent / "fixtures" / "conformance"
COMPARED = (
    "@timestamp",
    "event.category",
    "event.type",
    "event.code",
    "host.os.type",
    "process.name",
    "process.executable",
    "process.pe.original_file_name",
    "process.parent.name",
    "process.parent.executable",
    "process.pid",
    "process.parent.pid",
    "process.command_line",
    "user.name",
    "user.domain",
)
# Where we knowingly differ from a pipeline's test expectation, and why (README, "Conformance").
WINDOWS_FAMILY = frozenset({"system_security", "windows_sysmon", "winlogbeat"})
(RULE,) = load_rules()


def _process_start(doc: Mapping[str, Any]) -> bool:
    return "process" in (lookup(doc, "event.category") or []) and "start" in (lookup(doc, "event.type") or [])


def record_code(record: Mapping[str, Any]) -> str:
    return str(lookup(record, "winlog.event_id"))


def _known_difference(
    source: str, field: str, want: Any, got: Any, record: Mapping[str, Any], expected: Mapping[str, Any], ours: Event
) -> str | None:
    """Why a field may differ from a pipeline test's expectation, or None. Each reason is in the README
    ("Conformance"); none of them changes what the rule decides (checked separately for every case)."""
    if field == "host.os.type" and want is None and got == "windows" and source in WINDOWS_FAMILY:
        # The test harness strips the shipper's add_host_metadata; event-log channels exist only on
        # Windows, so we say so (the rule needs host.os.type and a real shipper always sets it).
        return "host.os.type added for Windows event-log channels"
    if field in ("event.category", "event.type") and not _process_start(expected) and not _process_start(ours):
        # Newer pipeline versions categorise more non-process events (configuration, package, malware...)
        # than the tables we transcribed; a process start is categorised alike everywhere.
        return "categorisation of a non-process-start event differs between pipeline versions"
    if source == "windows_sysmon" and record_code(record) == "7" and field in ("event.category", "event.type"):
        return "at 621d6c0d image loads were process/library change/start; at bf3be6b2 (ours) process/change"
    if source == "m365_defender" and field.startswith("process.") and not _process_start(expected):
        # Newer pipelines moved the initiating process of image loads and DeviceEvents to other fields.
        return "actor fields of a non-process table differ between pipeline versions"
    if source == "crowdstrike_fdr":
        if field == "host.os.type" and want is None and got in ("macos", "linux"):
            return "older FDR pipeline output put the platform in os.type, not host.os.type"
        if field == "@timestamp" and "ContextTimeStamp" in record:
            return "older FDR pipeline output took @timestamp from ContextTimeStamp, today's from timestamp"
        if field == "process.name" and got is None and lookup(ours, "host.os.type") != "windows":
            return "on Linux/macOS a pipeline derives the name from the command line when the image path has none"
    return None


def _conformance_cases() -> list[Any]:
    out = []
    for path in sorted(CONFORMANCE.glob("*/*.json")):
        doc = json.loads(path.read_text())
        for i, case in enumerate(doc["cases"]):
            out.append(
                pytest.param(path.parent.name, case["raw"], case["expected"], id=f"{path.parent.name}/{path.stem}#{i}")
            )
    return out


def _as_ms(value: Any) -> Any:
    return iso_to_ms(value, "@timestamp") if isinstance(value, str) else value


@pytest.mark.parametrize(("source", "raw", "expected"), _conformance_cases())
def test_matches_elastic_pipeline_test_data(source: str, raw: str, expected: dict[str, Any]) -> None:
    record = json.loads(raw)
    if "error.message" in expected and not any(f in expected for f in COMPARED if f != "@timestamp"):
        # Elastic's pipeline itself failed on this record (its document is an error report).
        return
    if source == "crowdstrike_fdr" and "DetectId" in record and "event_simpleName" not in record:
        # Falcon Streaming API detection summaries (an alert stream, not FDR telemetry) in an old test file:
        # not process telemetry, refused as not being FDR data.
        assert "DetectName" in record and not _process_start(expected)
        return
    # Beats' golden inputs are winlog documents without the Beat's Kafka markers: detected by channel.
    name, events = normalize(record, None if source == "winlogbeat" else source)
    assert name == source or (source == "winlogbeat" and name in WINDOWS_FAMILY)
    want_event = any(f in expected for f in ("event.category", "process.name", "process.executable"))
    if not events:
        assert not want_event, f"Elastic indexes an event with {sorted(expected)}, we produce none"
        return
    got = events[0]
    want_doc = {
        k: ([v] if k in ("event.category", "event.type") and isinstance(v, str) else v) for k, v in expected.items()
    }
    # What matters first: the rule decides the same on Elastic's document and on ours.
    assert RULE.compiled.matches(want_doc) == RULE.compiled.matches(got)
    problems = []
    for field in COMPARED:
        want, have = want_doc.get(field), lookup(got, field)
        if field == "@timestamp":
            want, have = _as_ms(want), _as_ms(have)  # the index stores milliseconds
        if want != have and _known_difference(source, field, want, have, record, want_doc, got) is None:
            problems.append(f"{field}: Elastic {want!r}, ours {have!r}")
    assert not problems, "\n".join(problems)


def test_conformance_fixtures_name_their_origin() -> None:
    files = sorted(CONFORMANCE.glob("*/*.json"))
    assert files
    for path in files:
        doc = json.loads(path.read_text())
        assert doc["repository"].startswith("elastic/"), path
        assert len(doc["expected_commit"]) == 40, path
        assert doc["licence"], path
        assert (path.parent / "PROVENANCE.md").is_file(), path
