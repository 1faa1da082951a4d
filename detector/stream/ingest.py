"""The ingest loop: a batched confluent-kafka consumer that runs the detection core on raw bytes.

Why not a Faust agent per raw record: a Faust agent costs ~90 µs of CPU per record before any work,
while a batched confluent-kafka consumer costs ~1.5 µs and the prefilter rejects a benign record in
about one more. So raw telemetry is read here, in batches, in a process of its own that the Faust app starts
and stops (detector/stream/ingest_process.py; the loop runs as that process' main thread, or as a thread in
tests); only the rare matches go on, over the internal matches topic, to the Faust agent that keeps fleet
prevalence, the cap and suppression (in Faust tables) and publishes alerts.

Delivery: offsets of a batch are committed only after every dead letter and match that the batch
produced has been acknowledged by the broker (acks=all, idempotent producer), and every earlier batch's
too. A crash before that re-reads the batch: at-least-once, and alert ids are deterministic so replays
give the same ids. The acknowledgements are not waited for before the next batch is read: up to
MAX_PENDING_BATCHES processed batches are in flight, each committed (in order) once its own deliveries are
acknowledged. Waiting for them batch by batch left the thread idle for a round trip per batch.

Catching up: while the consumer is behind (a full batch whose newest record is MATCH_HOLD_BEHIND_S old or more),
a batch's matches wait for the next batches' and go to the matches topic together, after MATCH_HOLD_BATCHES
batches or MATCH_HOLD_S, whichever comes first (and always before the loop waits for acknowledgements, reads a
batch that is not behind, or stops). Each arrival on the matches topic costs the Faust app a fetch through
aiokafka and Faust's consumer thread, about the same however few matches it brings: draining pre-loaded topics
(~0.1% matches) the app took 0.38-0.40 of the two cores beside the ingest's one. Holding cut that to 0.33-0.34,
and the drain went from 210-225k to 249-273k records/s (three runs each, alternated). Records that old are late
already; at a steady rate batches are not full and nothing waits. Held matches count as their batch's outputs:
the batch is committed only once they are acknowledged, so at-least-once is unchanged.

Backpressure: while what a batch produced is refused or long unacknowledged (broker down, an output topic
refusing writes or gone), the next batch is not read. After PAUSE_AFTER_S the consumer pauses its assigned partitions
but keeps polling, so it stays in the group (max.poll.interval.ms) and follows rebalances; librdkafka's local
queue is bounded (queue.buffering.max.*), so memory stays bounded. A message the broker refused (not a fatal
producer error) is produced again after a backoff, for as long as it takes; once all is acknowledged the
batch is committed and the partitions resumed. Logged once when it starts and once when it ends, and shown as
detector_ingest_paused, detector_backpressure_seconds_total{stage="ingest"} and in /readyz.

Hostile input: whatever a record holds, its dead letter must be writable, or the worker would die on it
after every restart. So dead letters are bounded (value, key and headers) to `deadletter_max_bytes` and
to what the dead-letter topic accepts (read at start), cut when larger, with the original size and digest
in headers; a synchronous produce failure (queue full, message too large) is retried, never fatal.

Misrouted or drifted input: the prefilter skips most records unparsed, so a topic carrying another
vendor's records, or a changed schema, would go unnoticed. Every 1/`validate_sample_rate`-th prefiltered
record of each topic is parsed and normalised anyway; its verdict is counted per topic and an invalid one
is dead-lettered, marked as a validation sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import compress, filterfalse, islice, repeat
from operator import eq
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

# ConfigResource and ResourceType are documented in confluent_kafka.admin but not marked as re-exported there.
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from detector.alerts.builder import attach_origin
from detector.engine import Engine
from detector.metrics import Metrics
from detector.stream.config import AUTO, WorkerConfig
from detector.stream.exceptions_watch import ExceptionsWatch
from detector.stream.prevalence import prevalence_messages

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
# A synchronous commit (on revocation) while the group coordinator is away, e.g. the broker restarting: the
# offsets stay where the last commit left them and the records after it are re-read (at-least-once, same ids).
_COORDINATOR_GONE_COMMIT_ERRORS = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._WAIT_COORD,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)

# A topic's max.message.bytes bounds a whole record batch: Kafka's v2 batch header is 61 bytes and one
# record's own varints (length, attributes, timestamp and offset deltas, key and value lengths, header
# count) at most 36. The rest is margin, so a dead letter computed to fit never meets the limit exactly.
RECORD_FRAMING = 512
HEADER_FRAMING = 10  # a header's key and value length varints
# Below this a dead letter's headers, with the detail cut to DETAIL_MAX_BYTES, would not fit.
MIN_DEADLETTER_BYTES = 4096
DETAIL_MAX_BYTES = 1024  # the detail can quote the record (e.g. its top-level keys): attacker text
KEY_MAX_BYTES = 1024  # the original key is copied too, and it is as untrusted as the value
# librdkafka's default message.max.bytes, kept for everything but large dead letters. Match messages must
# also fit Kafka's default max.message.bytes (1 MiB + 12) on the matches and alerts topics, and aiokafka's
# default max_request_size (1 MiB) when the agent publishes the alert.
PRODUCER_MESSAGE_MAX_BYTES = 1_000_000
MATCH_MAX_BYTES = PRODUCER_MESSAGE_MAX_BYTES - RECORD_FRAMING
ALERT_TOO_LARGE = "alert_too_large"  # a dead-letter reason of the worker's own (the engine's are in REASONS)
DELIVERY_POLL_S = 0.2  # one wait for acknowledgements (or for room in the queue) between consumer polls
PAUSE_AFTER_S = 1.0  # unacknowledged this long: the consumer pauses (a slow ack is not yet backpressure)
RETRY_BACKOFF_S = 0.5  # first wait before producing refused messages again, doubling up to the max
RETRY_BACKOFF_MAX_S = 5.0
# Processed batches whose outputs may be unacknowledged at once. A round trip (acks=all) takes about one
# batch's processing time, so a few would suffice, but held matches (MATCH_HOLD_BATCHES) are produced only when
# released: the window must outlast the hold, or the loop waits a round trip at each release.
MAX_PENDING_BATCHES = 16
# Catching up (see the module's docstring): matches wait for at most this many batches, or this long.
MATCH_HOLD_BEHIND_S = 1.0
MATCH_HOLD_BATCHES = 8
MATCH_HOLD_S = 0.05
REVOKE_FLUSH_S = 5.0  # on revocation, how long the outputs of the revoked partitions' batches are waited for
# The consumer's read-ahead. librdkafka stops fetching a partition while the local queue is over its bounds and,
# since 2.4, waits fetch.queue.backoff.ms (1 s by default) before it looks again: with any bound the drain stalled
# for a second at a time (a 32 MiB queue drained 20k records/s, 256 MiB about 90k). With a 10 ms backoff a
# 16 MiB queue, topped up by fetches of at most 8 MiB, keeps the loop fed (155-178k records/s here, as with
# 32 MiB) and bounds what a lag spike costs in memory: the queue's high-water mark stays resident (glibc keeps
# the freed buffers), and after a drain the ingest process held 87 MB with 16 MiB, 126 MB with 32. (8 MiB starved
# even the bare loop of the benchmark: 288-362k records/s against 468-560k.)
# The broker answers a fetch once it holds fetch.min.bytes for it, or after fetch.wait.max.ms. With librdkafka's
# defaults (1 byte, 500 ms) a steady stream came back in fetch after tiny fetch, as fast as the two could go
# round: at 50k records/s the broker's network threads took 0.7 of a core and the ingest's fetch thread 3 us of CPU
# per record, on a machine whose two cores were then full, and produce-to-alert p99 was 73-172 ms. Asking for
# 256 KiB (2 ms of that stream) within 10 ms made it 47-57 ms in four runs, 78 in a fifth: a fetch brings hundreds.
# (1 MiB, or a 5 ms wait, measured worse: 63-84 ms.) At low rates each fetch waits out the 10 ms: latency, no work.
CONSUMER_FETCH = {
    "queued.max.messages.kbytes": 16 * 1024,
    "fetch.max.bytes": 8 * 1024 * 1024,
    "fetch.queue.backoff.ms": 10,
    "fetch.min.bytes": 256 * 1024,
    "fetch.wait.max.ms": 10,
}
# librdkafka's default local queue is 100000 messages / 1 GiB; outputs of at most MAX_PENDING_BATCHES + 1
# batches are in it (rare but for dead letters), so it never needs more than some batches' worth.
PRODUCER_QUEUE_KBYTES = 64 * 1024
PRODUCER_QUEUE_MESSAGES = 100_000
_SIZE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
# produce() refuses synchronously a topic the cluster says does not exist (deleted; the producer does not
# auto-create it): waited out like a full queue, until the topic is back.
_MISSING_TOPIC_ERRORS = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}
)

DeadLetterHeaders = list[tuple[str, bytes]]
Headers = list[tuple[str, str | bytes | None]]  # what Producer.produce accepts


@dataclass(eq=False)
class _Batch:
    """A processed batch: its next offsets per partition, and how many of its outputs are not yet acknowledged."""

    offsets: dict[tuple[str, int], int]
    outstanding: int = 0


class DeliveryError(RuntimeError):
    """The broker did not acknowledge what a batch produced: its offsets must not be committed."""


class _Stopping(Exception):
    """Asked to stop while waiting for acknowledgements: the batch is abandoned, uncommitted (re-read later)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record on its way to the dead-letter topic, with what its headers say about it."""

    raw: bytes
    key: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    source: str | None
    sampled: bool = False  # found by validation sampling: the prefilter had skipped it


def clip_text(text: str, limit: int) -> bytes:
    """`text` as UTF-8 in at most `limit` bytes, visibly marked when cut."""
    # backslashreplace: a lone surrogate from decoded input must not make the header itself fail.
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data
    marker = b"...[cut]"
    # Cut on a character boundary, so the header stays valid UTF-8 for whoever reads it.
    return data[: limit - len(marker)].decode("utf-8", "ignore").encode() + marker


def _framed_size(key: bytes | None, headers: DeadLetterHeaders) -> int:
    return len(key or b"") + sum(len(k) + len(v) + HEADER_FRAMING for k, v in headers)


def deadletter_message(letter: DeadLetter, limit: int) -> tuple[bytes | None, bytes, DeadLetterHeaders]:
    """Key, value and headers of `letter`'s dead letter, together at most `limit` bytes.

    A value that does not fit is cut, and headers give the original's size and SHA-256, so the record
    can still be found in (or matched against) the source.
    """
    headers = [
        ("detector.reason", clip_text(letter.reason, DETAIL_MAX_BYTES)),
        ("detector.detail", clip_text(letter.detail, DETAIL_MAX_BYTES)),
        ("detector.source_topic", letter.topic.encode()),
        ("detector.source_partition", str(letter.partition).encode()),
        ("detector.source_offset", str(letter.offset).encode()),
        ("detector.source", (letter.source or "unknown").encode()),
    ]
    if letter.sampled:
        headers.append(("detector.validation_sample", b"true"))
    key = letter.key
    if key is not None and len(key) > KEY_MAX_BYTES:
        headers.append(("detector.original_key_size", str(len(key)).encode()))
        key = key[:KEY_MAX_BYTES]
    raw = letter.raw
    if _framed_size(key, headers) + len(raw) <= limit:
        return key, raw, headers
    headers += [
        ("detector.truncated", b"true"),
        ("detector.original_size", str(len(raw)).encode()),
        ("detector.original_sha256", hashlib.sha256(raw).hexdigest().encode()),
    ]
    room = max(limit - _framed_size(key, headers), 0)
    return key, raw[:room], headers


def topic_max_message_bytes(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> int | None:
    """The topic's max.message.bytes (the largest record batch it accepts), or None if it cannot be read."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = AdminClient(conf)  # held until the result is in: destroying it fails the request (_DESTROY)
    try:
        futures = admin.describe_configs([resource], request_timeout=timeout)
        entries = next(iter(futures.values())).result(timeout)
        return int(entries["max.message.bytes"].value)
    except Exception as exc:  # any failure here only means falling back to the setting
        log.warning("cannot read max.message.bytes of %s (%s): dead letters bounded by the setting alone", topic, exc)
        return None


