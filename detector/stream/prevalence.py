"""Fleet prevalence on the stream: the messages and the pure step of the agent that keeps the table.

Candidate executions (detector/prevalence.py) travel on the matches topic keyed by rule id, like the rule's
matches: one observation per loaded rule, so the agent that owns the rule's partition holds the rule's rows
(table key: rule id and executable), its cap window and its suppression groups. An alert raised on a candidate
rides with its rule's observation; the owner updates the row, enriches the alert from it and puts it through
the cap and suppression at once, so an alert crosses Kafka once between the ingest and the alerts topic.

  ingest --observe (key: rule id; the rule's alert or none)--> matches --agent: row, enrich, cap--> alerts

Keying by executable instead would spread a rule's rows over the partitions, but the enriched alert would then
need a second trip through the matches topic to reach its rule's cap window: measured, a hop costs about 5 ms
at the median and more in the tail. One rule's candidates are few (its query without the path clause).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from detector.engine import Outcome
from detector.prevalence import Candidate, Row, enrich, observe
from detector.stream.publish import match_message

OBSERVE: Final = "observe"


def observation_message(cand: Candidate, rule_id: str, alert: dict[str, Any] | None, consumed_at: float) -> bytes:
    """The matches topic's value for one candidate execution, for `rule_id` (its key), with its alert if any."""
    return orjson.dumps(
        {
            "type": OBSERVE,
            "rule_id": rule_id,
            "key": cand.key,
            "host": cand.host,
            "ts": cand.ts,
            "alert": alert,
            "consumed_at": consumed_at,
        }
    )


@dataclass(frozen=True, slots=True)
class Observation:
    rule_id: str
    key: str  # the executable
    host: str
    ts: float | None
    alert: dict[str, Any] | None
    consumed_at: float | None

    @property
    def row_key(self) -> str:
        """The row's key in the table: the rule's rows live on the rule's partition."""
        return row_key(self.rule_id, self.key)


ROW_KEY_SEP = "\x00"  # not in a rule id: what precedes the first one is the row's rule


def row_key(rule_id: str, executable: str) -> str:
    return f"{rule_id}{ROW_KEY_SEP}{executable}"


def row_rule(key: str) -> str:
    """The rule id of a row key (the partition the row lives on is the rule's)."""
    return key.split(ROW_KEY_SEP, 1)[0]


def decode(value: bytes) -> Observation | None:
    """The observation in `value`, or None when it is another kind of matches message (or not one at all)."""
    if b'"type":"observe"' not in value[:40]:
        return None
    try:
        msg = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    key, host, ts, alert = msg.get("key"), msg.get("host"), msg.get("ts"), msg.get("alert")
    rule_id = msg.get("rule_id")
    if not isinstance(key, str) or not isinstance(host, str) or not isinstance(rule_id, str):
        return None
    ts = float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None
    consumed = msg.get("consumed_at")
    consumed = float(consumed) if isinstance(consumed, int | float) and not isinstance(consumed, bool) else None
    return Observation(rule_id, key, host, ts, alert if isinstance(alert, dict) else None, consumed)


def handle_observation(
    row: Row | None, obs: Observation, now: float, *, horizon: float, max_hosts: int
) -> tuple[Row, dict[str, Any] | None]:
    """The executable's new row and the observation's alert enriched from it (None when it carried none)."""
    ts = obs.ts if obs.ts is not None else now
    new = observe(row, obs.host, ts, horizon=horizon, max_hosts=max_hosts)
    if obs.alert is None:
        return new, None
    enrich(Candidate(obs.key, obs.host, obs.ts, (obs.alert,)), new)
    return new, obs.alert


def prevalence_messages(out: Outcome, consumed_at: float, rule_ids: Sequence[str]) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) on the matches topic for one evaluated record, every one keyed by a rule id.

    Per candidate, an observation for each of `rule_ids` (the loaded rules), so each rule's rows count every
    candidate execution: one per alert the rule raised on it (each carries its alert), or one bare. Then each
    alert not on a candidate (no executable or host to count) as a plain match.
    """
    routed: set[int] = set()
    for cand in out.candidates:
        by_rule: dict[str, list[dict[str, Any] | None]] = {r: [] for r in rule_ids}
        for alert in cand.alerts:
            routed.add(id(alert))
            by_rule.setdefault(str(alert["kibana.alert.rule.rule_id"]), []).append(alert)
        for rule_id, alerts in by_rule.items():
            for carried in alerts or [None]:
                yield rule_id.encode(), observation_message(cand, rule_id, carried, consumed_at)
    for alert in out.alerts:
        if id(alert) not in routed:
            yield str(alert["kibana.alert.rule.rule_id"]).encode(), match_message(alert, consumed_at)
