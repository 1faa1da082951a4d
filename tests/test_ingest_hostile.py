"""The ingest batch on hostile and messy input, without a broker: bounded dead letters that are always
writable, produce failures that do not stop the loop, and validation sampling of prefiltered records.

The real broker is exercised by tests/integration/test_hostile_stream.py; here librdkafka's behaviour is
stood in for by a fake producer that refuses what the real one refuses (message.max.bytes at produce(),
a topic's max.message.bytes at delivery, a full queue as BufferError).

    .venv/bin/python -m tests.test_ingest_hostile   # micro-benchmark: the batch with sampling on and off
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from detector.engine import Engine
from detector.metrics import Metrics
from detector.rules.model import load_rules
from detector.stream.config import WorkerConfig
from detector.stream.ingest import (
    ALERT_TOO_LARGE,
    DETAIL_MAX_BYTES,
    KEY_MAX_BYTES,
    MATCH_MAX_BYTES,
    MIN_DEADLETTER_BYTES,
    PRODUCER_MESSAGE_MAX_BYTES,
    RECORD_FRAMING,
    DeadLetter,
    DeliveryError,
    IngestLoop,
    clip_text,
    deadletter_limit,
    deadletter_message,
    producer_limits,
    producer_queue_limits,
    sample_every,
)

RULES = load_rules()
FIXTURES = Path(__file__).parent / "fixtures" / "sources"
CS_TOPIC, SYSMON_TOPIC, DL_TOPIC, MATCHES_TOPIC = "t.crowdstrike_fdr", "t.windows_sysmon", "dl", "matches"


def _first_line(source: str, kind: str) -> bytes:
    return (FIXTURES / source / f"{kind}.ndjson").read_bytes().splitlines()[0]


def positive(source: str) -> bytes:
    return _first_line(source, "positives")


def benign(source: str) -> bytes:
    """A valid record of `source` without the prefilter's needle: one the prefilter skips."""
    raw = re.sub(rb"(?i)client32", b"notepad", positive(source))
    assert Engine(RULES).process(raw, source).prefiltered
    assert Engine(RULES, use_prefilter=False).process(raw, source).rejection is None
    return raw


# -- fakes of confluent-kafka's consumer, producer and messages -----------------------------------------------


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes, key: bytes | None = None) -> None:
        self._topic, self._partition, self._offset, self._value, self._key = topic, partition, offset, value, key

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000 + self._offset  # (TIMESTAMP_CREATE_TIME, ms)


class Sent:
    def __init__(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None) -> None:
        self.t, self.v, self.key, self.headers = topic, value, key, dict(headers or [])

    def size(self) -> int:
        return len(self.v) + len(self.key or b"") + sum(len(k) + len(v) for k, v in self.headers.items())

    # what a delivery report's message offers
    def topic(self) -> str:
        return self.t

    def value(self) -> bytes:
        return self.v


class Report:
    """A delivery report's message, as librdkafka gives it (what the loop produces again if refused)."""

    def __init__(self, sent: Sent) -> None:
        self.sent = sent

    def topic(self) -> str:
        return self.sent.t

    def value(self) -> bytes:
        return self.sent.v

    def key(self) -> bytes | None:
        return self.sent.key

    def headers(self) -> list[tuple[str, bytes]] | None:
        # None, as in confluent-kafka's delivery reports on the real broker: a dead letter produced again from
        # its report lost its reason and origin (the backpressure test caught it), so the loop must not use it.
        return None


