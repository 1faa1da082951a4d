"""`detector replay`: produce raw records from files onto the source topics, bytes as they are.

Lines are sent without being parsed (so malformed records can be replayed too) when the source or
the topic is given; otherwise each record is parsed only to detect its source and pick its topic.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from confluent_kafka import KafkaError, Message, Producer
from tqdm import tqdm

from detector.engine import DEFAULT_MAX_RECORD_BYTES
from detector.inputs import InputError, OnOversized, display_name, iter_records
from detector.sources import detect_source
from detector.stream.config import WorkerConfig, input_topic


@dataclass
class ReplayResult:
    sent: Counter[str] = field(default_factory=Counter)  # per topic
    skipped: list[str] = field(default_factory=list)  # "file:line: reason" for records not sent
    failed: list[str] = field(default_factory=list)  # delivery errors
    damaged: list[str] = field(default_factory=list)  # inputs that broke off part-way (sent up to the damage)
    seconds: float = 0.0

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


def _topic_for(data: bytes, source: str | None, topic: str | None) -> tuple[str | None, str]:
    if topic:
        return topic, ""
    if source:
        return input_topic(source), ""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, "not JSON, so its source cannot be detected (give --source or --topic)"
    detected = detect_source(record) if isinstance(record, dict) else None
    if detected is None:
        return None, "no known source detected (give --source or --topic)"
    return input_topic(detected), ""


def _skip_oversized(result: ReplayResult, name: str) -> OnOversized:
    # Kafka's default message size limit is about 1 MB too: such a record would not be accepted anyway.
    def report(number: int, size: int) -> None:
        result.skipped.append(
            f"{name}:{number}: record is {size} bytes, over the {DEFAULT_MAX_RECORD_BYTES}-byte limit"
        )

    return report


def replay(
    cfg: WorkerConfig,
    files: list[str],
    *,
    source: str | None = None,
    topic: str | None = None,
    rate: float = 0.0,
    progress: bool = True,
) -> ReplayResult:
    result = ReplayResult()
    producer = Producer({**cfg.kafka_client_config(), "acks": "all", "linger.ms": 5, "enable.idempotence": True})

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            result.failed.append(f"{msg.topic()}: {err}")

    bar = tqdm(unit=" rec", file=sys.stderr, desc="replay", disable=not (progress and sys.stderr.isatty()))
    started = time.perf_counter()
    n = 0
    try:
        for path in files:
            name = display_name(path)
            records = iter_records(path, on_oversized=_skip_oversized(result, name))
            try:
                for lineno, line in records:
                    data = line.rstrip(b"\r\n")  # the record's bytes as they are, without the file's line end
                    target, why = _topic_for(data, source, topic)
                    if target is None:
                        result.skipped.append(f"{name}:{lineno}: {why}")
                        continue
                    if rate > 0:
                        # Pace against the start time, not per message, so the average rate holds.
                        delay = started + n / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    while True:
                        try:
                            producer.produce(target, value=data, on_delivery=on_delivery)
                            break
                        except BufferError:
                            producer.poll(0.1)  # local queue full: wait for deliveries
                    producer.poll(0)
                    result.sent[target] += 1
                    n += 1
                    bar.update(1)
            except InputError as exc:
                result.damaged.append(str(exc))  # what came before the damage was sent; go on to the next file
    finally:
        remaining = producer.flush(60)
        if remaining:
            result.failed.append(f"{remaining} message(s) not acknowledged within 60 s")
        bar.close()
        result.seconds = time.perf_counter() - started
    return result
