"""Prometheus metrics of the streaming worker (prometheus-client, Prometheus naming conventions).

Metrics live in their own registry so tests and several apps in one process don't collide.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from detector import __version__
from detector.rules.model import Rule

# Latency buckets from a millisecond to a minute: the target is well under a second.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Event-to-alert delay includes the sensor's and the pipeline's delay before Kafka: minutes to hours.
_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)

CONTENT_TYPE = CONTENT_TYPE_LATEST


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
        self.build_info = Gauge(
            "detector_build_info",
            "Version and loaded rules (value 1 per loaded rule)",
            ["version", "rule_id", "rule_version", "rule_name"],
            registry=r,
        )

    def set_rules(self, rules: Sequence[Rule]) -> None:
        for rule in rules:
            self.build_info.labels(__version__, rule.rule_id, str(rule.version), rule.name).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
