"""The publish path (detector/stream/publish.py) without Kafka: what the agent sends for each matches message."""

from __future__ import annotations

import uuid
import zlib
from typing import Any

import orjson
import pytest

from detector.alerts.suppression import suppression_record
from detector.rules.model import load_rules
from detector.stream import publish
from detector.stream.publish import MATCH, TICK, Capped, Message, Output, decode, handle_match, match_message
from tests.integration.harness import new_prefix

RULE = load_rules()[0]
RID = RULE.rule_id


def caps(limit: int, interval: float = 60.0) -> dict[str, Capped]:
    return {RID: Capped(RULE, limit, interval)}


def alert(n: int, host: str = "ws1") -> dict[str, Any]:
    return {
        "kibana.alert.uuid": f"uuid-{n}",
        "kibana.alert.rule.rule_id": RID,
        "kibana.alert.original_time": "2024-05-01T10:00:00.000Z",
        "host": {"name": host},
    }


def match(n: int, host: str = "ws1") -> Message:
    decoded = decode(match_message(alert(n, host), 1000.0 + n))
    assert decoded is not None
    return decoded


TICK_MSG = Message(TICK, RID)


def run(messages: list[tuple[Message, float]], cap: dict[str, Capped]) -> tuple[Any, list[list[Output]]]:
    state = None
    sent = []
    for message, now in messages:
        state, outputs = handle_match(state, message, now, cap)
        sent.append(outputs)
    return state, sent


# -- decoding the matches topic ---------------------------------------------------------------------


def test_match_and_tick_messages_decode_to_what_was_encoded() -> None:
    m = decode(match_message(alert(1), 1234.5))
    assert m == Message(MATCH, RID, alert(1), 1234.5)
    assert decode(publish.tick_message(RID)) == Message(TICK, RID)
    # a match may name its rule at the top level too (it wins over the alert's field)
    assert decode(orjson.dumps({"type": "match", "rule_id": "other", "alert": alert(1)})) == Message(
        MATCH, "other", alert(1)
    )


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1, 2]",
        b'"match"',
        b"{}",
        b'{"type": "match"}',
        b'{"type": "match", "alert": []}',
        b'{"type": "match", "alert": {"host": {"name": "x"}}}',
        b'{"type": "match", "alert": {"kibana.alert.rule.rule_id": 7}}',
        b'{"type": "tick"}',
        b'{"type": "tick", "rule_id": ["x"]}',
    ],
)
def test_malformed_messages_decode_to_none(value: bytes) -> None:
    assert decode(value) is None


def test_a_consumed_at_that_is_no_number_is_dropped_not_fatal() -> None:
    for bad in (True, "12", None, [1]):
        m = decode(orjson.dumps({"type": "match", "consumed_at": bad, "alert": alert(1)}))
        assert m is not None and m.consumed_at is None and m.alert == alert(1)


# -- the cap -------------------------------------------------------------------------------------------


def test_first_alert_is_published_keyed_by_host_and_opens_a_window() -> None:
    state, outputs = handle_match(None, match(1, host="dc01"), 500.0, caps(3))
    assert outputs == [Output("alert", "dc01", alert(1, host="dc01"))]
    assert state == {"start": 500.0, "count": 1, "suppressed": 0, "summarised": False}
    assert not publish.suppressed(match(1), outputs, caps(3))


def test_alert_without_host_is_keyed_unknown() -> None:
    bare = {"kibana.alert.uuid": "u", "kibana.alert.rule.rule_id": RID}
    _, outputs = handle_match(None, Message(MATCH, RID, bare), 1.0, caps(3))
    assert [(o.kind, o.key) for o in outputs] == [("alert", "unknown")]


def test_cap_reached_later_alerts_are_counted_not_sent() -> None:
    state, sent = run([(match(i), 100.0 + i) for i in range(5)], caps(3))
    assert [[o.record["kibana.alert.uuid"] for o in out] for out in sent] == [
        ["uuid-0"],
        ["uuid-1"],
        ["uuid-2"],
        [],
        [],
    ]
    assert (state["count"], state["suppressed"]) == (3, 2)
    assert (state["first_suppressed"], state["last_suppressed"]) == (103.0, 104.0)
    assert [publish.suppressed(match(i), out, caps(3)) for i, out in enumerate(sent)] == [False] * 3 + [True] * 2


def test_next_alert_after_the_window_sends_the_suppression_record_first() -> None:
    cap = caps(2, interval=60)
    state, _ = run([(match(i), 10.0 + i) for i in range(5)], cap)
    state, outputs = handle_match(state, match(9), 75.0, cap)
    assert [o.kind for o in outputs] == ["suppression", "alert"]
    record = outputs[0]
    assert record.key == f"suppression:{RID}"
    s = record.record["detector.suppression"]
    assert (s["max_signals"], s["alerts_emitted"], s["alerts_suppressed"]) == (2, 2, 3)
    assert s["window_start"] == "1970-01-01T00:00:10.000Z" and s["window_end"] == "1970-01-01T00:01:10.000Z"
    assert s["first_suppressed"] == "1970-01-01T00:00:12.000Z" and s["last_suppressed"] == "1970-01-01T00:00:14.000Z"
    assert record.record["@timestamp"] == "1970-01-01T00:01:15.000Z"
    assert record.record["detector.record_type"] == "suppression"
    assert outputs[1].record["kibana.alert.uuid"] == "uuid-9"
    assert state == {"start": 75.0, "count": 1, "suppressed": 0, "summarised": False}  # a new window