class FakeProducer:
    """Refuses like librdkafka and the broker: over message.max.bytes at produce(); at delivery, a whole record
    batch (messages to one topic, added while under batch.size, the first regardless) over the topic's limit."""

    def __init__(
        self,
        message_max_bytes: int = PRODUCER_MESSAGE_MAX_BYTES,
        topic_limits: dict[str, int] | None = None,
        queue_full: int = 0,
        fail_delivery: KafkaError | None = None,
        fail_times: int = 10**9,
        batch_size: int = PRODUCER_MESSAGE_MAX_BYTES,
    ) -> None:
        self.message_max_bytes = message_max_bytes
        self.batch_size = batch_size
        self.topic_limits = topic_limits or {}
        self.queue_full = queue_full  # the next n produce() calls raise BufferError
        self.fail_delivery = fail_delivery
        self.fail_times = fail_times  # deliveries refused with fail_delivery, then all accepted
        self.pending: list[tuple[Sent, Callable[[KafkaError | None, Any], None] | None]] = []
        self.delivered: list[Sent] = []
        self.refused: list[Sent] = []
        self.polls = 0
        self.hold_acks = False  # deliveries reported by flush() only: acknowledgements slower than the loop

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None:
        if self.queue_full:
            self.queue_full -= 1
            raise BufferError("Local: Queue full")
        sent = Sent(topic, value, key, headers)
        if sent.size() > self.message_max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.pending.append((sent, on_delivery))

    def __len__(self) -> int:  # messages in the queue or in flight, as librdkafka's Producer counts them
        return len(self.pending)

    def poll(self, timeout: float = 0) -> int:
        # Serves delivery reports, as librdkafka's poll does: this broker acknowledges at once (unless held).
        self.polls += 1
        if not self.hold_acks:
            self.flush()
        return 0

    def flush(self, timeout: float = 0) -> int:
        pending, self.pending = self.pending, []
        batches: list[list[tuple[Sent, Callable[[KafkaError | None, Any], None] | None]]] = []
        for item in pending:
            same_topic = [b for b in batches if b[0][0].t == item[0].t]
            last = same_topic[-1] if same_topic else None
            if last is not None and sum(s.size() for s, _ in last) + item[0].size() <= self.batch_size:
                last.append(item)
            else:
                batches.append([item])
        for batch in batches:
            framed = sum(s.size() for s, _ in batch) + RECORD_FRAMING // 4
            err = self.fail_delivery if self.fail_times > 0 else None
            if err is not None:
                self.fail_times -= 1
            if err is None and framed > self.topic_limits.get(batch[0][0].t, 1 << 62):
                err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
            for sent, callback in batch:
                (self.refused if err else self.delivered).append(sent)
                if callback is not None:
                    callback(err, Report(sent))
        return 0

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.delivered if s.t == topic]


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.polls_paused = 0
        self.resumed = 0

    def assignment(self) -> list[Any]:
        return [TopicPartition(CS_TOPIC, 0)]

    def pause(self, partitions: list[Any]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[Any]) -> None:
        self.resumed += 1

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.polls_paused += 1  # only called by the loop while it waits for the broker
        return []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})


def make_loop(
    *,
    topics: dict[str, str] | None = None,
    deadletter_max_bytes: int = 512 * 1024,
    validate_sample_rate: float = 0.01,
    validate_sample_interval: float = 0.0,
    prefilter: bool = True,
    batch_size: int = 2000,
) -> IngestLoop:
    cfg = WorkerConfig(
        batch_size=batch_size,
        topics=topics or {CS_TOPIC: "crowdstrike_fdr", SYSMON_TOPIC: "windows_sysmon"},
        deadletter_topic=DL_TOPIC,
        matches_topic=MATCHES_TOPIC,
        deadletter_max_bytes=deadletter_max_bytes,
        validate_sample_rate=validate_sample_rate,
        validate_sample_interval=validate_sample_interval,
    )
    return IngestLoop(cfg, Engine(RULES, use_prefilter=prefilter), Metrics(), lambda exc: None)


def run_batches(loop: IngestLoop, producer: FakeProducer, batches: Iterable[list[FakeMessage]]) -> FakeConsumer:
    consumer = FakeConsumer()
    for batch in batches:
        loop._process_batch(consumer, producer, batch)  # type: ignore[arg-type]
    return consumer


def messages(topic: str, values: Iterable[bytes], start: int = 0) -> list[FakeMessage]:
    return [FakeMessage(topic, 0, start + i, v) for i, v in enumerate(values)]


def metric(loop: IngestLoop, name: str, **labels: str) -> float:
    return loop.metrics.registry.get_sample_value(name, labels) or 0.0


# -- bounding a dead letter ------------------------------------------------------------------------------------


def letter(raw: bytes, **kw: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "key": b"k",
        "reason": "not_json",
        "detail": "not valid JSON",
        "topic": CS_TOPIC,
        "partition": 2,
        "offset": 7,
        "source": "crowdstrike_fdr",
    }
    return DeadLetter(raw, **{**fields, **kw})


