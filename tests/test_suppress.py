"""Alert suppression ([rule.alert_suppression]): the rule block and the pure decisions of stream/suppress.py."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from typing import Any

import pytest

from detector.rules.model import (
    DEFAULT_RULE_FILE,
    AlertSuppression,
    RuleError,
    load_rules,
    rule_from_dict,
    with_suppression,
)
from detector.stream import publish, suppress
from detector.stream.publish import Capped, Message
from detector.times import epoch_to_iso, iso_to_epoch

BASE = tomllib.loads(DEFAULT_RULE_FILE.read_text())
RULE = load_rules()[0]
RID = RULE.rule_id
T0: float = iso_to_epoch("2026-11-20T08:00:00.000Z") or 0.0


def rule_with(block: Any) -> Any:
    doc = {**BASE, "rule": {**BASE["rule"], "alert_suppression": block}}
    return rule_from_dict(doc, "test.toml")


def alert(n: int, t: float, host: str | None = "ws1", user: str | None = "alice") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kibana.alert.uuid": f"uuid-{n}",
        "kibana.alert.rule.rule_id": RID,
        "kibana.alert.original_time": epoch_to_iso(t),
    }
    if host is not None:
        doc["host"] = {"name": host}
    if user is not None:
        doc["user"] = {"name": user}
    return doc


SPEC = suppress.Spec(("host.name",), 60.0)


# -- the rule block ---------------------------------------------------------------------------------


def test_block_is_parsed_as_detection_rules_writes_it() -> None:
    r = rule_with({"group_by": ["host.name", "user.name"], "duration": {"value": 5, "unit": "m"}})
    assert r.alert_suppression == AlertSuppression(("host.name", "user.name"), (5, "m"), "suppress")
    assert r.alert_suppression.duration_seconds == 300
    assert r.as_kibana_rule()["alert_suppression"] == {
        "group_by": ["host.name", "user.name"],
        "duration": {"value": 5, "unit": "m"},
        "missing_fields_strategy": "suppress",
    }
    per_execution = rule_with({"group_by": ["host.name"], "missing_fields_strategy": "doNotSuppress"})
    assert per_execution.alert_suppression == AlertSuppression(("host.name",), None, "doNotSuppress")
    # no duration: Elastic's "per rule execution", here the rule's interval
    assert suppress.spec_for(per_execution) == suppress.Spec(("host.name",), 300.0, "doNotSuppress")
    assert RULE.alert_suppression is None and "alert_suppression" not in RULE.as_kibana_rule()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"group_by": []}, "1 to 3 field names"),
        ({"group_by": ["a", "b", "c", "d"]}, "1 to 3 field names"),
        ({"group_by": ["a", ""]}, "1 to 3 field names"),
        ({"group_by": ["a", "a"]}, "twice"),
        ({"group_by": ["a"], "duration": {"value": 0, "unit": "m"}}, "at least 1"),
        ({"group_by": ["a"], "duration": {"value": 5, "unit": "d"}}, "s, m or h"),
        ({"group_by": ["a"], "duration": "5m"}, "value and unit"),
        ({"group_by": ["a"], "missing_fields_strategy": "drop"}, "'suppress' or 'doNotSuppress'"),
        ({"group_by": ["a"], "per": "rule"}, "unknown key"),
        ("host.name", "must be a table"),
    ],
)
def test_bad_blocks_are_refused_naming_the_problem(block: Any, message: str) -> None:
    with pytest.raises(RuleError, match="alert_suppression") as exc:
        rule_with(block)
    assert message in str(exc.value)


def test_command_line_options_apply_over_the_rule() -> None:
    r = with_suppression(RULE, ["host.name", " user.name "], "30s")
    assert r.alert_suppression == AlertSuppression(("host.name", "user.name"), (30, "s"), "suppress")
    own = rule_with(
        {"group_by": ["user.name"], "duration": {"value": 1, "unit": "h"}, "missing_fields_strategy": "doNotSuppress"}
    )
    assert with_suppression(own, None, "10m").alert_suppression == AlertSuppression(
        ("user.name",), (10, "m"), "doNotSuppress"
    )
    assert with_suppression(own, ["host.name"], None).alert_suppression == AlertSuppression(
        ("host.name",), (1, "h"), "doNotSuppress"
    )
    assert with_suppression(RULE, None, None) is RULE
    with pytest.raises(ValueError, match="add --suppress-by"):
        with_suppression(RULE, None, "5m")
    with pytest.raises(ValueError, match="suppression duration"):
        with_suppression(RULE, ["host.name"], "5d")


# -- the pure decisions ------------------------------------------------------------------------------


def test_first_alert_is_published_with_suppression_fields_and_later_ones_are_counted() -> None:
    step = suppress.on_alert(None, alert(1, T0), SPEC, now=1000.0)
    assert step.outputs == [] and step.new_alert is not None
    doc = step.new_alert
    assert doc["kibana.alert.uuid"] == "uuid-1"
    assert doc[suppress.TERMS] == [{"field": "host.name", "value": ["ws1"]}]
    assert doc[suppress.START] == doc[suppress.END] == epoch_to_iso(T0)
    assert doc[suppress.DOCS_COUNT] == 0
    group = step.opened
    assert group is not None
    for n, dt in ((2, 10), (3, 59.999), (4, -5)):  # inside the window; the last one late, before the first
        step = suppress.on_alert(group, alert(n, T0 + dt), SPEC, now=1001.0)
        assert step.counted and step.new_alert is None and step.outputs == []
        group = step.state
        assert group is not None
    assert (group["docs_count"], group["start"], group["end"]) == (3, T0 - 5, T0 + 59.999)
    # the next one of the group past the window closes it (its update first) and opens the next window
    step = suppress.on_alert(group, alert(5, T0 + 60), SPEC, now=1002.0)
    (update,) = step.outputs
    assert update.kind == "update" and update.key == "ws1"
    assert update.record["kibana.alert.uuid"] == "uuid-1"
    assert update.record[suppress.DOCS_COUNT] == 3
    assert update.record[suppress.START] == epoch_to_iso(T0 - 5)
    assert update.record[suppress.END] == epoch_to_iso(T0 + 59.999)
    assert update.record[suppress.LAST_DETECTED] == epoch_to_iso(1002.0)
    assert step.new_alert is not None and step.new_alert["kibana.alert.uuid"] == "uuid-5"
    assert step.new_alert[suppress.DOCS_COUNT] == 0


def test_groups_are_by_the_values_of_every_group_by_field() -> None:
    spec = suppress.Spec(("host.name", "user.name"), 60.0)
    a = suppress.group_key(RID, suppress.terms(alert(1, T0, "ws1", "alice"), spec.group_by))
    b = suppress.group_key(RID, suppress.terms(alert(2, T0, "ws1", "bob"), spec.group_by))
    c = suppress.group_key(RID, suppress.terms(alert(3, T0, "ws1", "alice"), spec.group_by))
    assert a == c != b and a.startswith(RID + ":")


def test_missing_fields_suppress_groups_them_with_a_null_value() -> None:
    step = suppress.on_alert(None, alert(1, T0, host=None), SPEC, now=0.0)
    assert step.new_alert is not None
    assert step.new_alert[suppress.TERMS] == [{"field": "host.name", "value": None}]
    step2 = suppress.on_alert(step.opened, alert(2, T0 + 1, host=None), SPEC, now=0.0)
    assert step2.counted


def test_missing_fields_do_not_suppress_publishes_each_alert_as_it_is() -> None:
    spec = replace(SPEC, missing_fields_strategy="doNotSuppress")
    a = alert(1, T0, host=None)
    step = suppress.on_alert(None, a, spec, now=0.0)
    assert step.new_alert is a and suppress.TERMS not in a and step.opened is None and not step.counted
    # with the field present, the strategy changes nothing
    assert suppress.on_alert(None, alert(2, T0), spec, now=0.0).new_alert[suppress.DOCS_COUNT] == 0  # type: ignore[index]


def test_an_alert_without_event_time_is_not_suppressed() -> None:
    a = alert(1, T0)
    a["kibana.alert.original_time"] = None
    step = suppress.on_alert(None, a, SPEC, now=0.0)
    assert step.new_alert is a and step.opened is None


def test_tick_closes_by_event_time_watermark_or_by_wall_clock() -> None:
    group = suppress.on_alert(None, alert(1, T0), SPEC, now=1000.0).opened
    assert group is not None
    group = suppress.on_alert(group, alert(2, T0 + 5), SPEC, now=1000.0).state
    assert group is not None
    assert suppress.on_tick(group, T0 + 59, SPEC, now=1059.0) == (group, [])  # not yet
    # event time passed the window: update, and the group is forgotten
    state, outs = suppress.on_tick(group, T0 + 60, SPEC, now=1001.0)
    assert state is None and [o.record[suppress.DOCS_COUNT] for o in outs] == [1]
    # event time stalled: wall clock closes it, the window is kept for late alerts
    state, outs = suppress.on_tick(group, T0 + 5, SPEC, now=1060.0)
    assert state is not None and state["published"] == 1 and len(outs) == 1
    late = suppress.on_alert(state, alert(3, T0 + 30), SPEC, now=1070.0)
    assert late.counted and late.state is not None
    state2, outs2 = suppress.on_tick(late.state, T0 + 5, SPEC, now=1071.0)
    assert [o.record[suppress.DOCS_COUNT] for o in outs2] == [2]  # a further update, same id
    assert outs2[0].record["kibana.alert.uuid"] == "uuid-1"
    assert state2 is not None and suppress.on_tick(state2, T0 + 5, SPEC, now=1075.0) == (state2, [])
    # and is forgotten after twice the duration of wall-clock time
    assert suppress.on_tick(state2, T0 + 5, SPEC, now=1120.0) == (None, [])
    # a window with nothing suppressed closes without an update
    lone = suppress.on_alert(None, alert(9, T0), SPEC, now=0.0).opened
    assert lone is not None and suppress.on_tick(lone, T0 + 61, SPEC, now=None) == (None, [])


def test_suppressed_alerts_do_not_count_against_the_max_signals_cap() -> None:
    capped = Capped(RULE, 2, 300.0)
    cap_state = group_a = group_b = None
    wm = None
    sent: list[publish.Output] = []

    def feed(n: int, host: str, t: float) -> suppress.Result:
        nonlocal cap_state, wm
        groups = {"ws1": group_a, "ws2": group_b, "ws3": None}
        r = suppress.handle_alert(
            cap_state, groups[host], wm, Message("match", RID, alert(n, t, host)), 100.0, capped, SPEC
        )
        cap_state, wm = r.cap_state, r.watermark
        sent.extend(r.outputs)
        return r

    group_a = feed(1, "ws1", T0).group
    for n in range(2, 6):  # four more of ws1, all suppressed: the cap is untouched
        r = feed(n, "ws1", T0 + n)
        assert r.counted and r.outputs == []
        group_a = r.group
    group_b = feed(6, "ws2", T0 + 7).group
    r3 = feed(7, "ws3", T0 + 8)  # a third group: the cap (2 created) holds it back, no group opens
    assert r3.group is None and not r3.counted
    assert [o.record["kibana.alert.uuid"] for o in sent if o.kind == "alert"] == ["uuid-1", "uuid-6"]
    assert group_a is not None and group_a["docs_count"] == 4
    assert cap_state is not None and (cap_state["count"], cap_state["suppressed"]) == (2, 1)
    assert wm == T0 + 8


def test_in_memory_gives_the_updates_in_event_time_and_flushes_at_the_end() -> None:
    rule = with_suppression(RULE, ["host.name"], "1m")
    mem = suppress.InMemory([rule])
    out = []
    for n, (host, dt) in enumerate(
        [("ws1", 0), ("ws1", 10), ("ws2", 20), ("ws1", 30), ("ws2", 70), ("ws3", 200), ("ws2", 75)]
    ):
        out += mem.feed(alert(n, T0 + dt, host), now=0.0)
    ids = [(d["kibana.alert.uuid"], d[suppress.DOCS_COUNT]) for d in out]
    # ws1: uuid-0 created, 2 counted, closed by the watermark at ws2's T0+70 -> update; ws2 window 1 (T0+20)
    # counted nothing; ws2 T0+70 falls in it (< T0+80) -> counted; ws3 at T0+200 closes ws2 -> update;
    # ws2 T0+75 arrives late, its window gone: a new window
    assert ids == [("uuid-0", 0), ("uuid-2", 0), ("uuid-0", 2), ("uuid-5", 0), ("uuid-2", 1), ("uuid-6", 0)]
    assert mem.flush() == [] and mem.suppressed == {RID: 3} and mem.updates == 2
