"""The ingest loop: a batched confluent-kafka consumer that runs the detection core on raw bytes.

Why not a Faust agent per raw record: a Faust agent costs ~90 µs of CPU per record before any work,
while a batched confluent-kafka consumer costs ~1.5 µs and the prefilter rejects a benign record in
about one more. So raw telemetry is read here, in batches, in a thread inside the Faust app's
lifecycle; only the rare matches go on, over the internal matches topic, to the Faust agent that
enforces the cap (in a Faust table) and publishes alerts.

Delivery: offsets of a batch are committed only after every dead letter and match that the batch
produced has been acknowledged by the broker (acks=all, idempotent producer). A crash before that
re-reads the batch: at-least-once, and alert ids are deterministic so replays give the same ids.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from detector.alerts.builder import attach_origin
from detector.engine import Engine
from detector.metrics import Metrics
from detector.rules.model import Rule
from detector.stream.config import AUTO, WorkerConfig

log = logging.getLogger("detector.ingest")

LAG_EVERY_S = 5.0
_REBALANCE_COMMIT_ERRORS = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._NO_OFFSET,
        KafkaError.STALE_MEMBER_EPOCH,
    }
)
TICK_EVERY_S = 1.0


class DeliveryError(RuntimeError):
    """The broker did not acknowledge what a batch produced: its offsets must not be committed."""


def match_message(alert: dict[str, Any], consumed_at: float) -> bytes:
    return orjson.dumps({"type": "match", "consumed_at": consumed_at, "alert": alert})


def tick_message(rule_id: str) -> bytes:
    return orjson.dumps({"type": "tick", "rule_id": rule_id})


def deadletter_headers(
    reason: str, detail: str, topic: str, partition: int, offset: int, source: str | None
) -> list[tuple[str, str | bytes | None]]:
    return [
        ("detector.reason", reason.encode()),
        ("detector.detail", detail.encode()),
        ("detector.source_topic", topic.encode()),
        ("detector.source_partition", str(partition).encode()),
        ("detector.source_offset", str(offset).encode()),
        ("detector.source", (source or "unknown").encode()),
    ]


class IngestLoop(threading.Thread):
    def __init__(
        self,
        cfg: WorkerConfig,
        engine: Engine,
        rules: list[Rule],
        metrics: Metrics,
        on_fatal: Callable[[BaseException], None],
        cap_enabled: bool,
    ) -> None:
        super().__init__(name="detector-ingest", daemon=True)
        self.cfg = cfg
        self.engine = engine
        self.rules = rules
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.cap_enabled = cap_enabled
        self._stop_event = threading.Event()
        self.assigned = threading.Event()  # joined the group at least once: used by /readyz
        self.running = False
        self._assignment: set[tuple[str, int]] = set()
        self._delivery_errors: list[str] = []
        self._positions: dict[tuple[str, int], int] = {}  # next offset to commit, per processed partition
        # topic -> pinned source; auto-detected topics are absent (None: the engine detects per record)
        self._pinned = {t: src for t, src in cfg.topics.items() if src != AUTO}

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # the worker must exit (non-zero) rather than idle without ingesting
            log.exception("ingest loop failed")
            self.on_fatal(exc)
        finally:
            self.running = False

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment.update((p.topic, p.partition) for p in partitions)
        log.info("ingest assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit_positions(consumer, {(p.topic, p.partition) for p in partitions})
        for p in partitions:
            self._assignment.discard((p.topic, p.partition))
            with contextlib.suppress(KeyError):  # never had a lag sample
                self.metrics.consumer_lag.remove(p.topic, str(p.partition))
        log.info("ingest revoked %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _run(self) -> None:
        base = self.cfg.kafka_client_config()
        consumer = Consumer(
            {
                **base,
                "group.id": self.cfg.consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.cfg.auto_offset_reset,
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": int(self.cfg.session_timeout * 1000),
                "heartbeat.interval.ms": max(int(self.cfg.session_timeout * 1000 / 3), 100),
                "fetch.max.bytes": 52428800,
                "queued.max.messages.kbytes": 262144,
                "on_commit": self._on_commit,
            }
        )
        producer = Producer(
            {
                **base,
                "acks": "all",
                "enable.idempotence": True,
                # No compression: the Faust side (aiokafka) reads the matches topic and lz4/zstd would
                # need extra libraries there; matches and dead letters are rare anyway.
                "linger.ms": 2,
            }
        )
        consumer.subscribe(list(self.cfg.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.running = True
        last_lag = last_tick = 0.0
        try:
            while not self._stop_event.is_set():
                batch = consumer.consume(num_messages=self.cfg.batch_size, timeout=self.cfg.batch_timeout)
                now = time.monotonic()
                if self.cap_enabled and now - last_tick >= TICK_EVERY_S:
                    for rule in self.rules:
                        producer.produce(
                            self.cfg.matches_topic, key=rule.rule_id.encode(), value=tick_message(rule.rule_id)
                        )
                    producer.poll(0)
                    last_tick = now
                if batch:
                    self._process_batch(consumer, producer, batch)
                if now - last_lag >= LAG_EVERY_S:
                    self._update_lag(consumer)
                    last_lag = now
        finally:
            # SIGTERM path: the current batch was finished above; commit it and leave the group cleanly.
            producer.flush(10)
            try:
                self._commit_positions(consumer)
            except KafkaException as exc:  # on the way out after another failure: report, don't mask it
                log.error("final offset commit failed (the records will be re-read): %s", exc)
            consumer.close()
            log.info("ingest consumer closed")

    # -- the hot path ------------------------------------------------------------------------------
    def _process_batch(self, consumer: Consumer, producer: Producer, batch: list[Message]) -> None:
        consumed_at = time.time()
        pinned = self._pinned
        process = self.engine.process
        m = self.metrics
        on_delivery = self._on_delivery
        produced = 0
        # Per-record bookkeeping is kept to dict updates keyed by what the message already holds; the
        # metrics are updated once per batch.
        offsets: dict[tuple[str, int], int] = {}
        consumed: dict[str, int] = {}
        prefiltered: dict[str, int] = {}
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consume error: %s", err)
                continue
            # Always set on a consumed message without error; the stubs type them as optional.
            topic = cast(str, msg.topic())
            partition = cast(int, msg.partition())
            offsets[(topic, partition)] = cast(int, msg.offset()) + 1
            consumed[topic] = consumed.get(topic, 0) + 1
            source = pinned.get(topic)
            raw = msg.value() or b""
            out = process(raw, source)
            if out.prefiltered:
                prefiltered[topic] = prefiltered.get(topic, 0) + 1
                continue
            offset = cast(int, msg.offset())
            if out.rejection is not None:
                m.rejected.labels(out.source or source or AUTO, out.rejection.reason).inc()
                producer.produce(
                    self.cfg.deadletter_topic,
                    value=raw,
                    key=msg.key(),
                    headers=deadletter_headers(
                        out.rejection.reason, out.rejection.detail, topic, partition, offset, out.source or source
                    ),
                    on_delivery=on_delivery,
                )
                produced += 1
                continue
            m.normalized.labels(out.source or source or AUTO).inc()
            for alert in out.alerts:
                attach_origin(alert, topic, partition, offset)
                producer.produce(
                    self.cfg.matches_topic,
                    key=alert["kibana.alert.rule.rule_id"].encode(),
                    value=match_message(alert, consumed_at),
                    on_delivery=on_delivery,
                )
                produced += 1
        for topic, n in consumed.items():
            m.consumed.labels(pinned.get(topic) or AUTO, topic).inc(n)
        for topic, n in prefiltered.items():
            m.prefiltered.labels(pinned.get(topic) or AUTO).inc(n)
        if produced:
            self._await_deliveries(producer)
        if offsets:
            # Everything this batch produced is acknowledged, so its offsets may be committed. Async: the
            # broker round trip would otherwise cost more than the batch's records; revocation and shutdown
            # commit synchronously (see _commit_positions).
            self._positions.update(offsets)
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
        m.batches.inc()

    def _commit_positions(self, consumer: Consumer, partitions: set[tuple[str, int]] | None = None) -> None:
        """Synchronously commit what was processed on `partitions` (all by default) and forget them."""
        keys = [k for k in self._positions if partitions is None or k in partitions]
        if not keys:
            return
        offsets = [TopicPartition(t, p, self._positions.pop((t, p))) for t, p in keys]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._commit_failed(exc.args[0] if exc.args else None)

    def _commit_failed(self, err: KafkaError | None) -> None:
        if isinstance(err, KafkaError) and err.code() in _REBALANCE_COMMIT_ERRORS:
            # The partitions moved to another worker first. Everything the batch produced is acknowledged;
            # the new owner re-reads it (at-least-once, same alert ids).
            log.warning("commit skipped, partitions were reassigned: %s", err.str())
            self.metrics.commits_skipped.inc()
            return
        raise KafkaException(err)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            if err.code() in _REBALANCE_COMMIT_ERRORS:
                self.metrics.commits_skipped.inc()
            log.warning("offset commit failed (the records will be re-read): %s", err.str())

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def _await_deliveries(self, producer: Producer) -> None:
        remaining = producer.flush(30)
        if remaining or self._delivery_errors:
            errors = "; ".join(self._delivery_errors[:5])
            self._delivery_errors.clear()
            raise DeliveryError(
                f"broker did not acknowledge {remaining} message(s) of a batch ({errors}); not committing its offsets"
            )

    def _update_lag(self, consumer: Consumer) -> None:
        # Cached watermarks only: the high watermark comes with every fetch response, so this costs no
        # broker round trip (a ListOffsets request per partition would stall the ingest loop for seconds).
        if not self._assignment:
            return
        try:
            positions = consumer.position([TopicPartition(t, p) for t, p in sorted(self._assignment)])
        except KafkaException as exc:
            log.debug("lag update skipped: %s", exc)
            return
        for tp in positions:
            try:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue  # nothing fetched from this partition yet
            offset = tp.offset if tp.offset >= 0 else max(low, 0)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(high - offset, 0))
