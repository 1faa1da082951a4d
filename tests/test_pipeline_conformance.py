"""Our normalisers against Elastic's own pipeline tests (elastic/integrations `_dev/test/pipeline`).

Each fixture pair is a pipeline test input (`test-*.log`: one raw vendor record per line) and its
`test-*.log-expected.json` (`{"expected": [...]}`, one document per input line, in input order), cut down
to the process events; provenance in tests/fixtures/elastic_pipeline_tests/NOTICE. Unlike
test_conformance.py this needs nothing outside the repository, so it always runs in CI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector.engine import Engine
from detector.rules.model import Rule, load_rules
from detector.sources import normalize
from detector.sources.base import iso_to_ms, lookup

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "elastic_pipeline_tests"

# (fixture folder = integration, pipeline test input, our source name). The test configs' `fields`
# (tags: preserve_original_event, `_conf` geoip/reroute switches) are added by the test runner, not by the
# vendor, and change none of the fields compared here, so the raw line is fed as it arrives in production.
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("crowdstrike_fdr", "test-windows.log", "crowdstrike_fdr"),
    ("m365_defender", "test-device.log", "m365_defender"),
    ("sentinel_one_cloud_funnel", "test-process.log", "sentinel_one_cloud_funnel"),
)

# How many input records / expected process documents each integration contributes: pinned so that a
# fixture edit or a parsing slip cannot quietly shrink the suite.
EXPECTED_COUNTS: dict[str, tuple[int, int]] = {
    "crowdstrike_fdr": (1, 1),
    "m365_defender": (1, 1),
    "sentinel_one_cloud_funnel": (1, 1),
}

# Every field the NetSupport rule reads.
RULE_FIELDS = (
    "event.category",
    "event.type",
    "host.os.type",
    "process.name",
    "process.executable",
    "process.pe.original_file_name",
    "process.parent.name",
    "process.parent.executable",
)
# Shown in alerts; compared so that a mapping slip there is caught too.
EXTRA_FIELDS = ("@timestamp", "process.pid", "process.parent.pid", "user.name", "host.name")

# case id -> the exact difference between our event and Elastic's document, for fields the rule reads.
# strict: once the normaliser is fixed the xfail fails, and the entry must go.
KNOWN_DIFFERENCES: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    integration: str
    input_file: str
    line_no: int  # 1-based, as in the pipeline test input
    source: str
    raw: str
    expected: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.integration}:{self.input_file}:{self.line_no}"


def _read_pair(integration: str, input_file: str) -> tuple[list[str], list[dict[str, Any]]]:
    folder = FIXTURES / integration
    lines = [line for line in (folder / input_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = json.loads((folder / f"{input_file}-expected.json").read_text(encoding="utf-8"))["expected"]
    return lines, expected


def _is_process_event(doc: dict[str, Any]) -> bool:
    category = lookup(doc, "event.category")
    categories = category if isinstance(category, list) else [category]
    return "process" in categories


def _collect() -> list[Case]:
    cases = []
    for integration, input_file, source in INPUTS:
        lines, expected = _read_pair(integration, input_file)
        for line_no, (raw, doc) in enumerate(zip(lines, expected, strict=True), start=1):
            if _is_process_event(doc):
                cases.append(Case(integration, input_file, line_no, source, raw, doc))
    return cases


CASES = _collect()


def _params() -> list[Any]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[case.id])]
            if case.id in KNOWN_DIFFERENCES
            else [],
        )
        for case in CASES
    ]


def _expected_value(doc: dict[str, Any], field: str) -> Any:
    value = lookup(doc, field)
    if field == "@timestamp" and value is not None:
        return iso_to_ms(value, field)  # the index stores milliseconds
    if field in ("event.category", "event.type") and isinstance(value, str):
        return [value]
    return value


def _only_event(case: Case) -> dict[str, Any]:
    name, events = normalize(json.loads(case.raw), case.source)
    assert name == case.source
    assert len(events) == 1, f"{case.id}: {len(events)} events from one process record"
    return events[0]


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules()


@pytest.fixture(scope="module")
def engine(rules: list[Rule]) -> Engine:
    return Engine(rules)


def test_inputs_and_expected_documents_pair_up() -> None:
    # The expected file is positional: a dropped or reordered line would compare unrelated documents.
    # Where the pipeline kept event.original (preserve_original_event), it must be the input line itself.
    counts: dict[str, tuple[int, int]] = {}
    for integration, input_file, _ in INPUTS:
        lines, expected = _read_pair(integration, input_file)
        assert len(lines) == len(expected), f"{integration}/{input_file}"
        for raw, doc in zip(lines, expected, strict=True):
            original = lookup(doc, "event.original")
            if original is not None:
                assert original == raw
        records, docs = counts.get(integration, (0, 0))
        counts[integration] = (records + len(lines), docs + sum(map(_is_process_event, expected)))
    assert counts == EXPECTED_COUNTS


@pytest.mark.parametrize("case", _params())
def test_rule_fields_match_elastic_pipeline(case: Case) -> None:
    got = _only_event(case)
    for field in RULE_FIELDS + EXTRA_FIELDS:
        want = _expected_value(case.expected, field)
        # Older pipeline versions set no host.os.type (m365_defender's test-device expectation): nothing
        # to compare against, and our value is covered by test_sources.
        if field == "host.os.type" and want is None:
            continue
        assert lookup(got, field) == want, f"{case.id} {field}"


@pytest.mark.parametrize("case", _params())
def test_rule_verdict_matches_verdict_on_elastic_document(case: Case, engine: Engine, rules: list[Rule]) -> None:
    # The whole path (prefilter, parse, normalise, evaluate) on the raw bytes must decide as the rule does
    # on the document Elasticsearch would have indexed.
    outcome = engine.process(case.raw.encode("utf-8"), case.source)
    assert outcome.rejection is None, outcome.rejection
    on_elastic_doc = sorted(rule.rule_id for rule in rules if rule.compiled.matches(case.expected))
    ours = sorted({alert_rule_id(alert) for alert in outcome.alerts})
    assert ours == on_elastic_doc, case.id


def alert_rule_id(alert: dict[str, Any]) -> str:
    value = lookup(alert, "kibana.alert.rule.rule_id")
    assert isinstance(value, str), alert
    return value
