"""Fleet prevalence on the stream: the messages and the pure step of the agent that keeps the table.

Candidate executions (detector/prevalence.py) travel on the matches topic keyed by their executable, so one
agent (the owner of that partition) holds each executable's row, in a Faust table co-partitioned with the
matches topic. An alert raised on a candidate rides with its observation: the owner updates the row, enriches
the alert from it, and sends it on to the matches topic keyed by rule, where the cap agent publishes it.

  ingest --observe (key: executable; alert or none)--> matches --agent: row, enrich--> matches (key: rule id)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from detector.engine import Outcome
from detector.prevalence import Candidate, Row, enrich, observe
from detector.stream.publish import match_message

OBSERVE: Final = "observe"


def observation_message(cand: Candidate, alert: dict[str, Any] | None, consumed_at: float) -> bytes:
    """The matches topic's value for one candidate execution (keyed by `cand.key`), with its alert if any."""
    return orjson.dumps(
        {"type": OBSERVE, "key": cand.key, "host": cand.host, "ts": cand.ts, "alert": alert, "consumed_at": consumed_at}
    )


@dataclass(frozen=True, slots=True)
class Observation:
    key: str
    host: str
    ts: float | None
    alert: dict[str, Any] | None
    consumed_at: float | None


def decode(value: bytes) -> Observation | None:
    """The observation in `value`, or None when it is another kind of matches message (or not one at all)."""
    if b'"type":"observe"' not in value[:40]:
        return None
    try:
        msg = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    key, host, ts, alert = msg.get("key"), msg.get("host"), msg.get("ts"), msg.get("alert")
    if not isinstance(key, str) or not isinstance(host, str):
        return None
    ts = float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None
    consumed = msg.get("consumed_at")
    consumed = float(consumed) if isinstance(consumed, int | float) and not isinstance(consumed, bool) else None
    return Observation(key, host, ts, alert if isinstance(alert, dict) else None, consumed)


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


def prevalence_messages(out: Outcome, consumed_at: float) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) on the matches topic for one evaluated record: an observation per candidate, keyed by its
    executable and carrying the candidate's alerts (one message each), then each alert not on a candidate
    (no executable or host to key it by) as a plain match, keyed by its rule id."""
    routed: set[int] = set()
    for cand in out.candidates:
        key = cand.key.encode()
        if not cand.alerts:
            yield key, observation_message(cand, None, consumed_at)
        for alert in cand.alerts:
            routed.add(id(alert))
            yield key, observation_message(cand, alert, consumed_at)
    for alert in out.alerts:
        if id(alert) not in routed:
            yield str(alert["kibana.alert.rule.rule_id"]).encode(), match_message(alert, consumed_at)
