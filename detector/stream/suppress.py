"""Alert suppression as Elastic defines it for EQL rules ([rule.alert_suppression]), as pure functions.

A rule's alerts are grouped by the values of its `group_by` fields. The first alert of a group opens a
window of `duration` seconds of *event time*, from its original event's @timestamp, and is published at once
with Kibana's suppression fields:

  kibana.alert.suppression.terms       [{"field": f, "value": [values] or null}, ...] in group_by order
  kibana.alert.suppression.start/.end  earliest / latest original event time in the group's window
  kibana.alert.suppression.docs_count  alerts suppressed into it, the first one not included (0 at first)

Later alerts of the group whose event time falls inside the window are counted into it and not published.
When the window closes, the alert is published again, the same document with the same kibana.alert.uuid
and key, its suppression fields updated (and kibana.alert.last_detected set), so an index that writes by
id keeps one document per group. A window closes when

  - an alert of the same group arrives with an event time past the window (it opens the next window), or
  - the rule's event-time watermark (the latest original event time among its alerts) passes the window's
    end, or
  - wall-clock bound, for a stream whose event time stalls: `duration` seconds of wall-clock time have passed
    since the window opened. The update goes out then; the window is kept until the watermark passes its end
    (or twice `duration` of wall-clock time has passed), and a late alert inside it is still counted and
    published in a further update with the same id.

`missing_fields_strategy`: "suppress" groups alerts missing a group_by field together (that term's value
is null); "doNotSuppress" publishes each such alert as it is, without suppression fields. An alert whose
original event has no usable @timestamp is published unsuppressed.

The state of a group is a small dict (the original alert document included, to publish its update), kept by
the worker in a Faust table keyed by `group_key(rule_id, terms)` and by `scan` in memory (`InMemory`).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from detector.alerts.builder import alert_key
from detector.fields import values
from detector.rules.model import Rule
from detector.stream import cap, publish
from detector.times import epoch_to_iso, iso_to_epoch

State = dict[str, Any]
# {"anchor": epoch s (window start: the first alert's event time), "start": s, "end": s, "docs_count": int,
#  "published": int (docs_count last published), "opened": wall-clock epoch s, "alert": the published document}

TERMS: Final = "kibana.alert.suppression.terms"
START: Final = "kibana.alert.suppression.start"
END: Final = "kibana.alert.suppression.end"
DOCS_COUNT: Final = "kibana.alert.suppression.docs_count"
LAST_DETECTED: Final = "kibana.alert.last_detected"
WATERMARK_SUFFIX: Final = ":watermark"
KEEP_FACTOR = 2  # a window is forgotten at the latest KEEP_FACTOR * duration of wall-clock time after it opened


@dataclass(frozen=True, slots=True)
class Spec:
    """A rule's suppression as applied: `duration` in seconds (the rule's interval when the rule says "per
    rule execution", i.e. gives no duration)."""

    group_by: tuple[str, ...]
    duration: float
    missing_fields_strategy: str = "suppress"


def spec_for(rule: Rule) -> Spec | None:
    s = rule.alert_suppression
    if s is None:
        return None
    seconds = s.duration_seconds
    return Spec(s.group_by, float(seconds if seconds is not None else rule.interval_seconds), s.missing_fields_strategy)


