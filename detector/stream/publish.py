"""The publish path as pure functions: what the agent on the matches topic sends for each message.

The internal matches topic carries two kinds of message, both keyed by rule id:

  match  an alert found by the ingest loop (`match_message`)
  tick   "look at this rule's cap window now" (`tick_message`), sent every TICK_EVERY_S by the Faust app's
         timer so that a window's suppression record goes out soon after the window ends, even when no
         further alert of the rule arrives to close it

`handle_match(state, message, now, caps)` takes the rule's cap window (detector/stream/cap.py; kept by the
worker in a Faust table keyed by rule id) and one message, and returns the new window and the records to
send on the alerts topic, in order. No I/O: the agent in detector/stream/app.py reads the window, calls it,
sends the outputs, then stores the window; tests call it without Kafka.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from detector.alerts.builder import alert_key
from detector.alerts.suppression import suppression_key, suppression_record
from detector.rules.model import Rule
from detector.stream import cap

MATCH: Final = "match"
TICK: Final = "tick"
TICK_EVERY_S = 1.0


def match_message(alert: dict[str, Any], consumed_at: float) -> bytes:
    """The matches topic's value for an alert (keyed by its rule id), read at `consumed_at` (epoch s)."""
    return orjson.dumps({"type": MATCH, "consumed_at": consumed_at, "alert": alert})


def tick_message(rule_id: str) -> bytes:
    return orjson.dumps({"type": TICK, "rule_id": rule_id})


def match_partition(rule_id: str, partitions: int) -> int:
    """The matches topic's partition of a rule: where the ingest loop's producer puts the rule's matches.

    That producer (librdkafka) partitions by its `consistent_random` partitioner, CRC-32 of the key modulo
    the partition count; a tick must land on the same partition as the rule's matches, so that the agent
    owning the rule's window sees both, in order, and writes the window to one changelog partition.
    """
    return zlib.crc32(rule_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Capped:
    """A rule with its cap: at most `limit` alerts per `interval` seconds (limit 0 = no cap)."""

    rule: Rule
    limit: int
    interval: float


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message of the matches topic."""

    kind: Literal["match", "tick"]
    rule_id: str
    alert: dict[str, Any] | None = None  # set on a match
    consumed_at: float | None = None  # when the ingest loop read the matching record (epoch s), if known


@dataclass(frozen=True, slots=True)
class Output:
    """A record to send on the alerts topic."""

    kind: Literal["alert", "suppression", "update"]  # update: a suppressed group's alert again (suppress.py)
    key: str
    record: dict[str, Any]


def decode(value: bytes) -> Message | None:
    """The message in `value`, or None if it is not one (the agent logs it and goes on)."""
    try:
        msg = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict):
        return None
    if msg.get("type") == TICK:
        rule_id = msg.get("rule_id")
        return Message(TICK, rule_id) if isinstance(rule_id, str) else None
    alert = msg.get("alert")
    if not isinstance(alert, dict):
        return None
    rule_id = msg.get("rule_id") or alert.get("kibana.alert.rule.rule_id")
    if not isinstance(rule_id, str):
        return None
    consumed_at = msg.get("consumed_at")
    if isinstance(consumed_at, bool) or not isinstance(consumed_at, int | float):
        return Message(MATCH, rule_id, alert)
    return Message(MATCH, rule_id, alert, float(consumed_at))


def _suppression(capped: Capped, window: cap.State, now: float) -> Output:
    start = float(window["start"])
    record = suppression_record(
        capped.rule,
        window_start=start,
        interval=capped.interval,
        cap=capped.limit,
        emitted=int(window["count"]),
        suppressed=int(window["suppressed"]),
        first_suppressed=float(window.get("first_suppressed", start)),
        last_suppressed=float(window.get("last_suppressed", start)),
        now=now,
    )
    return Output("suppression", suppression_key(capped.rule), record)


def handle_match(
    state: cap.State | None, message: Message, now: float, caps: Mapping[str, Capped]
) -> tuple[cap.State | None, list[Output]]:
    """The rule's new cap window and what to send, in order, for `message` arriving at `now`.

    The window returned is `state` itself when nothing changed (the agent then writes nothing). A rule not
    in `caps` is another worker's (other rules loaded): nothing to send.
    """
    capped = caps.get(message.rule_id)
    if capped is None:
        return state, []
    if message.kind == TICK:
        tick = cap.on_tick(state, now, capped.interval)
        if tick is None or tick.summary_of is None:
            return state, []
        return tick.state, [_suppression(capped, tick.summary_of, now)]
    alert = message.alert
    if alert is None:  # decode() never gives a match without its alert
        return state, []
    if capped.limit == 0:
        return state, [Output("alert", alert_key(alert), alert)]
    decision = cap.on_alert(state, now, capped.limit, capped.interval)
    outputs = [] if decision.summary_of is None else [_suppression(capped, decision.summary_of, now)]
    if decision.publish:
        outputs.append(Output("alert", alert_key(alert), alert))
    return decision.state, outputs


def suppressed(message: Message, outputs: list[Output], caps: Mapping[str, Capped]) -> bool:
    """Whether the cap held back `message`'s alert (for the suppressed-alerts counter)."""
    return message.kind == MATCH and message.rule_id in caps and not any(o.kind == "alert" for o in outputs)
