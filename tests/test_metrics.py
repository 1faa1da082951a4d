"""detector/metrics.py: freshness per topic, matches produced, readiness, pre-created series."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from detector.metrics import Metrics
from detector.rules.model import load_rules


@dataclass
class Msg:
    """The part of confluent_kafka.Message that freshness reads."""

    _topic: str
    ts_ms: int
    kind: int = 1  # TIMESTAMP_CREATE_TIME
    err: Any = None

    def topic(self) -> str:
        return self._topic

    def timestamp(self) -> tuple[int, int]:
        return self.kind, self.ts_ms

    def error(self) -> Any:
        return self.err


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_freshness_per_topic_from_the_last_record_of_each_topic() -> None:
    m = Metrics(CollectorRegistry())
    batch = [Msg("a", 1_000_000), Msg("b", 2_000_000), Msg("a", 3_000_000), Msg("b", 4_000_000, err=object())]
    m.observe_freshness(batch, [r.topic() for r in batch], {"a": "endpoint", "b": "auto"}, now=5000.0)
    labels_a = {"topic": "a", "source": "endpoint"}
    labels_b = {"topic": "b", "source": "auto"}
    assert value(m, "detector_topic_last_consumed_timestamp_seconds", **labels_a) == 5000.0
    assert value(m, "detector_topic_last_consumed_timestamp_seconds", **labels_b) == 5000.0
    assert value(m, "detector_topic_newest_record_timestamp_seconds", **labels_a) == 3000.0
    assert value(m, "detector_topic_newest_record_timestamp_seconds", **labels_b) == 2000.0  # the error skipped
    # An older batch (a replay) does not move the newest timestamp back; no timestamp leaves it as it was.
    older = [Msg("a", 10_000), Msg("b", 9_000_000, kind=0)]
    m.observe_freshness(older, ["a", "b"], {"a": "endpoint", "b": "auto"}, now=6000.0)
    assert value(m, "detector_topic_newest_record_timestamp_seconds", **labels_a) == 3000.0
    assert value(m, "detector_topic_newest_record_timestamp_seconds", **labels_b) == 2000.0
    assert value(m, "detector_topic_last_consumed_timestamp_seconds", **labels_b) == 6000.0


def test_freshness_reads_one_timestamp_per_topic() -> None:
    reads: list[str] = []

    class Counting(Msg):
        def timestamp(self) -> tuple[int, int]:
            reads.append(self._topic)
            return super().timestamp()

    m = Metrics(CollectorRegistry())
    batch = [Counting("a", i) for i in range(1000)] + [Counting("b", 5)]
    m.observe_freshness(batch, [r.topic() for r in batch], {"a": "x", "b": "y"}, now=1.0)
    assert sorted(reads) == ["a", "b"]


def test_topics_start_fresh_at_start_and_series_exist_before_the_first_alert() -> None:
    m = Metrics(CollectorRegistry())
    rules = load_rules()
    m.set_rules(rules)
    m.set_topics({"t1": "endpoint", "t2": "auto"}, now=123.0)
    assert value(m, "detector_topic_last_consumed_timestamp_seconds", topic="t2", source="auto") == 123.0
    for rule in rules:
        for name in ("detector_matches_produced_total", "detector_alerts_emitted_total"):
            assert value(m, name, rule_id=rule.rule_id) == 0.0
    m.count_matches([{"kibana.alert.rule.rule_id": rules[0].rule_id}] * 2)
    assert value(m, "detector_matches_produced_total", rule_id=rules[0].rule_id) == 2.0


def test_ready_is_read_at_scrape_time() -> None:
    m = Metrics(CollectorRegistry())
    state = {"ready": False}
    m.set_ready(lambda: state["ready"])
    assert value(m, "detector_ready") == 0.0
    state["ready"] = True
    assert value(m, "detector_ready") == 1.0
    assert b"detector_ready 1.0" in m.exposition()


def test_two_processes_metrics_merge_into_one_exposition() -> None:
    # The worker serves its own families merged with the ingest process' snapshot: each series is written by
    # one process, so values add up, each family appears once, and a _created stamp is not doubled.
    from prometheus_client.parser import text_string_to_metric_families

    parent, child = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    child.consumed.labels("sysmon", "t.sysmon").inc(5)
    child.backpressure.labels("ingest").inc(2.5)
    child.ingest_paused.set(1)
    parent.backpressure.labels("publish").inc(1.0)
    parent.alerts_emitted.labels("r1").inc(3)
    parent.processing_latency.observe(0.02)
    text = parent.exposition(list(child.registry.collect())).decode()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert samples[("detector_records_consumed_total", (("source", "sysmon"), ("topic", "t.sysmon")))] == 5
    assert samples[("detector_backpressure_seconds_total", (("stage", "ingest"),))] == 2.5
    assert samples[("detector_backpressure_seconds_total", (("stage", "publish"),))] == 1.0
    assert samples[("detector_alerts_emitted_total", (("rule_id", "r1"),))] == 3
    assert samples[("detector_ingest_paused", ())] == 1
    assert samples[("detector_processing_latency_seconds_count", ())] == 1
    assert samples[("detector_ingest_batches_total", ())] == 0  # zero in both
    created = samples[("detector_ingest_batches_created", ())]
    assert abs(created - child.registry.get_sample_value("detector_ingest_batches_created")) < 60  # not a sum
    assert parent.exposition() != text.encode()  # alone, the parent has none of the child's counts
