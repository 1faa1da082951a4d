"""deploy/handoff/elasticsearch-sink.json (Kafka Connect -> Elasticsearch) against the worker, offline: the topic it
reads is the worker's alerts topic, values are schemaless JSON, the alert id becomes the document _id (idempotent
at-least-once), the write method and the index Kibana's Security app reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from detector.alerts.builder import build_alert, record_digest
from detector.rules.model import load_rules
from detector.stream.config import WorkerConfig

SINK = Path(__file__).resolve().parents[1] / "deploy" / "handoff" / "elasticsearch-sink.json"


def _config() -> dict[str, str]:
    doc = json.loads(SINK.read_text())
    assert set(doc) == {"name", "config"}, "the Connect REST API's shape: {name, config}"
    config: dict[str, str] = doc["config"]
    assert all(isinstance(v, str) for v in config.values()), "Connect configs are strings"
    return config


def _transforms(config: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    names = [n.strip() for n in config["transforms"].split(",")]
    out = []
    for name in names:
        prefix = f"transforms.{name}."
        out.append(
            (config[prefix + "type"], {k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)})
        )
    return out


def _apply(config: dict[str, str], topic: str, key: Any, value: dict[str, Any]) -> tuple[str, Any]:
    """The SMT chain as Kafka Connect runs it on a schemaless record (the three transforms used here)."""
    for kind, t in _transforms(config):
        if kind == "org.apache.kafka.connect.transforms.ValueToKey":
            key = {f: value[f] for f in t["fields"].split(",")}  # field names are literal (dots included)
        elif kind == "org.apache.kafka.connect.transforms.ExtractField$Key":
            key = key[t["field"]]
        elif kind == "org.apache.kafka.connect.transforms.RegexRouter":
            if re.fullmatch(t["regex"], topic):
                topic = re.sub(t["regex"], t["replacement"], topic)
        else:
            raise AssertionError(f"transform {kind} not modelled by this test")
    return topic, key


def test_reads_the_workers_alerts_topic() -> None:
    config = _config()
    assert config["topics"] == WorkerConfig().alerts_topic == "detections.alerts"
    assert config["connector.class"] == "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector"


def test_values_are_schemaless_json_and_the_key_a_string() -> None:
    config = _config()
    assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert config["value.converter.schemas.enable"] == "false"
    assert config["schema.ignore"] == "true"
    # The worker's key is the host name as plain bytes, not JSON.
    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"


def test_the_alert_id_is_the_document_id_in_kibanas_alerts_index() -> None:
    config = _config()
    assert config["key.ignore"] == "false", "the record key must be the _id (idempotent at-least-once)"
    assert config["write.method"] == "insert", "whole-document index requests: the worker sends whole alerts"
    rule = load_rules()[0]
    event = {"@timestamp": "2026-11-20T10:00:00.000Z", "event": {"kind": "event"}, "host": {"name": "WS-1"}}
    alert = json.loads(json.dumps(build_alert(rule, event, source="endpoint", digest=record_digest(b"{}"))))
    index, doc_id = _apply(config, config["topics"], "WS-1", alert)
    assert doc_id == alert["kibana.alert.uuid"] and isinstance(doc_id, str)
    # The alias Kibana's Security app reads for the default space.
    assert index == ".alerts-security.alerts-default"


def test_failures_stop_the_task_instead_of_dropping_alerts() -> None:
    config = _config()
    assert config["errors.tolerance"] == "none"
    assert config["behavior.on.malformed.documents"] == "fail"
    assert "${file:" in config["connection.password"], "the password comes from a config provider, not the file"
