"""Alert suppression on the real broker: groups kept in the Faust table `alert-groups` across a restart and
shared by two workers; the updated alert (same id) published when the window closes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.sources import SOURCES
from detector.times import epoch_to_iso
from tests.integration.harness import (
    Namespace,
    Reader,
    Received,
    WorkerProcess,
    alerts_only,
    create_topics,
    produce,
)

pytestmark = pytest.mark.kafka

TEMPLATE = orjson.loads(
    (Path(__file__).parents[1] / "fixtures" / "suppression" / "positives.ndjson").read_bytes().splitlines()[0]
)
T0 = 1_795_000_000.0  # 2026-11-19: event time, far from the wall clock on purpose
RULE_ID = "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891"


def record(host: str, t: float, n: int) -> bytes:
    doc: dict[str, Any] = orjson.loads(orjson.dumps(TEMPLATE))
    doc["@timestamp"] = epoch_to_iso(t)
    doc["host"]["name"] = host
    doc["event"]["id"] = f"{host}-{n}"
    doc["process"]["pid"] = 2000 + n
    return orjson.dumps(doc)


@pytest.fixture
def ns(kafka_bootstrap: str) -> Namespace:
    n = Namespace()
    create_topics(kafka_bootstrap, [n.topic(s) for s in SOURCES] + [n.alerts, n.deadletter, n.matches])
    return n


def docs_of(messages: list[Received]) -> list[dict[str, Any]]:
    return alerts_only(messages)


def suppressed_total(w: WorkerProcess) -> float:
    for line in w.metrics().splitlines():
        if line.startswith(f'detector_alerts_suppressed_total{{rule_id="{RULE_ID}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_metric(w: WorkerProcess, value: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if suppressed_total(w) >= value:
            return
        time.sleep(0.3)
    raise AssertionError(f"suppressed counter never reached {value}:\n{w.log()}")


def test_groups_survive_a_restart_and_the_update_keeps_the_id(
    kafka_bootstrap: str, ns: Namespace, tmp_path: Path
) -> None:
    env = ns.env(
        kafka_bootstrap, DETECTOR_MAX_SIGNALS="0", DETECTOR_SUPPRESS_BY="host.name", DETECTOR_SUPPRESS_FOR="2m"
    )
    topic = ns.topic("endpoint")
    alerts = Reader(kafka_bootstrap, ns.alerts)
    first = WorkerProcess(env, tmp_path / "worker1.log")
    second: WorkerProcess | None = None
    try:
        first.wait_ready()
        produce(kafka_bootstrap, topic, [record("wks-a", T0, 1)])
        (created,) = alerts.wait_for(lambda m: len(m) >= 1, 60, "the first alert")
        a = created.json()
        assert a["kibana.alert.suppression.terms"] == [{"field": "host.name", "value": ["wks-a"]}]
        assert a["kibana.alert.suppression.docs_count"] == 0
        produce(kafka_bootstrap, topic, [record("wks-a", T0 + 5, 2)])
        wait_metric(first, 1)  # counted into wks-a's group, not published
        assert first.terminate() == 0, first.log()  # SIGTERM: graceful
        second = WorkerProcess(env, tmp_path / "worker2.log")
        second.wait_ready()
        # the group, restored from the table's changelog, takes the third; the fourth is past its 2 minutes
        produce(kafka_bootstrap, topic, [record("wks-a", T0 + 10, 3)])
        wait_metric(second, 1)
        produce(kafka_bootstrap, topic, [record("wks-a", T0 + 130, 4)])
        msgs = alerts.wait_for(lambda m: len(m) >= 3, 60, "the update and the next window's alert")
        docs = docs_of(msgs)
        update, nxt = docs[1], docs[2]
        assert update["kibana.alert.uuid"] == a["kibana.alert.uuid"] and msgs[1].key == created.key == b"wks-a"
        assert update["kibana.alert.suppression.docs_count"] == 2
        assert update["kibana.alert.suppression.start"] == epoch_to_iso(T0)
        assert update["kibana.alert.suppression.end"] == epoch_to_iso(T0 + 10)
        assert nxt["kibana.alert.uuid"] != a["kibana.alert.uuid"] and nxt["kibana.alert.suppression.docs_count"] == 0
        assert nxt["kibana.alert.suppression.start"] == epoch_to_iso(T0 + 130)
        alerts.poll(2.0)
        assert len(alerts.messages) == 3
    finally:
        first.stop_quietly()
        if second is not None:
            assert second.terminate() == 0, second.log()
        alerts.close()


def test_two_workers_share_a_group(kafka_bootstrap: str, ns: Namespace, tmp_path: Path) -> None:
    env = ns.env(
        kafka_bootstrap, DETECTOR_MAX_SIGNALS="0", DETECTOR_SUPPRESS_BY="host.name", DETECTOR_SUPPRESS_FOR="1m"
    )
    a = WorkerProcess(env, tmp_path / "a.log")
    b = WorkerProcess(env, tmp_path / "b.log")
    alerts = Reader(kafka_bootstrap, ns.alerts)
    try:
        a.wait_ready()
        b.wait_ready()
        time.sleep(3)  # let the group settle on its final assignment
        # 20 alerts of one host, spread over the input partitions (both workers' ingest loops read some):
        # their matches share the rule's matches partition, so one agent owns the group
        for p in range(4):  # each input partition gets 5 (librdkafka would put a keyless batch on one)
            produce(kafka_bootstrap, ns.topic("endpoint"), [record("wks-a", T0 + i, i) for i in range(p, 20, 4)], p)
        alerts.wait_for(lambda m: len(m) >= 1, 60, "the group's alert")
        deadline = time.monotonic() + 60
        while suppressed_total(a) + suppressed_total(b) < 19 and time.monotonic() < deadline:
            time.sleep(0.3)
        # another host's alert moves event time past wks-a's minute: the next tick publishes the update
        produce(kafka_bootstrap, ns.topic("endpoint"), [record("wks-z", T0 + 200, 99)])
        msgs = alerts.wait_for(lambda m: len(m) >= 3, 60, "the update and wks-z's alert")
        alerts.poll(2.0)
        docs = docs_of(alerts.messages)
        by_id: dict[str, list[int]] = {}
        for d in docs:
            by_id.setdefault(d["kibana.alert.uuid"], []).append(d["kibana.alert.suppression.docs_count"])
        assert sorted(by_id.values()) == [[0], [0, 19]], by_id
        assert len(msgs) == 3
        consumed = sum(
            float(line.rsplit(" ", 1)[1])
            for w in (a, b)
            for line in w.metrics().splitlines()
            if line.startswith("detector_records_consumed_total{")
        )
        assert consumed >= 21
    finally:
        codes = [a.terminate(), b.terminate()]
        alerts.close()
    assert codes == [0, 0]