def total_size(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    return len(key or b"") + len(value) + sum(len(k) + len(v) + 10 for k, v in headers)


def test_a_small_dead_letter_is_the_original_bytes_with_reason_headers() -> None:
    key, value, headers = deadletter_message(letter(b"{garbage"), 64 * 1024)
    h = dict(headers)
    assert (key, value) == (b"k", b"{garbage")
    assert h["detector.reason"] == b"not_json" and h["detector.detail"] == b"not valid JSON"
    assert (h["detector.source_topic"], h["detector.source_partition"], h["detector.source_offset"]) == (
        CS_TOPIC.encode(),
        b"2",
        b"7",
    )
    assert "detector.truncated" not in h and "detector.validation_sample" not in h


@pytest.mark.parametrize("limit", [MIN_DEADLETTER_BYTES, 64 * 1024, 512 * 1024])
def test_a_large_dead_letter_is_cut_to_the_bound_with_size_and_digest(limit: int) -> None:
    raw = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # 3 MiB
    key, value, headers = deadletter_message(letter(raw, key=b"K" * 5000, detail="x" * 100_000), limit)
    h = dict(headers)
    assert total_size(key, value, headers) <= limit
    assert value and raw.startswith(value)
    assert h["detector.truncated"] == b"true"
    assert int(h["detector.original_size"]) == len(raw)
    assert h["detector.original_sha256"] == hashlib.sha256(raw).hexdigest().encode()
    assert len(h["detector.detail"]) <= DETAIL_MAX_BYTES and h["detector.detail"].endswith(b"...[cut]")
    assert key == b"K" * KEY_MAX_BYTES and h["detector.original_key_size"] == b"5000"


def test_header_text_is_cut_on_a_character_boundary_and_never_fails() -> None:
    clipped = clip_text("é" * 1000, 101)
    assert len(clipped) <= 101 and clipped.decode("utf-8").endswith("...[cut]")
    assert clip_text("lone \udc80 surrogate", 100) == b"lone \\udc80 surrogate"


def test_the_bound_is_the_smaller_of_the_setting_and_the_topic() -> None:
    assert deadletter_limit(512 * 1024, "dl", None) == 512 * 1024
    assert deadletter_limit(512 * 1024, "dl", 1048588) == 512 * 1024
    assert deadletter_limit(512 * 1024, "dl", 65536) == 65536 - RECORD_FRAMING
    with pytest.raises(ValueError, match="dead-letter topic dl accepts at most 2000 bytes"):
        deadletter_limit(512 * 1024, "dl", 2000)


def test_producer_limits_fit_the_bound_and_the_topic() -> None:
    small = producer_limits(65536 - RECORD_FRAMING, 65536)
    assert small["message.max.bytes"] == PRODUCER_MESSAGE_MAX_BYTES  # never below librdkafka's default
    assert small["batch.size"] <= 65536 - RECORD_FRAMING  # two dead letters cannot share an oversized batch
    big = producer_limits(4 << 20, 8 << 20)
    assert big["message.max.bytes"] >= (4 << 20) + RECORD_FRAMING
    assert big["batch.size"] == PRODUCER_MESSAGE_MAX_BYTES


# -- the batch: dead letters that can always be written --------------------------------------------------------


def test_a_3_mib_record_becomes_a_cut_dead_letter_and_the_records_after_it_are_processed() -> None:
    loop = make_loop()
    huge = b'{"event_simpleName":"ProcessRollup2","CommandLine":"' + b"A" * (3 << 20) + b'"}'
    producer = FakeProducer(configured_max(loop, topic_max=None))
    batch = messages(CS_TOPIC, [huge, positive("crowdstrike_fdr"), benign("crowdstrike_fdr")])
    consumer = run_batches(loop, producer, [batch])
    (dead,) = producer.on(DL_TOPIC)
    assert dead.headers["detector.reason"] == b"too_large"
    assert dead.headers["detector.truncated"] == b"true"
    assert int(dead.headers["detector.original_size"]) == len(huge)
    assert dead.headers["detector.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert dead.size() <= 512 * 1024 and huge.startswith(dead.v)
    (match,) = producer.on(MATCHES_TOPIC)
    observation = orjson.loads(match.v)  # the positive is a prevalence candidate: its alert rides along
    assert observation["type"] == "observe" and observation["alert"]["kibana.alert.rule.rule_id"]
    assert consumer.commits == [{(CS_TOPIC, 0): 3}]
    assert metric(loop, "detector_deadletters_truncated_total") == 1


def configured_max(loop: IngestLoop, topic_max: int | None) -> int:
    """message.max.bytes of the producer the loop would build for a dead-letter topic of `topic_max`."""
    loop.deadletter_limit = deadletter_limit(loop.cfg.deadletter_max_bytes, DL_TOPIC, topic_max)
    return producer_limits(loop.deadletter_limit, topic_max)["message.max.bytes"]


def test_a_full_local_queue_is_waited_out_not_fatal() -> None:
    loop = make_loop()
    producer = FakeProducer(queue_full=3)
    run_batches(loop, producer, [messages(CS_TOPIC, [b"not json", positive("crowdstrike_fdr")])])
    assert producer.polls >= 3
    assert len(producer.on(DL_TOPIC)) == 1 and len(producer.on(MATCHES_TOPIC)) == 1


def test_a_queue_that_stays_full_pauses_the_consumer_which_keeps_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("detector.stream.ingest.PAUSE_AFTER_S", 0.05)

    def slow_poll(self: FakeProducer, timeout: float = 0) -> int:
        time.sleep(0.01)
        return 0 if self.queue_full else self.flush()

    monkeypatch.setattr(FakeProducer, "poll", slow_poll)
    loop = make_loop()
    consumer = FakeConsumer()
    producer = FakeProducer(queue_full=30)  # ~0.3 s of a full queue: no deadline, no failure
    loop._process_batch(consumer, producer, messages(CS_TOPIC, [b"not json"]))  # type: ignore[arg-type]
    assert consumer.polls_paused > 0 and consumer.resumed == 1  # kept polling (stays in the group), then resumed
    assert len(producer.on(DL_TOPIC)) == 1 and consumer.commits == [{(CS_TOPIC, 0): 1}]
    assert metric(loop, "detector_ingest_paused") == 0
    assert metric(loop, "detector_backpressure_seconds_total", stage="ingest") > 0


def test_a_dead_letter_the_producer_refuses_as_too_large_is_cut_further() -> None:
    # message.max.bytes below the bound: a misconfiguration, or librdkafka counting differently than we do.
    loop = make_loop()
    producer = FakeProducer(message_max_bytes=100_000)
    raw = b"{" + b"x" * 400_000
    run_batches(loop, producer, [messages(CS_TOPIC, [raw, positive("crowdstrike_fdr")])])
    (dead,) = producer.on(DL_TOPIC)
    assert dead.size() <= 100_000 and dead.headers["detector.truncated"] == b"true"
    assert len(producer.on(MATCHES_TOPIC)) == 1


def test_a_dead_letter_the_broker_refuses_as_too_large_is_sent_again_smaller() -> None:
    # The topic's max.message.bytes was lowered after the worker read it at start.
    loop = make_loop()
    producer = FakeProducer(topic_limits={DL_TOPIC: 50_000})
    raw = b"[" + b"1," * 200_000 + b"1]"
    consumer = run_batches(loop, producer, [messages(CS_TOPIC, [raw, b"not json either"])])
    dead = producer.on(DL_TOPIC)
    assert len(dead) == 2 and all(d.size() < 50_000 for d in dead)
    truncated = next(d for d in dead if "detector.truncated" in d.headers)
    assert truncated.headers["detector.original_sha256"] == hashlib.sha256(raw).hexdigest().encode()
    assert loop.deadletter_limit < 50_000  # remembered for the next dead letters
    assert consumer.commits == [{(CS_TOPIC, 0): 2}]


def test_dead_letters_refused_only_together_are_sent_one_by_one_uncut() -> None:
    # The topic's limit could not be read at start, so librdkafka batches up to 1 MB: five 30 KB dead letters
    # travel together and the 64 KB topic refuses the whole batch, though each alone fits.
    loop = make_loop()
    producer = FakeProducer(topic_limits={DL_TOPIC: 64 * 1024})
    bad = [b"{" + bytes([65 + i]) * 30_000 for i in range(5)]
    consumer = run_batches(loop, producer, [messages(CS_TOPIC, bad)])
    assert len(producer.refused) == 5
    assert sorted(d.v for d in producer.on(DL_TOPIC)) == bad  # whole: no need to cut them
    assert loop.deadletter_limit == 512 * 1024
    assert consumer.commits == [{(CS_TOPIC, 0): 5}]


def test_with_the_topic_limit_known_no_batch_of_dead_letters_exceeds_it() -> None:
    loop = make_loop()
    limits = producer_limits(deadletter_limit(512 * 1024, DL_TOPIC, 64 * 1024), 64 * 1024)
    loop.deadletter_limit = deadletter_limit(512 * 1024, DL_TOPIC, 64 * 1024)
    producer = FakeProducer(limits["message.max.bytes"], {DL_TOPIC: 64 * 1024}, batch_size=limits["batch.size"])
    bad = [b"{" + bytes([65 + i]) * 30_000 for i in range(5)] + [b"{" + b"x" * 300_000]
    run_batches(loop, producer, [messages(CS_TOPIC, bad)])
    assert producer.refused == [] and len(producer.on(DL_TOPIC)) == 6
    assert [d.v for d in producer.on(DL_TOPIC)][:5] == bad[:5]


def test_refused_deliveries_are_produced_again_until_acknowledged_then_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("detector.stream.ingest.RETRY_BACKOFF_S", 0.01)
    loop = make_loop()
    consumer = FakeConsumer()
    producer = FakeProducer(fail_delivery=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), fail_times=4)
    batch = messages(CS_TOPIC, [b"not json", positive("crowdstrike_fdr")])
    loop._process_batch(consumer, producer, batch)  # type: ignore[arg-type]
    assert len(producer.refused) == 4  # two rounds of two, each round paused and then produced again
    (dead,) = producer.on(DL_TOPIC)
    assert dead.v == b"not json" and dead.headers["detector.reason"] == b"not_json"  # headers kept on the resend
    assert len(producer.on(MATCHES_TOPIC)) == 1
    assert consumer.commits == [{(CS_TOPIC, 0): 2}] and consumer.resumed == 1 and not loop.paused


def test_a_fatal_producer_error_still_stops_the_commit() -> None:
    loop = make_loop()
    consumer = FakeConsumer()
    fatal = KafkaError(KafkaError._FENCED, fatal=True)
    producer = FakeProducer(fail_delivery=fatal)
    with pytest.raises(DeliveryError):
        loop._process_batch(consumer, producer, messages(CS_TOPIC, [b"not json"]))  # type: ignore[arg-type]
    assert consumer.commits == []


def test_the_producer_queue_and_topic_creation_are_bounded() -> None:
    limits = producer_queue_limits(PRODUCER_MESSAGE_MAX_BYTES)
    assert limits["queue.buffering.max.kbytes"] == 64 * 1024 and limits["queue.buffering.max.messages"] == 100_000
    assert producer_queue_limits(100 << 20)["queue.buffering.max.kbytes"] * 1024 >= 100 << 20  # one still fits


def test_a_match_too_large_to_publish_is_dead_lettered_with_its_reason() -> None:
    loop = make_loop()
    record = orjson.loads(positive("crowdstrike_fdr"))
    record["CommandLine"] = "client32.exe " + "A" * (MATCH_MAX_BYTES + 10)
    raw = orjson.dumps(record)
    assert len(raw) < loop.engine.max_record_bytes  # a record the engine accepts and evaluates
    producer = FakeProducer(configured_max(loop, None))
    consumer = run_batches(loop, producer, [messages(CS_TOPIC, [raw, positive("crowdstrike_fdr")])])
    (dead,) = producer.on(DL_TOPIC)
    assert dead.headers["detector.reason"] == ALERT_TOO_LARGE.encode()
    assert dead.headers["detector.truncated"] == b"true"
    assert len(producer.on(MATCHES_TOPIC)) == 1  # the next record's alert
    assert consumer.commits == [{(CS_TOPIC, 0): 2}]
    assert metric(loop, "detector_records_rejected_total", source="crowdstrike_fdr", reason=ALERT_TOO_LARGE) == 1


# -- validation sampling of prefiltered records -----------------------------------------------------------------


def test_sample_every() -> None:
    assert [sample_every(r) for r in (0.0, 0.01, 0.3, 1.0)] == [0, 100, 3, 1]


def test_a_misrouted_topic_is_sampled_counted_and_dead_lettered() -> None:
    loop = make_loop()
    producer = FakeProducer()
    sysmon = benign("windows_sysmon")
    # 250 sysmon records on the crowdstrike topic, over batches that do not align with the sampling period
    values = [sysmon] * 250
    batches = [messages(CS_TOPIC, values[i : i + 70], start=i) for i in range(0, 250, 70)]
    run_batches(loop, producer, batches)
    dead = producer.on(DL_TOPIC)
    assert [d.headers["detector.source_offset"] for d in dead] == [b"99", b"199"]  # the 100th and the 200th
    for d in dead:
        assert d.headers["detector.reason"] == b"unknown_source"
        assert d.headers["detector.validation_sample"] == b"true"
        assert b"does not look like crowdstrike_fdr" in d.headers["detector.detail"]
        assert d.v == sysmon
    labels = {"topic": CS_TOPIC, "source": "crowdstrike_fdr"}
    assert metric(loop, "detector_records_validated_total", **labels, result="unknown_source") == 2
    assert metric(loop, "detector_records_validated_total", **labels, result="ok") == 0
    assert metric(loop, "detector_records_prefiltered_total", source="crowdstrike_fdr") == 250
    assert metric(loop, "detector_records_rejected_total", source="crowdstrike_fdr", reason="unknown_source") == 2


def test_a_correctly_routed_topic_samples_ok_only_and_each_topic_counts_its_own() -> None:
    loop = make_loop()
    producer = FakeProducer()
    cs, sysmon = benign("crowdstrike_fdr"), benign("windows_sysmon")
    batch = [FakeMessage(CS_TOPIC if i % 2 else SYSMON_TOPIC, 0, i // 2, cs if i % 2 else sysmon) for i in range(400)]
    run_batches(loop, producer, [batch])
    assert producer.delivered == []
    for topic, source in ((CS_TOPIC, "crowdstrike_fdr"), (SYSMON_TOPIC, "windows_sysmon")):
        assert metric(loop, "detector_records_validated_total", topic=topic, source=source, result="ok") == 2


def test_sampling_off() -> None:
    loop = make_loop(validate_sample_rate=0.0)
    producer = FakeProducer()
    run_batches(loop, producer, [messages(CS_TOPIC, [benign("windows_sysmon")] * 300)])
    assert producer.delivered == [] and loop._validator is None
    assert metric(loop, "detector_records_prefiltered_total", source="crowdstrike_fdr") == 300


def test_a_slow_topic_is_sampled_at_least_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("detector.stream.ingest.time.monotonic", lambda: clock[0])
    loop = make_loop(validate_sample_rate=0.001, validate_sample_interval=1.0)
    producer = FakeProducer()
    sysmon = benign("windows_sysmon")
    offsets = iter(range(10**6))

    def batch(n: int) -> list[FakeMessage]:
        return [FakeMessage(CS_TOPIC, 0, next(offsets), sysmon) for _ in range(n)]

    run_batches(loop, producer, [batch(5), batch(5)])  # the topic's first record, then nothing within the second
    clock[0] += 0.5
    run_batches(loop, producer, [batch(5)])
    clock[0] += 0.6  # over a second since the first sample: the next record is checked
    run_batches(loop, producer, [batch(5), batch(5)])
    assert [d.headers["detector.source_offset"] for d in producer.on(DL_TOPIC)] == [b"0", b"15"]
    labels = {"topic": CS_TOPIC, "source": "crowdstrike_fdr", "result": "unknown_source"}
    assert metric(loop, "detector_records_validated_total", **labels) == 2
    # Arming the counter is not counting records.
    assert metric(loop, "detector_records_prefiltered_total", source="crowdstrike_fdr") == 25
    # The rate still applies on top: 1000 more records within the same instant give one more sample.
    run_batches(loop, producer, [batch(1000)])
    assert metric(loop, "detector_records_validated_total", **labels) == 3


# -- micro-benchmark ---------------------------------------------------------------------------------------------


def _bench(rounds: int = 15, batches: int = 100, size: int = 2000) -> None:
    """Records/s of the ingest batch on prefiltered records: validation sampling off, at the defaults, at 1%.

    A realistic mix: valid benign records of every source fixture on their own topics (the prefilter skips
    them all, so sampling is the only parsing). Alternating rounds, best CPU time of each: this machine is
    shared and noisy. The default interval (1 s) adds about one sample per topic per round.
    """
    sources = [p.name for p in sorted(FIXTURES.iterdir()) if (p / "positives.ndjson").exists()]
    records = [(f"t.{s}", benign(s)) for s in sources]
    batch = [FakeMessage(records[i % len(records)][0], 0, i, records[i % len(records)][1]) for i in range(size)]
    topics = {t: t.removeprefix("t.") for t, _ in records}
    default = WorkerConfig()
    settings = {
        "sampling off": (0.0, 0.0),
        f"defaults (rate {default.validate_sample_rate}, interval {default.validate_sample_interval} s)": (
            default.validate_sample_rate,
            default.validate_sample_interval,
        ),
        "rate 0.01, interval 1 s": (0.01, 1.0),
    }
    best = dict.fromkeys(settings, 0.0)
    for _ in range(rounds):
        for name, (rate, interval) in settings.items():
            loop = make_loop(topics=topics, validate_sample_rate=rate, validate_sample_interval=interval)
            producer, consumer = FakeProducer(), FakeConsumer()
            start = time.process_time()  # CPU time: other processes' load counts less than in wall time
            for _ in range(batches):
                loop._process_batch(consumer, producer, batch)  # type: ignore[arg-type]
            best[name] = max(best[name], batches * size / (time.process_time() - start))
    mean = sum(len(r) for _, r in records) / len(records)
    print(f"ingest batch of {size} prefiltered records, {len(records)} sources, mean {mean:,.0f} B, best of {rounds}")
    off = best["sampling off"]
    for name, rate in best.items():
        print(f"  {name:45} {rate:10,.0f} records/s   cost {100 * (1 - rate / off):5.1f}%")


if __name__ == "__main__":
    _bench()


# -- malformed values ------------------------------------------------------------------------------------------


def test_a_malformed_value_is_counted_and_the_record_still_matches() -> None:
    # A positive whose process id is beyond 64 bits: once a poison pill, now an alert and a counted drop.
    loop = make_loop()
    good = positive("crowdstrike_fdr")
    doc = orjson.loads(good)
    doc["RawProcessId"] = "1" + "0" * 30
    producer = FakeProducer(configured_max(loop, topic_max=None))
    consumer = run_batches(loop, producer, [messages(CS_TOPIC, [orjson.dumps(doc), good])])
    assert len(producer.on(MATCHES_TOPIC)) == 2 and producer.on(DL_TOPIC) == []
    assert metric(loop, "detector_malformed_values_total", source="crowdstrike_fdr", field="RawProcessId") == 1
    assert consumer.commits == [{(CS_TOPIC, 0): 2}]


# -- records that yield no event are counted -------------------------------------------------------------------


def test_records_without_an_event_are_counted_by_source_and_reason() -> None:
    wlb_topic = "t.winlogbeat"
    loop = make_loop(topics={wlb_topic: "winlogbeat", SYSMON_TOPIC: "windows_sysmon"}, prefilter=False)
    logon = orjson.dumps({"@metadata": {"beat": "winlogbeat"}, "winlog": {"channel": "Security", "event_id": "4624"}})
    odd = orjson.dumps({"@metadata": {"beat": "winlogbeat"}, "message": "no winlog"})
    producer = FakeProducer()
    run_batches(loop, producer, [messages(wlb_topic, [logon, logon, odd, positive("winlogbeat")])])
    name = "detector_records_without_event_total"
    assert metric(loop, name, source="winlogbeat", reason="not_covered") == 2
    assert metric(loop, name, source="winlogbeat", reason="shape_not_understood") == 1
    assert metric(loop, "detector_records_normalized_total", source="winlogbeat") == 4
    assert not [s for s in producer.delivered + [p for p, _ in producer.pending] if s.t == DL_TOPIC]


def test_the_ingest_producer_is_idempotent_acks_all_bounded_and_creates_no_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configs: dict[str, dict[str, Any]] = {}

    class Stop(Exception):
        pass

    class Client:
        def __init__(self, conf: dict[str, Any]) -> None:
            configs["consumer" if "group.id" in conf else "producer"] = conf

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            raise Stop

        def flush(self, timeout: float) -> int:
            return 0

        def close(self) -> None:
            pass

    monkeypatch.setattr("detector.stream.ingest.Consumer", Client)
    monkeypatch.setattr("detector.stream.ingest.Producer", Client)
    monkeypatch.setattr("detector.stream.ingest.topic_max_message_bytes", lambda conf, topic: None)
    with pytest.raises(Stop):
        make_loop()._run()
    producer = configs["producer"]
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True
    assert producer["allow.auto.create.topics"] is False
    assert producer["queue.buffering.max.kbytes"] == 64 * 1024
    assert configs["consumer"]["enable.auto.commit"] is False
