"""Our normalizers against the ECS documents Elastic's own pipelines produce from the same raw records
(../shared/vendor-samples beside the repository; skipped only when that folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detector.sources import detect_source, normalize
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
