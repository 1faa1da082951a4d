"""Prometheus metrics of the streaming worker (prometheus-client, Prometheus naming conventions).

Metrics live in their own registry so tests and several apps in one process don't collide.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from detector import __version__
from detector.rules.model import Rule

# Latency buckets from a millisecond to a minute: the target is well under a second.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Event-to-alert delay includes the sensor's and the pipeline's delay before Kafka: minutes to hours.
_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)

CONTENT_TYPE = CONTENT_TYPE_LATEST
_TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


class _Record(Protocol):
    """What freshness reads of a consumed confluent-kafka Message."""

    def error(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "detector_records_consumed", "Raw records consumed, by source and topic", ["source", "topic"], registry=r
        )
        self.prefiltered = Counter(
            "detector_records_prefiltered",
            "Records skipped unparsed by the prefilter (they cannot match any loaded rule)",
            ["source"],
            registry=r,
        )
        self.normalized = Counter(
            "detector_records_normalized", "Records parsed and normalised to ECS", ["source"], registry=r
        )
        self.without_event = Counter(
            "detector_records_without_event",
            "Records normalised without yielding an event, by reason (not_covered: an event type the rule does "
            "not read; shape_not_understood: the source's markers in a layout its normaliser cannot read)",
            ["source", "reason"],
            registry=r,
        )
        self.malformed_values = Counter(
            "detector_malformed_values",
            "Malformed values dropped from records that were still evaluated (as Elastic's ignore_malformed)",
            ["source", "field"],
            registry=r,
        )
        self.rejected = Counter(
            "detector_records_rejected",
            "Records sent to the dead-letter topic, by reason",
            ["source", "reason"],
            registry=r,
        )
        self.validated = Counter(
            "detector_records_validated",
            "Prefiltered records sampled (validate_sample_rate) and parsed anyway, by topic, the topic's source "
            "and verdict (ok or the rejection reason): a misrouted or drifted topic shows here",
            ["topic", "source", "result"],
            registry=r,
        )
        self.deadletters_truncated = Counter(
            "detector_deadletters_truncated",
            "Dead letters cut to fit deadletter_max_bytes or the dead-letter topic's max.message.bytes",
            registry=r,
        )
        self.alerts_emitted = Counter(
            "detector_alerts_emitted", "Alerts published on the alerts topic", ["rule_id"], registry=r
        )
        self.alerts_suppressed = Counter(
            "detector_alerts_suppressed",
            "Alerts over the per-window cap (max_signals), summarised in suppression records",
            ["rule_id"],
            registry=r,
        )
        self.alerts_excluded = Counter(
            "detector_alerts_excluded",
            "Alerts not published because a rule exception item matched (DETECTOR_EXCEPTIONS), by list and item",
            ["list_id", "item_id"],
            registry=r,
        )
        self.exceptions_reloads = Counter(
            "detector_exceptions_reloads",
            "Loads of the exceptions files: ok, or error (a changed file that failed to load; the previous "
            "exceptions stay in force)",
            ["result"],
            registry=r,
        )
        self.exceptions_items = Gauge(
            "detector_exceptions_items", "Exception items loaded (expired ones included)", registry=r
        )
        self.processing_latency = Histogram(
            "detector_processing_latency_seconds",
            "From record consumed to its alert acknowledged by the broker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_delay = Histogram(
            "detector_event_to_alert_delay_seconds",
            "From the event's @timestamp to its alert acknowledged by the broker",
            buckets=_DELAY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "detector_consumer_lag_records",
            "Records between the ingest consumer's position and the partition's end",
            ["topic", "partition"],
            registry=r,
        )
        self.batches = Counter("detector_ingest_batches", "consume() batches processed", registry=r)
        self.commits_skipped = Counter(
            "detector_ingest_commits_skipped",
            "Batch commits refused because the partitions moved in a rebalance (the batch is re-read)",
            registry=r,
        )
        self.ingest_paused = Gauge(
            "detector_ingest_paused",
            "1 while the ingest consumer is paused because what it produced is not acknowledged (backpressure)",
            registry=r,
        )
        self.backpressure = Counter(
            "detector_backpressure_seconds",
            "Seconds a stage spent blocked on unacknowledged output: ingest (consumer paused), publish (agent)",
            ["stage"],
            registry=r,
        )
        # Freshness (a silent source or a stuck ingest): set once per batch per topic, from the batch.
        self.last_consumed = Gauge(
            "detector_topic_last_consumed_timestamp_seconds",
            "Unix time this worker last consumed a record of the topic (the worker's start until the first one)",
            ["topic", "source"],
            registry=r,
        )
        self.newest_record = Gauge(
            "detector_topic_newest_record_timestamp_seconds",
            "Kafka timestamp (producer or broker time, per the topic's message.timestamp.type) of the newest "
            "record this worker consumed on the topic",
            ["topic", "source"],
            registry=r,
        )
        self.matches_produced = Counter(
            "detector_matches_produced",
            "Alerts the ingest sent to the matches topic for the publishing agent; minus alerts emitted and "
            "suppressed, what the agent has not handled yet",
            ["rule_id"],
            registry=r,
        )
        self.ready = Gauge(
            "detector_ready",
            "1 when the worker is ready (/readyz 200: ingest running and assigned, agent started, not paused)",
            registry=r,
        )
        self._newest: dict[str, float] = {}
        self.build_info = Gauge(
            "detector_build_info",
            "Version and loaded rules (value 1 per loaded rule)",
            ["version", "rule_id", "rule_version", "rule_name"],
            registry=r,
        )

    def set_rules(self, rules: Sequence[Rule]) -> None:
        for rule in rules:
            self.build_info.labels(__version__, rule.rule_id, str(rule.version), rule.name).set(1)
            # At 0 from the start, so "matches produced, nothing published" is visible before the first alert.
            for counter in (self.matches_produced, self.alerts_emitted, self.alerts_suppressed):
                counter.labels(rule.rule_id)

    def set_topics(self, topics: Mapping[str, str], now: float | None = None) -> None:
        """Start the topics' freshness at the worker's start, so a topic silent since then is seen as silent."""
        now = time.time() if now is None else now
        for topic, source in topics.items():
            self.last_consumed.labels(topic, source).set(now)

    def set_ready(self, ready: Callable[[], bool]) -> None:
        """detector_ready reads `ready` at each scrape."""
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def count_matches(self, alerts: Iterable[dict[str, Any]]) -> None:
        for alert in alerts:
            self.matches_produced.labels(str(alert.get("kibana.alert.rule.rule_id"))).inc()

    def observe_freshness(
        self, batch: Sequence[_Record], topics: Sequence[str], sources: Mapping[str, str], now: float
    ) -> None:
        """A consumed batch's freshness per topic: `now`, and the Kafka timestamp of the topic's last record in it.

        `topics` are the batch's records' topics, in order; `sources` maps the topics the batch had records of to
        their source label. Each topic's last record is found by a list search (in C) from the batch's end, so
        a timestamp is read once per topic and no Python code runs per record; no record is parsed.
        """
        backwards = list(reversed(topics))
        for topic, source in sources.items():
            self.last_consumed.labels(topic, source).set(now)
            ts: float | None = None
            at = 0
            with contextlib.suppress(ValueError):  # no (valid) record of the topic in the batch
                while True:
                    at = backwards.index(topic, at)
                    msg = batch[len(backwards) - 1 - at]
                    if msg.error() is None:
                        kind, ms = msg.timestamp()
                        ts = ms / 1000.0 if kind != _TIMESTAMP_NOT_AVAILABLE and ms >= 0 else None
                        break
                    at += 1
            if ts is not None and ts > self._newest.get(topic, float("-inf")):
                self._newest[topic] = ts
                self.newest_record.labels(topic, source).set(ts)

    def exposition(self, other: Sequence[Metric] = ()) -> bytes:
        """The text exposition of this registry, merged with `other` families (another process's, same names)."""
        if not other:
            return generate_latest(self.registry)
        return generate_latest(_Merged(list(self.registry.collect()), other))


class _Merged:
    """Metric families of two processes as one: each series is written by one process only (the other holds its
    zero or nothing), so the values add up; a `_created` stamp is the earlier one that is set."""

    def __init__(self, mine: Sequence[Metric], other: Sequence[Metric]) -> None:
        self.mine = mine
        self.other = other

    def collect(self) -> Iterator[Metric]:
        theirs = {family.name: family for family in self.other}
        for family in self.mine:
            other = theirs.pop(family.name, None)
            if other is None:
                yield family
                continue
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
            for sample in [*family.samples, *other.samples]:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                at = index.get(key)
                if at is None:
                    index[key] = len(merged.samples)
                    merged.samples.append(sample)
                    continue
                old = merged.samples[at]
                if sample.name.endswith("_created"):
                    value = min((v for v in (old.value, sample.value) if v), default=0.0)
                else:
                    value = old.value + sample.value
                merged.samples[at] = old._replace(value=value)
            yield merged
        yield from theirs.values()


# The README's metrics table (tests/test_docs.py checks it is this): what each series' labels mean.
_TABLE_NOTES = {
    "detector_records_consumed_total": "`source`, `topic`",
    "detector_records_prefiltered_total": "`source`",
    "detector_records_normalized_total": "`source`",
    "detector_records_rejected_total": "`source`, `reason`",
    "detector_records_without_event_total": "`source`, `reason` (`not_covered`: an event type or channel the rule "
    "does not read; `shape_not_understood`: a recognised source in a layout its normaliser cannot read)",
    "detector_malformed_values_total": "`source`, `field`: values dropped from records still evaluated",
    "detector_records_validated_total": "`topic`, `source`, `result` (`ok` or a rejection reason): sampled skipped "
    "records",
    "detector_deadletters_truncated_total": "",
    "detector_alerts_emitted_total": "`rule_id`",
    "detector_alerts_suppressed_total": "`rule_id`",
    "detector_alerts_excluded_total": "`list_id`, `item_id`: alerts a rule exception dropped (see [Tuning with rule "
    "exceptions](#tuning-with-rule-exceptions))",
    "detector_exceptions_reloads_total": "`result` (`ok`, `error`: a changed exceptions file that failed to load; "
    "the previous exceptions stay)",
    "detector_exceptions_items": "exception items loaded",
    "detector_processing_latency_seconds": "record consumed → alert acknowledged",
    "detector_event_to_alert_delay_seconds": "event `@timestamp` → alert acknowledged",
    "detector_consumer_lag_records": "`topic`, `partition`",
    "detector_ingest_batches_total": "",
    "detector_ingest_commits_skipped_total": "offset commits refused because the partitions moved (the batch is "
    "re-read by the new owner)",
    "detector_ingest_paused": "1 while ingest is paused because outputs cannot be written (backpressure)",
    "detector_backpressure_seconds_total": "`stage` (`ingest`, `publish`): time spent waiting for the broker to take "
    "outputs",
    "detector_topic_last_consumed_timestamp_seconds": "`topic`, `source`: unix time of the last record consumed "
    "(set once per batch; the worker's start time until the first record), see [Runbook](docs/runbook.md)",
    "detector_topic_newest_record_timestamp_seconds": "`topic`, `source`: the newest Kafka message timestamp "
    "consumed (read once per batch per topic, no record parsed)",
    "detector_matches_produced_total": "`rule_id`: alerts sent to the matches topic; minus emitted and suppressed = "
    "the publishing agent's backlog",
    "detector_ready": "1 when `/readyz` says ready, else 0 (read at scrape time)",
    "detector_build_info": "`version`, `rule_id`, `rule_version`, `rule_name`",
}
_TABLE_TYPES = {"detector_build_info": "gauge (1)"}


def metrics_table() -> str:
    """The README's metrics table, one row per metric the worker exposes, in registration order."""
    rows = ["| metric | type | labels |", "|---|---|---|"]
    for family in Metrics().registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        kind = _TABLE_TYPES.get(name, family.type)
        rows.append(f"| `{name}` | {kind} | {_TABLE_NOTES[name]} |".replace(" |  |", " | |"))
    return "\n".join(rows)