def terms(alert: Mapping[str, Any], group_by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Kibana's suppression terms of `alert`: each field with its values as an array, null when missing."""
    out = []
    for f in group_by:
        vals = values(alert, f)
        out.append({"field": f, "value": vals or None})
    return out


def group_key(rule_id: str, group_terms: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256(orjson.dumps(group_terms, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    return f"{rule_id}:{digest}"


def watermark_key(rule_id: str) -> str:
    return rule_id + WATERMARK_SUFFIX


def event_time(alert: Mapping[str, Any]) -> float | None:
    return iso_to_epoch(alert.get("kibana.alert.original_time"))


def _document(state: State, now: float | None) -> dict[str, Any]:
    doc = dict(state["alert"])
    doc[START] = epoch_to_iso(state["start"])
    doc[END] = epoch_to_iso(state["end"])
    doc[DOCS_COUNT] = state["docs_count"]
    if now is not None and state["docs_count"]:
        doc[LAST_DETECTED] = epoch_to_iso(now)
    return doc


def _update(state: State, now: float | None) -> publish.Output:
    doc = _document(state, now)
    return publish.Output("update", alert_key(doc), doc)


@dataclass(frozen=True, slots=True)
class Step:
    """What one alert does to its group.

    `outputs`: updates to publish first (the group's previous window, closed by this alert). `new_alert`: the
    alert to create, through the max_signals cap, or None when it was counted into its group. The group's
    state becomes `opened` if `new_alert` is published, `state` otherwise (None: forget the group).
    """

    state: State | None
    outputs: list[publish.Output] = field(default_factory=list)
    new_alert: dict[str, Any] | None = None
    opened: State | None = None
    counted: bool = False  # suppressed into its group


def on_alert(group: State | None, alert: dict[str, Any], spec: Spec, now: float) -> Step:
    """Decide for one alert of a rule with suppression; `group` is the state under its group_key."""
    t = event_time(alert)
    group_terms = terms(alert, spec.group_by)
    missing = any(term["value"] is None for term in group_terms)
    if t is None or (missing and spec.missing_fields_strategy == "doNotSuppress"):
        return Step(group, new_alert=alert, opened=group)
    if group is not None and t < group["anchor"] + spec.duration:
        counted = dict(group)
        counted["docs_count"] += 1
        counted["start"] = min(counted["start"], t)
        counted["end"] = max(counted["end"], t)
        return Step(counted, counted=True)
    outputs = []
    if group is not None and group["docs_count"] > group["published"]:
        outputs.append(_update(group, now))
    doc = dict(alert)
    doc[TERMS] = group_terms
    opened: State = {"anchor": t, "start": t, "end": t, "docs_count": 0, "published": 0, "opened": now}
    doc = _document({**opened, "alert": doc}, None)
    opened["alert"] = doc
    return Step(None, outputs, doc, opened)


def on_tick(
    group: State, watermark: float | None, spec: Spec, now: float | None
) -> tuple[State | None, list[publish.Output]]:
    """Close `group`'s window if it is due; (new state or None to forget it, updates to publish).

    `now` None (scan): event time alone decides."""
    end = group["anchor"] + spec.duration
    by_event_time = watermark is not None and watermark >= end
    by_wall_clock = now is not None and now >= group["opened"] + spec.duration
    if not (by_event_time or by_wall_clock):
        return group, []
    outputs = []
    state = group
    if group["docs_count"] > group["published"]:
        outputs.append(_update(group, now))
        state = {**group, "published": group["docs_count"]}
    if by_event_time or (now is not None and now >= group["opened"] + KEEP_FACTOR * spec.duration):
        return None, outputs
    return state, outputs


@dataclass(frozen=True, slots=True)
class Result:
    cap_state: cap.State | None
    group: State | None
    outputs: list[publish.Output]
    watermark: float | None
    counted: bool


def handle_alert(
    cap_state: cap.State | None,
    group: State | None,
    watermark: float | None,
    message: publish.Message,
    now: float,
    capped: publish.Capped,
    spec: Spec,
) -> Result:
    """A match of a rule with suppression: group first, then the max_signals cap on alerts to be *created*.

    Suppressed alerts never count against the cap (Elastic applies max_signals to the alerts a run
    creates); an alert the cap holds back opens no group, so the next one of its group is again a candidate.
    """
    assert message.alert is not None
    step = on_alert(group, message.alert, spec, now)
    t = event_time(message.alert)
    new_watermark = watermark if t is None or (watermark is not None and watermark >= t) else t
    if step.new_alert is None:
        return Result(cap_state, step.state, step.outputs, new_watermark, step.counted)
    cap_state, outs = publish.handle_match(
        cap_state, replace(message, alert=step.new_alert), now, {message.rule_id: capped}
    )
    published = any(o.kind == "alert" for o in outs)
    return Result(cap_state, step.opened if published else step.state, step.outputs + outs, new_watermark, False)


class InMemory:
    """Suppression over a finite input (`detector scan`): the same decisions as the worker, in memory, by
    event time as the alerts are encountered, without a wall clock; `flush()` closes what is open at the end."""

    def __init__(self, rules: list[Rule]) -> None:
        self.specs = {r.rule_id: s for r in rules if (s := spec_for(r)) is not None}
        self.groups: dict[str, State] = {}
        self.watermarks: dict[str, float] = {}
        self._due: list[tuple[float, str, str]] = []  # (window end, group key, rule id)
        self.suppressed: dict[str, int] = {}  # rule id -> alerts counted into a group
        self.updates = 0

    def feed(self, alert: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """The documents to write for `alert`, in order (none when it was suppressed)."""
        rule_id = alert["kibana.alert.rule.rule_id"]
        spec = self.specs.get(rule_id)
        if spec is None:
            return [alert]
        key = group_key(rule_id, terms(alert, spec.group_by))
        step = on_alert(self.groups.get(key), alert, spec, now)
        docs = [o.record for o in step.outputs]
        state = step.state
        if step.new_alert is not None:
            docs.append(step.new_alert)
            state = step.opened
        if step.counted:
            self.suppressed[rule_id] = self.suppressed.get(rule_id, 0) + 1
        if state is None:
            self.groups.pop(key, None)
        else:
            if step.new_alert is not None and step.opened is not None and state is step.opened:
                heapq.heappush(self._due, (state["anchor"] + spec.duration, key, rule_id))
            self.groups[key] = state
        t = event_time(alert)
        if t is not None and t > self.watermarks.get(rule_id, float("-inf")):
            self.watermarks[rule_id] = t
        docs += self._close_due()
        self.updates += len(docs) - (step.new_alert is not None)
        return docs

    def _close_due(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        while self._due:
            end, key, rule_id = self._due[0]
            wm = self.watermarks.get(rule_id)
            if wm is None or wm < end:
                break
            heapq.heappop(self._due)
            group = self.groups.get(key)
            if group is None or group["anchor"] + self.specs[rule_id].duration != end:
                continue  # that window was closed already and the group has moved on
            state, outs = on_tick(group, wm, self.specs[rule_id], None)
            docs += [o.record for o in outs]
            if state is None:
                del self.groups[key]
        return docs

    def flush(self) -> list[dict[str, Any]]:
        """Updates of every window still open at the end of the input."""
        docs = []
        for _key, group in sorted(self.groups.items(), key=lambda kv: (kv[1]["anchor"], kv[0])):
            if group["docs_count"] > group["published"]:
                docs.append(_document(group, None))
        self.groups.clear()
        self._due.clear()
        self.updates += len(docs)
        return docs
