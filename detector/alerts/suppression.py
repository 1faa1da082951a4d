"""The suppression record: one document per capped window on the alerts topic, beside the alerts.

Elastic keeps at most `max_signals` alerts per rule execution; the worker keeps as many per rule per window
(detector/stream/cap.py) and says here how many it held back, so an analyst sees that alerts are missing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from detector.rules.model import Rule
from detector.times import epoch_to_iso

RECORD_TYPE = "suppression"


def suppression_uuid(rule: Rule, window_start: float) -> str:
    """Deterministic id: the same window of the same rule version always gives the same record id."""
    key = f"{rule.rule_id}\x1f{rule.version}\x1fsuppression\x1f{window_start!r}"
    return hashlib.sha256(key.encode()).hexdigest()


def suppression_key(rule: Rule) -> str:
    """The alerts topic's message key of a rule's suppression records: one partition per rule, in order."""
    return f"suppression:{rule.rule_id}"


def suppression_record(
    rule: Rule,
    *,
    window_start: float,
    interval: float,
    cap: int,
    emitted: int,
    suppressed: int,
    first_suppressed: float,
    last_suppressed: float,
    now: float,
) -> dict[str, Any]:
    """The record saying that `suppressed` alerts of `rule` were held back in the window from `window_start`."""
    return {
        "@timestamp": epoch_to_iso(now),
        "event": {"kind": "signal", "action": "alerts-suppressed", "category": ["threat"], "type": ["info"]},
        "detector.record_type": RECORD_TYPE,
        "kibana.alert.uuid": suppression_uuid(rule, window_start),
        "kibana.alert.rule.rule_id": rule.rule_id,
        "kibana.alert.rule.uuid": rule.rule_id,
        "kibana.alert.rule.name": rule.name,
        "kibana.alert.rule.version": rule.version,
        "kibana.alert.severity": rule.severity,
        "kibana.alert.reason": (
            f"{suppressed} alerts of rule {rule.name} were suppressed: the cap of {cap} alerts per "
            f"{interval:g} s window was reached."
        ),
        "detector.suppression": {
            "window_start": epoch_to_iso(window_start),
            "window_end": epoch_to_iso(window_start + interval),
            "max_signals": cap,
            "alerts_emitted": emitted,
            "alerts_suppressed": suppressed,
            "first_suppressed": epoch_to_iso(first_suppressed),
            "last_suppressed": epoch_to_iso(last_suppressed),
        },
    }
