"""Alert documents: Elastic Security compatible fields, deterministic ids, readable reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from detector.alerts.builder import alert_uuid, build_alert, reason, record_digest
from detector.rules.model import load_rule, load_rules

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "alert.schema.json").read_text())
RULE = load_rules()[0]
EVENT: dict[str, Any] = {
    "@timestamp": "2026-11-20T10:00:00.000Z",
    "event": {"category": ["process"], "type": ["start"], "kind": "event", "action": "start", "id": "e-1"},
    "host": {"name": "WS-042", "id": "h-1", "os": {"type": "windows", "family": "windows"}},
    "user": {"name": "alice", "domain": "CORP"},
    "process": {
        "name": "client32.exe",
        "executable": "C:\\Users\\alice\\AppData\\Roaming\\nsm\\client32.exe",
        "pid": 4242,
        "parent": {"name": "explorer.exe", "executable": "C:\\Windows\\explorer.exe", "pid": 100},
    },
}


def test_alert_has_kibana_fields_and_source_event() -> None:
    alert = build_alert(RULE, EVENT, source="endpoint", digest=record_digest(b"{}"), created="2026-11-20T10:00:01.000Z")
    jsonschema.validate(alert, SCHEMA)
    assert alert["event"]["kind"] == "signal"
    assert alert["kibana.alert.original_event.kind"] == "event"
    assert alert["kibana.alert.original_event.action"] == "start"
    assert alert["kibana.alert.original_time"] == "2026-11-20T10:00:00.000Z"
    assert alert["@timestamp"] == "2026-11-20T10:00:01.000Z"
    assert alert["kibana.alert.rule.rule_id"] == RULE.rule_id
    assert alert["kibana.alert.rule.severity"] == "high" and alert["kibana.alert.risk_score"] == 73
    assert alert["kibana.alert.rule.threat"][0]["tactic"]["id"] == "TA0011"
    assert alert["kibana.alert.rule.from"] == "now-9m" and alert["kibana.alert.rule.interval"] == "5m"
    assert alert["kibana.alert.rule.max_signals"] == 100
    assert alert["kibana.alert.workflow_status"] == "open" and alert["kibana.alert.depth"] == 1
    assert alert["kibana.alert.ancestors"][0]["id"] == "e-1"
    assert alert["process"] == EVENT["process"] and alert["host"] == EVENT["host"]
    assert EVENT["event"]["kind"] == "event"  # the source event is not modified


def test_alert_carries_ecs_version_and_rule_author_license_false_positives_at_the_top_level() -> None:
    # Fields of Kibana's alert field map a producer can set: ecs.version (ECS field map) and the rule's
    # kibana.alert.rule.author / license / false_positives (rulesFieldMap: false_positives is required there).
    alert = build_alert(RULE, EVENT, source="endpoint", digest=record_digest(b"{}"))
    jsonschema.validate(alert, SCHEMA)
    assert alert["ecs.version"] == "8.11.0" and "ecs" not in alert
    assert alert["kibana.alert.rule.author"] == ["Elastic"]
    assert alert["kibana.alert.rule.license"] == "Elastic License v2"
    assert alert["kibana.alert.rule.false_positives"] == list(RULE.false_positives)
    params = alert["kibana.alert.rule.parameters"]
    assert (params["author"], params["license"]) == (alert["kibana.alert.rule.author"], RULE.license)
    for key in ("ecs.version", "kibana.alert.rule.author", "kibana.alert.rule.license"):
        assert key in SCHEMA["required"], key


def test_reason_names_process_parent_user_host() -> None:
    text = reason(RULE, EVENT)
    assert text == (
        "process event with process client32.exe, parent process explorer.exe, by CORP\\alice on WS-042 "
        "created high alert NetSupport Manager Execution from an Unusual Path."
    )


def test_alert_uuid_is_deterministic_per_record_event_and_rule_version() -> None:
    d1, d2 = record_digest(b'{"a": 1}\n'), record_digest(b'{"a": 2}')
    assert d1 == record_digest(b'  {"a": 1}')  # surrounding whitespace is not part of the record
    a = build_alert(RULE, EVENT, source="endpoint", digest=d1)
    b = build_alert(RULE, EVENT, source="endpoint", digest=d1)
    assert a["kibana.alert.uuid"] == b["kibana.alert.uuid"] == alert_uuid(RULE, d1, 0)
    assert a["kibana.alert.uuid"] != alert_uuid(RULE, d2, 0)
    assert a["kibana.alert.uuid"] != alert_uuid(RULE, d1, 1)
    v2 = load_rule(Path(__file__).parent / "fixtures" / "rules" / "netsupport_v2_harddiskvolume_star.toml")
    assert alert_uuid(v2, d1, 0) != a["kibana.alert.uuid"]
