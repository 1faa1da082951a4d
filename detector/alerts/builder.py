"""Alert documents compatible with Elastic Security's `.alerts-security.alerts-*` index.

Kibana stores the source event's ECS fields as they are (nested here) and its own fields as dotted
`kibana.*` keys at the top level; we do the same so our alerts can be indexed beside Elastic's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from detector import __version__
from detector.fields import first
from detector.rules.model import Rule
from detector.times import now_iso

ALERT_SCHEMA_VERSION = "8.17.0"
# The ECS version Kibana's alerts-as-data ECS field map (8.x) is generated from; the alerts index maps
# `ecs.version` as a keyword and Kibana sets it on every alert it writes.
ECS_VERSION = "8.11.0"
_ORIGINAL_EVENT_FIELDS = ("action", "category", "code", "created", "dataset", "id", "kind", "module", "type")


def record_digest(raw: bytes) -> str:
    """Identity of a raw record: the same bytes always give the same digest."""
    return hashlib.sha256(raw.strip()).hexdigest()


def alert_uuid(rule: Rule, digest: str, index: int) -> str:
    """Deterministic alert id: same record (and event within it) under the same rule version, same id.

    That lets a downstream index de-duplicate what at-least-once delivery may send twice.
    """
    key = f"{rule.rule_id}\x1f{rule.version}\x1f{digest}\x1f{index}"
    return hashlib.sha256(key.encode()).hexdigest()


def reason(rule: Rule, event: Mapping[str, Any]) -> str:
    """Kibana's reason sentence for an EQL alert, naming process, parent, user and host.

    A multi-valued field is named by its first value, as Kibana's sentence does."""
    category = first(event, "event.category")
    parts = [f"{category or 'event'} event"]
    process = first(event, "process.name") or first(event, "process.executable")
    parent = first(event, "process.parent.name") or first(event, "process.parent.executable")
    user = first(event, "user.name")
    domain = first(event, "user.domain")
    host = first(event, "host.name") or first(event, "host.hostname") or first(event, "host.id")
    details = []
    if process:
        details.append(f"process {process}")
    if parent:
        details.append(f"parent process {parent}")
    text = parts[0] + (" with " + ", ".join(details) if details else "")
    if user:
        text += f", by {domain}\\{user}" if domain else f", by {user}"
    if host:
        text += f" on {host}"
    return f"{text} created {rule.severity} alert {rule.name}."


def build_alert(
    rule: Rule,
    event: Mapping[str, Any],
    *,
    source: str,
    digest: str,
    index: int = 0,
    created: str | None = None,
) -> dict[str, Any]:
    """One alert for `event`, the `index`-th ECS event normalised from the record with `digest`."""
    ts = created or now_iso()
    doc: dict[str, Any] = {k: v for k, v in event.items() if k not in ("@timestamp", "event")}
    original_event = dict(event.get("event") or {})
    alert_event = dict(original_event)
    alert_event["kind"] = "signal"
    doc["event"] = alert_event
    doc["@timestamp"] = ts
    uid = alert_uuid(rule, digest, index)
    event_id = original_event.get("id") or f"{digest}:{index}"
    ancestor: dict[str, Any] = {"id": event_id, "type": "event", "index": source, "depth": 0}
    doc.update(
        {
            "kibana.alert.uuid": uid,
            "kibana.alert.rule.uuid": rule.rule_id,
            "kibana.alert.rule.rule_id": rule.rule_id,
            "kibana.alert.rule.name": rule.name,
            "kibana.alert.rule.description": rule.description,
            "kibana.alert.rule.severity": rule.severity,
            "kibana.alert.rule.risk_score": rule.risk_score,
            "kibana.alert.rule.version": rule.version,
            "kibana.alert.rule.threat": [dict(t) for t in rule.threat],
            "kibana.alert.rule.note": rule.note,
            "kibana.alert.rule.references": list(rule.references),
            "kibana.alert.rule.tags": list(rule.tags),
            "kibana.alert.rule.author": list(rule.author),
            "kibana.alert.rule.license": rule.license,
            "kibana.alert.rule.false_positives": list(rule.false_positives),
            "kibana.alert.rule.type": rule.type,
            "kibana.alert.rule.from": rule.from_,
            "kibana.alert.rule.interval": rule.interval,
            "kibana.alert.rule.max_signals": rule.max_signals,
            "kibana.alert.rule.category": "Event Correlation Rule",
            "kibana.alert.rule.consumer": "siem",
            "kibana.alert.rule.producer": "siem",
            "kibana.alert.rule.rule_type_id": "siem.eqlRule",
            "kibana.alert.rule.parameters": rule.as_kibana_rule(),
            "kibana.alert.severity": rule.severity,
            "kibana.alert.risk_score": rule.risk_score,
            "kibana.alert.reason": reason(rule, event),
            "kibana.alert.original_time": event.get("@timestamp"),
            "kibana.alert.ancestors": [ancestor],
            "kibana.alert.depth": 1,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.start": ts,
            "kibana.space_ids": ["default"],
            "kibana.version": ALERT_SCHEMA_VERSION,
            "ecs.version": ECS_VERSION,
            "detector.source": source,
            "detector.version": __version__,
        }
    )
    for key in _ORIGINAL_EVENT_FIELDS:
        if key in original_event:
            doc[f"kibana.alert.original_event.{key}"] = original_event[key]
    return doc


def attach_origin(alert: dict[str, Any], topic: str, partition: int, offset: int) -> None:
    """Say where a streamed record was read, as Kibana names the source index of an ancestor.

    Applied after the fact, only to alerts, so the per-record hot path allocates nothing for it.
    """
    alert["kibana.alert.ancestors"][0]["index"] = topic
    alert["detector.origin"] = {"topic": topic, "partition": partition, "offset": offset}


def alert_key(alert: Mapping[str, Any]) -> str:
    """The alerts topic's message key: the host, so one host's alerts stay in order on one partition."""
    host = first(alert, "host.name") or first(alert, "host.hostname") or first(alert, "host.id")
    return str(host) if host is not None else "unknown"


def with_prevalence(alert: dict[str, Any], prevalence: Mapping[str, Any], suffix: str) -> None:
    """Add fleet prevalence (detector/prevalence.py) to an alert: `detector.enrichment.prevalence`, and the
    reason sentence ends "...; first seen on this host; 1 of 1,842 hosts." (`suffix`). Applied once, to the
    alert as the engine built it (a replayed record's alert is built afresh)."""
    alert["detector.enrichment.prevalence"] = dict(prevalence)
    text = str(alert.get("kibana.alert.reason") or "").removesuffix(".")
    alert["kibana.alert.reason"] = f"{text}; {suffix}."