def deadletter_limit(setting: int, topic: str, topic_max: int | None) -> int:
    """The bound on a dead letter's key + value + headers: the setting, or less if the topic accepts less."""
    if topic_max is None:
        return setting
    limit = min(setting, topic_max - RECORD_FRAMING)
    if limit < MIN_DEADLETTER_BYTES:
        raise ValueError(
            f"dead-letter topic {topic} accepts at most {topic_max} bytes per record batch (max.message.bytes): "
            f"too small for a dead letter's headers; raise it to at least {MIN_DEADLETTER_BYTES + RECORD_FRAMING}"
        )
    return limit


def producer_limits(deadletter_bytes: int, topic_max: int | None) -> dict[str, int]:
    """librdkafka size settings that let every bounded dead letter through, alone or batched."""
    batch = (
        PRODUCER_MESSAGE_MAX_BYTES if topic_max is None else min(PRODUCER_MESSAGE_MAX_BYTES, topic_max - RECORD_FRAMING)
    )
    return {
        # produce() refuses, synchronously, a message larger than this.
        "message.max.bytes": max(PRODUCER_MESSAGE_MAX_BYTES, deadletter_bytes + RECORD_FRAMING),
        # librdkafka adds messages to a batch while it stays under batch.size (the first one regardless) and
        # the broker refuses a batch over the topic's limit as a whole: several dead letters that each fit
        # must not be sent together in one that does not.
        "batch.size": batch,
    }