def test_window_roll_by_tick_sends_one_suppression_record_once() -> None:
    cap = caps(1, interval=30)
    state, _ = run([(match(i), 10.0 + i) for i in range(3)], cap)
    same, outputs = handle_match(state, TICK_MSG, 39.0, cap)  # window still open
    assert outputs == [] and same is state  # unchanged: the agent writes nothing to its table
    state, outputs = handle_match(state, TICK_MSG, 41.0, cap)
    assert [o.kind for o in outputs] == ["suppression"]
    assert outputs[0].record["detector.suppression"]["alerts_suppressed"] == 2
    assert state["summarised"] is True
    again, outputs = handle_match(state, TICK_MSG, 42.0, cap)
    assert outputs == [] and again is state  # one record per window, however many ticks follow
    # nor does the next alert, which opens a new window, summarise the old one again
    state, outputs = handle_match(state, match(7), 60.0, cap)
    assert [o.kind for o in outputs] == ["alert"] and state["start"] == 60.0


def test_window_without_suppressed_alerts_has_no_suppression_record() -> None:
    cap = caps(5, interval=10)
    state, _ = run([(match(1), 0.0), (match(2), 1.0)], cap)
    assert handle_match(state, TICK_MSG, 100.0, cap)[1] == []
    assert [o.kind for o in handle_match(state, match(3), 100.0, cap)[1]] == ["alert"]


def test_tick_without_window_sends_nothing() -> None:
    assert handle_match(None, TICK_MSG, 100.0, caps(3)) == (None, [])


def test_duplicate_match_is_published_again_with_the_same_id_and_counts() -> None:
    # At-least-once: a match re-read after a crash comes again. It is published again (same alert id, for the
    # index to de-duplicate) and counts against the cap like any other.
    state, sent = run([(match(1), 1.0), (match(1), 2.0), (match(1), 3.0)], caps(2))
    assert [[o.record["kibana.alert.uuid"] for o in out] for out in sent] == [["uuid-1"], ["uuid-1"], []]
    assert (state["count"], state["suppressed"]) == (2, 1)


def test_no_cap_publishes_everything_and_keeps_no_state() -> None:
    state, sent = run([(match(i), float(i)) for i in range(200)], caps(0))
    assert state is None
    assert all([o.kind for o in out] == ["alert"] for out in sent)
    assert handle_match(None, TICK_MSG, 1e9, caps(0)) == (None, [])


def test_another_workers_rule_is_not_ours_to_publish() -> None:
    other = Message(MATCH, "not-loaded-here", alert(1))
    marker: dict[str, Any] = {"start": 1.0, "count": 1, "suppressed": 0, "summarised": False}
    state, outputs = handle_match(marker, other, 5.0, caps(3))
    assert outputs == [] and state is marker
    assert not publish.suppressed(other, outputs, caps(3))
    assert handle_match(None, Message(TICK, "not-loaded-here"), 5.0, caps(3)) == (None, [])


def test_state_passed_in_is_never_mutated() -> None:
    cap = caps(1, interval=10)
    state, _ = run([(match(1), 0.0), (match(2), 1.0)], cap)
    frozen = dict(state)
    handle_match(state, match(3), 2.0, cap)
    handle_match(state, TICK_MSG, 20.0, cap)
    handle_match(state, match(4), 30.0, cap)
    assert state == frozen


# -- the suppression record (detector/alerts/suppression.py) -----------------------------------------------


def test_suppression_record_is_deterministic_and_complete() -> None:
    kwargs: dict[str, Any] = {
        "window_start": 1000.0,
        "interval": 300,
        "cap": 1,
        "emitted": 1,
        "suppressed": 3,
        "first_suppressed": 1001.0,
        "last_suppressed": 1003.0,
    }
    a = suppression_record(RULE, now=2000.0, **kwargs)
    b = suppression_record(RULE, now=2100.0, **kwargs)
    assert a["kibana.alert.uuid"] == b["kibana.alert.uuid"]
    assert (
        a["kibana.alert.uuid"]
        != suppression_record(RULE, now=2000.0, **{**kwargs, "window_start": 1300.0})["kibana.alert.uuid"]
    )
    s = a["detector.suppression"]
    assert (s["alerts_emitted"], s["alerts_suppressed"], s["max_signals"]) == (1, 3, 1)
    assert s["window_start"] == "1970-01-01T00:16:40.000Z" and s["window_end"] == "1970-01-01T00:21:40.000Z"
    assert a["kibana.alert.rule.rule_id"] == RULE.rule_id and a["detector.record_type"] == "suppression"
    assert a["kibana.alert.reason"].startswith(f"3 alerts of rule {RULE.name} were suppressed: the cap of 1 ")


# -- ticks land where the rule's matches do ------------------------------------------------------------


def test_match_partition_is_crc32_of_the_rule_id() -> None:
    for n in (1, 4, 7):
        assert publish.match_partition(RID, n) == zlib.crc32(RID.encode()) % n
    assert {publish.match_partition(str(uuid.uuid4()), 4) for _ in range(200)} == {0, 1, 2, 3}


@pytest.mark.kafka
def test_match_partition_is_where_the_ingest_producer_puts_a_rule_s_matches(kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{new_prefix()}.matches"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)]).values():
        fut.result()
    # the ingest loop's partitioning settings (detector/stream/ingest.py)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "partitioner": "consistent_random"})
    placed: dict[str, int] = {}
    keys = [RID] + [str(uuid.uuid4()) for _ in range(100)]
    for key in keys:
        producer.produce(
            topic,
            key=key.encode(),
            value=b"{}",
            on_delivery=lambda err, m: placed.update({m.key().decode(): m.partition()}),
        )
    assert producer.flush(30) == 0
    assert placed == {k: publish.match_partition(k, 6) for k in keys}