def producer_queue_limits(message_max_bytes: int) -> dict[str, int]:
    """Bounds on librdkafka's local queue; it must still hold the largest message the producer accepts."""
    return {
        "queue.buffering.max.messages": PRODUCER_QUEUE_MESSAGES,
        "queue.buffering.max.kbytes": max(PRODUCER_QUEUE_KBYTES, 2 * message_max_bytes // 1024 + 1),
    }


def sample_every(rate: float) -> int:
    """validate_sample_rate as 'every Nth prefiltered record'; 0 = never."""
    return 0 if rate <= 0 else max(1, round(1 / rate))


class IngestLoop(threading.Thread):
    def __init__(
        self,
        cfg: WorkerConfig,
        engine: Engine,
        metrics: Metrics,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        super().__init__(name="detector-ingest", daemon=True)
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self.on_fatal = on_fatal
        self._stop_event = threading.Event()
        self.assigned = threading.Event()  # joined the group at least once: used by /readyz
        self.running = False
        self._assignment: set[tuple[str, int]] = set()
        # Per assigned partition, its position after the last batch consumed (see _consumed_positions).
        self._read_upto: dict[tuple[str, int], int] = {}
        self._delivery_errors: list[str] = []
        self._positions: dict[tuple[str, int], int] = {}  # next offset to commit, per processed partition
        self._pending: deque[_Batch] = deque()  # processed batches not yet committed, oldest first
        self._producer: Producer | None = None
        # topic -> pinned source; auto-detected topics are absent (None: the engine detects per record)
        self._pinned = {t: src for t, src in cfg.topics.items() if src != AUTO}
        self._rule_ids = [r.rule_id for r in engine.rules]
        # Sampling needs an engine that never prefilters; with the prefilter off nothing is skipped to sample.
        self._every = sample_every(cfg.validate_sample_rate) if engine.use_prefilter else 0
        self._validator = (
            Engine(engine.rules, use_prefilter=False, max_record_bytes=engine.max_record_bytes) if self._every else None
        )
        # topic -> prefiltered records so far (plus the arming below): the Nth, 2Nth, ... are sampled.
        self._prefiltered_seen: dict[str, int] = {}
        # A slow topic would rarely reach N: one that had no sample for validate_sample_interval seconds gets
        # its counter moved to just before the next multiple of N, so its next prefiltered record is sampled.
        # That is per batch and per topic, so the per-record cost stays one modulo. -inf: the first record
        # of each topic is sampled at once, and a restarted worker checks every topic straight away.
        self._interval = cfg.validate_sample_interval
        self._last_sampled: dict[str, float] = dict.fromkeys(cfg.topics, float("-inf"))
        self.deadletter_limit = cfg.deadletter_max_bytes  # lowered at start to what the topic accepts
        # Dead letters the broker refused as too large, to cut and resend (with the batch they belong to).
        self._oversized: list[tuple[DeadLetter, _Batch]] = []
        # Backpressure: messages the broker refused (to produce again), when the consumer was paused (None:
        # not paused), and what the consumer returned while paused (processed as the next batch).
        # (Each refused message with how to produce it again: a dead letter from its DeadLetter, as a delivery
        # report's message carries no headers, and a dead letter resent from it lost its reason and origin.)
        self._refused: list[tuple[Callable[[Producer], None], KafkaError]] = []
        self._consumer: Consumer | None = None
        self._paused_since: float | None = None
        self._held: list[Message] = []
        # Matches held while catching up, in order (value, key, delivery callback), since when, over how many batches.
        self._deferred: list[tuple[bytes, bytes, Callable[[KafkaError | None, Message], None]]] = []
        self._deferred_since = 0.0
        self._deferred_batches = 0
        # Rule exceptions: loaded now (a broken file fails the start), re-read between batches when changed.
        self._exceptions = ExceptionsWatch(cfg.exceptions, cfg.exceptions_reload_interval, metrics)
        if cfg.exceptions:
            self._exceptions.start(engine)

    @property
    def paused(self) -> bool:
        """The consumer is paused: what the worker produced is not being acknowledged (see /readyz)."""
        return self._paused_since is not None

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            self._run()
        except _Stopping:
            log.warning("stopped while waiting for the broker: the unacknowledged batch is not committed (re-read)")
        except BaseException as exc:  # the worker must exit (non-zero) rather than idle without ingesting
            log.exception("ingest loop failed")
            self.on_fatal(exc)
        finally:
            self.running = False

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment.update((p.topic, p.partition) for p in partitions)
        for p in partitions:  # a partition assigned again is read from its committed offset, not from where we were
            self._read_upto.pop((p.topic, p.partition), None)
        # (while paused, _keep_polling pauses these too once they are in the assignment)
        if self._paused_since is None:
            # librdkafka keeps a partition's pause through a revocation: paused by backpressure, revoked while
            # the broker restarted, resumed (empty assignment) and assigned again, it would stay paused for good.
            consumer.resume(partitions)
        log.info("ingest assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        if self._pending and self._producer is not None:
            # Batches in flight: what they produced and the broker acknowledges now is committed here rather
            # than re-read by the new owner. What is still unacknowledged after that is left to the new owner.
            self._release_matches(self._producer)
            self._producer.flush(REVOKE_FLUSH_S)
            ready = self._ready_offsets()
            self._commit_async(consumer, {tp: o for tp, o in ready.items() if tp not in revoked})
            for batch in self._pending:
                for tp in revoked & batch.offsets.keys():
                    del batch.offsets[tp]
        self._commit_positions(consumer, revoked)
        for p in partitions:
            self._assignment.discard((p.topic, p.partition))
            self._read_upto.pop((p.topic, p.partition), None)
            with contextlib.suppress(KeyError):  # never had a lag sample
                self.metrics.consumer_lag.remove(p.topic, str(p.partition))
        log.info("ingest revoked %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _run(self) -> None:
        base = self.cfg.kafka_client_config()
        topic_max = topic_max_message_bytes(base, self.cfg.deadletter_topic)
        self.deadletter_limit = deadletter_limit(self.cfg.deadletter_max_bytes, self.cfg.deadletter_topic, topic_max)
        log.info(
            "dead letters bounded to %d bytes (deadletter_max_bytes %d, %s max.message.bytes %s)",
            self.deadletter_limit,
            self.cfg.deadletter_max_bytes,
            self.cfg.deadletter_topic,
            topic_max if topic_max is not None else "unknown",
        )
        limits = producer_limits(self.deadletter_limit, topic_max)
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
                **CONSUMER_FETCH,
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
                # librdkafka's default, said here because the Faust app's timer sends each rule's cap ticks to
                # the partition this gives the rule's matches (detector/stream/publish.py, match_partition).
                "partitioner": "consistent_random",
                # An output topic that was deleted must not come back with the broker's defaults (replication,
                # min.insync.replicas): the worker waits, paused, until it is recreated (see Backpressure).
                "allow.auto.create.topics": False,
                **limits,
                **producer_queue_limits(limits["message.max.bytes"]),
            }
        )
        self._producer = producer
        consumer.subscribe(list(self.cfg.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.running = True
        last_lag = 0.0
        try:
            while not self._stop_event.is_set():
                positions: dict[tuple[str, int], int] | None = None
                if self._held:  # read while paused; those of partitions revoked since are the new owner's
                    held, self._held = self._held, []
                    batch = [m for m in held if m.error() is not None or (m.topic(), m.partition()) in self._assignment]
                else:
                    batch = consumer.consume(num_messages=self.cfg.batch_size, timeout=self.cfg.batch_timeout)
                    if batch:
                        positions = self._consumed_positions(consumer)
                now = time.monotonic()
                if batch:
                    self._process_batch(consumer, producer, batch, positions)
                elif self._pending:  # nothing more to read now: what is held goes out
                    self._release_matches(producer)
                    self._settle(consumer, producer)
                if self.cfg.exceptions:
                    self._exceptions.poll(self.engine, now)
                if now - last_lag >= LAG_EVERY_S:
                    self._update_lag(consumer)
                    last_lag = now
        finally:
            # SIGTERM path: the current batch was finished above; commit what is acknowledged and leave the group.
            with contextlib.suppress(_Stopping):  # (a full queue while stopping: those batches are re-read)
                self._release_matches(producer)
            producer.flush(10)
            self._ready_offsets()
            try:
                self._commit_positions(consumer)
            except KafkaException as exc:  # on the way out after another failure: report, don't mask it
                log.error("final offset commit failed (the records will be re-read): %s", exc)
            consumer.close()
            log.info("ingest consumer closed")

    # -- the hot path ------------------------------------------------------------------------------
    def _process_batch(
        self,
        consumer: Consumer,
        producer: Producer,
        batch: list[Message],
        positions: dict[tuple[str, int], int] | None = None,
    ) -> None:
        """Evaluate a batch and produce what it gives. `positions`: the next offset of each partition the batch
        read (see _consumed_positions); without it they are read off the batch's records."""
        consumed_at = time.time()
        self._consumer = consumer
        if any([msg.error() for msg in batch]):  # rare: end-of-partition events, transient consume errors
            batch = [msg for msg in batch if not self._consume_error(msg)]
        pinned = self._pinned
        process = self.engine.process
        m = self.metrics
        every = self._every
        ticket = _Batch({})
        on_delivery = partial(self._on_delivery, ticket)
        # Nearly every record is one the prefilter skips, decided for the whole batch in one pass. For those the
        # work is whole-batch passes (comprehensions, then zip and Counter in C): no Python code runs per
        # skipped record. Only the records to parse (and sampled ones) go through the loop below.
        # (Always set on a consumed message without error; the stubs type them as optional.)
        topics: list[str] = [msg.topic() for msg in batch]  # type: ignore[misc]
        values: list[bytes] = [msg.value() for msg in batch]  # type: ignore[misc]
        if None in values:  # tombstones (no value) are records too: empty, so they are parsed and rejected
            values = [v or b"" for v in values]
        if positions is None:
            # dict() keeps the last value of a repeated key: each partition's last offset in the batch.
            last = dict(zip(((m.topic(), m.partition()) for m in batch), (m.offset() for m in batch), strict=True))
            positions = {cast(tuple[str, int], tp): cast(int, o) + 1 for tp, o in last.items()}
        consumed = Counter(topics)
        hold = self._catching_up(batch, consumed_at)
        if not hold and self._deferred:  # held matches go before this batch's, in order
            self._release_matches(producer)
        to_parse = self.engine.to_parse(values)
        parse: Sequence[int]
        if to_parse is None:  # no buffer prefilter: every record goes to process(), which prefilters it alone
            parse, prefiltered = range(len(batch)), Counter[str]()
        else:
            parse = sorted(to_parse)
            prefiltered = consumed - Counter(topics[i] for i in parse)
            if every:
                self._sample(producer, batch, topics, values, to_parse, prefiltered, ticket)
        topic: str
        partition: int
        offset: int
        for i in parse:
            topic, raw, msg = topics[i], values[i], batch[i]
            partition, offset = msg.partition(), msg.offset()  # type: ignore[assignment]
            source = pinned.get(topic)
            out = process(raw, source)
            if out.prefiltered:
                prefiltered[topic] += 1
                continue
            if out.rejection is not None:
                m.rejected.labels(out.source or source or AUTO, out.rejection.reason).inc()
                self._produce_deadletter(
                    producer,
                    DeadLetter(
                        raw,
                        msg.key(),
                        out.rejection.reason,
                        out.rejection.detail,
                        topic,
                        partition,
                        offset,
                        out.source or source,
                    ),
                    ticket,
                )
                continue
            m.normalized.labels(out.source or source or AUTO).inc()
            if out.no_event is not None:
                m.without_event.labels(out.source or source or AUTO, out.no_event).inc()
            for field, _why in out.ignored:  # rare: a record with a value Elasticsearch would not index
                m.malformed_values.labels(out.source or source or AUTO, field).inc()
            for list_id, item_id in out.excluded:  # alerts a rule exception dropped
                m.alerts_excluded.labels(list_id, item_id).inc()
            oversized_alert = 0
            for alert in out.alerts:
                attach_origin(alert, topic, partition, offset)
            for key, value in prevalence_messages(out, consumed_at, self._rule_ids):
                if len(value) > MATCH_MAX_BYTES:
                    oversized_alert = len(value)
                    continue
                if hold:
                    if not self._deferred:
                        self._deferred_since = time.monotonic()
                    self._deferred.append((value, key, on_delivery))
                else:
                    self._produce(producer, self.cfg.matches_topic, value, key, on_delivery=on_delivery)
                ticket.outstanding += 1
            if not oversized_alert:
                m.count_matches(out.alerts)
            if oversized_alert:
                # The alert could be published by neither this producer nor the agent's; the record is kept,
                # with its reason, instead of the worker failing on it after every restart.
                log.error(
                    "%s[%d]@%d matched, but its alert is %d bytes: dead-lettered",
                    topic,
                    partition,
                    offset,
                    oversized_alert,
                )
                m.rejected.labels(out.source or source or AUTO, ALERT_TOO_LARGE).inc()
                detail = (
                    f"the record matched, but its alert is {oversized_alert} bytes, "
                    f"over the {MATCH_MAX_BYTES}-byte limit of a match message"
                )
                self._produce_deadletter(
                    producer,
                    DeadLetter(raw, msg.key(), ALERT_TOO_LARGE, detail, topic, partition, offset, out.source or source),
                    ticket,
                )
        for topic, n in consumed.items():
            m.consumed.labels(pinned.get(topic) or AUTO, topic).inc(n)
        m.observe_freshness(batch, topics, {t: pinned.get(t) or AUTO for t in consumed}, consumed_at)
        for topic, n in prefiltered.items():
            m.prefiltered.labels(pinned.get(topic) or AUTO).inc(n)
        ticket.offsets = positions
        self._pending.append(ticket)
        m.batches.inc()
        if self._deferred:
            self._deferred_batches += 1
        self._settle(consumer, producer)

    def _catching_up(self, batch: Sequence[Message], now: float) -> bool:
        """The consumer is behind: the batch is full (more was waiting) and its newest record is old."""
        if len(batch) < self.cfg.batch_size:
            return False
        # (records of one partition are in offset order: the newest is the first's or the last's partition's)
        newest = max(batch[0].timestamp()[1], batch[-1].timestamp()[1])  # ms; 0 or -1 when the record has none
        return newest > 0 and now - newest / 1000 >= MATCH_HOLD_BEHIND_S

    def _release_matches(self, producer: Producer) -> None:
        """Produce the held matches, in order (see "Catching up")."""
        held, self._deferred = self._deferred, []
        self._deferred_batches = 0
        for value, key, on_delivery in held:
            self._produce(producer, self.cfg.matches_topic, value, key, on_delivery=on_delivery)

    def _consumed_positions(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """The next offset of each assigned partition that the batch just consumed read records of.

        librdkafka's position is the offset after the last record consume() returned, so after a batch, every
        record of which is processed, it is the offset to commit: one call per batch instead of reading each
        record's partition and offset (a tenth of the loop's own time per skipped record). Partitions the
        batch did not read have not moved since the last batch and are left out.
        """
        if not self._assignment:
            return {}
        read_upto = self._read_upto
        moved: dict[tuple[str, int], int] = {}
        for tp in consumer.position([TopicPartition(t, p) for t, p in self._assignment]):
            key = (tp.topic, tp.partition)
            if tp.offset >= 0 and read_upto.get(key) != tp.offset:
                moved[key] = read_upto[key] = tp.offset
        return moved

    def _settle(self, consumer: Consumer, producer: Producer) -> None:
        """Serve delivery reports and commit the batches that are done; wait only when there is trouble or
        MAX_PENDING_BATCHES are in flight."""
        if self._deferred and (
            self._deferred_batches >= MATCH_HOLD_BATCHES or time.monotonic() - self._deferred_since >= MATCH_HOLD_S
        ):
            self._release_matches(producer)
        producer.poll(0)
        if self._refused or self._oversized or self._delivery_errors or self._paused_since is not None:
            # The careful path: everything acknowledged (and the consumer resumed) before going on.
            self._await_deliveries(producer)
        elif len(self._pending) > MAX_PENDING_BATCHES:
            self._await_oldest(producer)
        self._commit_async(consumer, self._ready_offsets())

    def _commit_async(self, consumer: Consumer, offsets: dict[tuple[str, int], int]) -> None:
        if self._assignment:  # partitions revoked while waiting are the new owner's to commit (it re-reads them)
            offsets = {tp: o for tp, o in offsets.items() if tp in self._assignment}
        if offsets:
            # Async: the broker round trip would otherwise cost more than the batch's records; revocation and
            # shutdown commit synchronously (see _commit_positions).
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)

    def _ready_offsets(self) -> dict[tuple[str, int], int]:
        """Take the oldest batches whose outputs are all acknowledged; their offsets become committable."""
        offsets: dict[tuple[str, int], int] = {}
        pending = self._pending
        while pending and not pending[0].outstanding:
            offsets.update(pending.popleft().offsets)
        self._positions.update(offsets)
        return offsets

    def _await_oldest(self, producer: Producer) -> None:
        self._release_matches(producer)  # the oldest may be waiting on its held matches
        since = time.monotonic()
        pending = self._pending
        while pending and pending[0].outstanding:
            producer.poll(DELIVERY_POLL_S)
            if self._refused or self._oversized or self._delivery_errors:
                self._await_deliveries(producer)
                return
            self._blocked(since, f"{len(producer)} produced message(s) not acknowledged")
        self._resume()

    def _consume_error(self, msg: Message) -> bool:
        """True if `msg` is an error event rather than a record (logged; a fatal one raises)."""
        err = msg.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            if err.fatal():
                raise KafkaException(err)
            log.warning("consume error: %s", err)
        return True

    def _sample(
        self,
        producer: Producer,
        batch: list[Message],
        topics: list[str],
        values: list[bytes],
        to_parse: set[int],
        prefiltered: Counter[str],
        ticket: _Batch,
    ) -> None:
        """Validate every `_every`-th prefiltered record of each topic (running counts, across batches)."""
        every = self._every
        if every > 1 and self._interval > 0:
            self._arm_due_samples(every)
        seen = self._prefiltered_seen
        for topic, n in prefiltered.items():
            before = seen.get(topic, 0)
            seen[topic] = before + n
            if (before + n) // every == before // every:
                continue  # no multiple of `every` reached in this batch: the common case, decided per topic
            # The topic's prefiltered records in this batch are numbers before+1 .. before+n; those whose number
            # is a multiple of `every` are due: the first is the (every - before % every)-th, then every
            # `every`-th. Found with iterators that run in C: a loop over the batch in Python cost as much as
            # the rest of the batch's own work.
            mine = compress(range(len(topics)), map(eq, topics, repeat(topic)))
            for i in islice(filterfalse(to_parse.__contains__, mine), every - 1 - before % every, None, every):
                self._validate_sample(producer, batch[i], values[i], self._pinned.get(topic), ticket)

    def _arm_due_samples(self, every: int) -> None:
        due = time.monotonic() - self._interval
        seen = self._prefiltered_seen
        for topic, last in self._last_sampled.items():
            if last <= due:
                n = seen.get(topic, 0)
                seen[topic] = n + (every - 1 - n % every)  # unchanged when already armed

    def _validate_sample(self, producer: Producer, msg: Message, raw: bytes, source: str | None, batch: _Batch) -> None:
        """Parse and normalise a record the prefilter skipped; dead-letter it (as part of `batch`) if invalid."""
        topic, partition, offset = cast(str, msg.topic()), cast(int, msg.partition()), cast(int, msg.offset())
        self._last_sampled[topic] = time.monotonic()
        out = cast(Engine, self._validator).process(raw, source)
        claimed = source or AUTO  # what the topic is said to carry: the claim under test
        if out.rejection is None:
            self.metrics.validated.labels(topic, claimed, "ok").inc()
            if out.alerts:  # the prefilter must never skip a match: this would be a missed detection
                log.error("prefilter bug: it skipped %s[%d]@%d, which matches", topic, partition, offset)
            return
        reason = out.rejection.reason
        self.metrics.validated.labels(topic, claimed, reason).inc()
        self.metrics.rejected.labels(out.source or claimed, reason).inc()
        letter = DeadLetter(
            raw, msg.key(), reason, out.rejection.detail, topic, partition, offset, out.source or source, sampled=True
        )
        self._produce_deadletter(producer, letter, batch)

    # -- producing -----------------------------------------------------------------------------------
    def _produce(
        self,
        producer: Producer,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """produce(), waiting (paused, see Backpressure) while the local queue is full or the topic is missing."""
        since: float | None = None
        backoff = RETRY_BACKOFF_S
        while True:
            try:
                if headers is None:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                else:
                    producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                # librdkafka's queue is full; delivery reports (served by poll) are what frees it.
                since = time.monotonic() if since is None else since
                producer.poll(DELIVERY_POLL_S)
                self._blocked(since, "the producer's local queue is full")
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not (isinstance(err, KafkaError) and err.code() in _MISSING_TOPIC_ERRORS):
                    raise
                self._blocked(0.0, f"{topic} does not exist ({err.str()})")
                self._wait(backoff)
                backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)

    def _produce_deadletter(self, producer: Producer, letter: DeadLetter, batch: _Batch, again: bool = False) -> None:
        """Produce a dead letter as one of `batch`'s outputs (`again`: one it already counts, sent anew)."""
        limit = self.deadletter_limit
        while True:
            key, value, headers = deadletter_message(letter, limit)
            try:
                self._produce(
                    producer,
                    self.cfg.deadletter_topic,
                    value,
                    key,
                    cast(Headers, headers),
                    partial(self._on_deadletter_delivery, letter, batch),
                )
                break
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not (isinstance(err, KafkaError) and err.code() in _SIZE_ERRORS) or limit <= MIN_DEADLETTER_BYTES:
                    raise
                # Refused locally as too large (message.max.bytes): cut further rather than die on this record.
                log.warning("producer refused a %d-byte dead letter (%s): cutting it further", len(value), err.str())
                limit = max(limit // 2, MIN_DEADLETTER_BYTES)
        if not again:
            batch.outstanding += 1
        if len(value) < len(letter.raw):
            self.metrics.deadletters_truncated.inc()

    def _on_deadletter_delivery(self, letter: DeadLetter, batch: _Batch, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            batch.outstanding -= 1
        elif err.code() in _SIZE_ERRORS:
            self._oversized.append((letter, batch))
        else:
            self._on_refused(err, msg, partial(self._produce_deadletter, letter=letter, batch=batch, again=True))

    def _on_delivery(self, batch: _Batch, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            batch.outstanding -= 1
        else:
            again = partial(
                self._produce,
                topic=cast(str, msg.topic()),
                value=msg.value() or b"",
                key=msg.key(),
                on_delivery=partial(self._on_delivery, batch),
            )
            self._on_refused(err, msg, again)

    def _on_refused(self, err: KafkaError, msg: Message, again: Callable[[Producer], None]) -> None:
        if err.fatal():  # the producer instance is unusable (e.g. idempotence broken): exit, re-read after restart
            self._delivery_errors.append(f"{msg.topic()}: {err}")
        else:  # timed out, topic gone, not authorised, ...: produced again after a backoff (_await_deliveries)
            self._refused.append((again, err))

    # -- backpressure ----------------------------------------------------------------------------------
    def _blocked(self, since: float, why: str) -> None:
        """Output unacknowledged since `since` (monotonic): pause once it has lasted PAUSE_AFTER_S; keep polling."""
        if self._stop_event.is_set():
            raise _Stopping
        if self._paused_since is None:
            if time.monotonic() - since < PAUSE_AFTER_S:
                return
            self._paused_since = time.monotonic()
            self.metrics.ingest_paused.set(1)
            log.warning("backpressure: %s; ingest consumer paused until the broker acknowledges", why)
        self._keep_polling(0.0)

    def _keep_polling(self, timeout: float) -> None:
        """Poll the paused consumer: it stays in the group (max.poll.interval.ms) and serves rebalances."""
        consumer = self._consumer
        if consumer is None:
            time.sleep(timeout)
            return
        assignment = consumer.assignment()
        if assignment:
            consumer.pause(assignment)  # again: partitions assigned since the pause began
        # Paused partitions return nothing; a record fetched before its partition was paused is kept for later.
        self._held += consumer.consume(num_messages=self.cfg.batch_size, timeout=timeout)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop_event.is_set():
                raise _Stopping
            self._keep_polling(min(left, DELIVERY_POLL_S))

    def _resume(self) -> None:
        if self._paused_since is None:
            return
        waited = time.monotonic() - self._paused_since
        self._paused_since = None
        consumer = self._consumer
        if consumer is not None:
            assignment = consumer.assignment()
            if assignment:
                consumer.resume(assignment)
        self.metrics.ingest_paused.set(0)
        self.metrics.backpressure.labels("ingest").inc(waited)
        log.warning("backpressure over after %.1f s: everything acknowledged, ingest consumer resumed", waited)

    def _drain(self, producer: Producer, since: float) -> None:
        """Wait until everything produced is acknowledged or refused, polling the consumer if paused."""
        self._release_matches(producer)
        while remaining := producer.flush(DELIVERY_POLL_S):
            self._blocked(since, f"{remaining} produced message(s) not acknowledged")

    def _await_deliveries(self, producer: Producer) -> None:
        since = time.monotonic()
        backoff = RETRY_BACKOFF_S
        while True:
            self._drain(producer, since)
            self._resend_oversized(producer, since)
            if self._delivery_errors:
                errors = "; ".join(self._delivery_errors[:5])
                self._delivery_errors.clear()
                raise DeliveryError(f"fatal producer error ({errors}); not committing the batch's offsets")
            if not self._refused:
                break
            refused, self._refused = self._refused, []
            self._blocked(0.0, f"the broker refused {len(refused)} message(s) ({refused[0][1]})")
            self._wait(backoff)
            backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)
            for again, _err in refused:
                again(producer)
        self._resume()

    def _resend_oversized(self, producer: Producer, since: float) -> None:
        alone = False
        while self._oversized:
            # The topic accepts less than the worker knew (its limit could not be read at start, or was lowered
            # since). The broker refuses a record batch as a whole, so first send each refused dead letter in a
            # request of its own; one still refused alone is too large for the topic: halve the bound, for good.
            letters, self._oversized = self._oversized, []
            if alone:
                if self.deadletter_limit <= MIN_DEADLETTER_BYTES:
                    self._delivery_errors.append(
                        f"{self.cfg.deadletter_topic}: refused even a {MIN_DEADLETTER_BYTES}-byte dead letter"
                    )
                    break
                self.deadletter_limit = max(self.deadletter_limit // 2, MIN_DEADLETTER_BYTES)
            log.warning(
                "%s refused %d dead letter(s) as too large: sending them one by one, bounded to %d bytes",
                self.cfg.deadletter_topic,
                len(letters),
                self.deadletter_limit,
            )
            for letter, batch in letters:
                self._produce_deadletter(producer, letter, batch, again=True)
                self._drain(producer, since)
            alone = True

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
        if isinstance(err, KafkaError) and err.code() in _COORDINATOR_GONE_COMMIT_ERRORS:
            # Dying on it would lose nothing either, but would turn every broker restart into a worker restart.
            log.warning("commit skipped, group coordinator unavailable (the records will be re-read): %s", err.str())
            self.metrics.commits_skipped.inc()
            return
        raise KafkaException(err)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            if err.code() in _REBALANCE_COMMIT_ERRORS:
                self.metrics.commits_skipped.inc()
            log.warning("offset commit failed (the records will be re-read): %s", err.str())

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
