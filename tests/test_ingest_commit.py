"""The ingest loop when the broker goes away: its commit on revocation, and partitions assigned after backpressure.

Found by bench/faults.py: a broker restart revokes the ingest consumer's partitions, and its commit there failed with
NOT_COORDINATOR, which killed the worker (exit 70). Nothing is lost either way (offsets stay at the last commit, the
records after it are re-read with the same alert ids), so a coordinator that is away must not cost a worker restart;
an error that no waiting fixes (e.g. no authorisation) still stops it.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from detector.engine import Engine
from detector.metrics import Metrics
from detector.rules.model import load_rules
from detector.stream.config import WorkerConfig
from detector.stream.ingest import IngestLoop

TOPIC = "t.crowdstrike"


class RefusingConsumer:
    def __init__(self, code: int) -> None:
        self.code = code

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        raise KafkaException(KafkaError(self.code))


def loop() -> IngestLoop:
    cfg = WorkerConfig(topics={TOPIC: "crowdstrike_fdr"})
    lp = IngestLoop(cfg, Engine(load_rules()), Metrics(), lambda exc: None)
    lp._positions[(TOPIC, 0)] = 42
    lp._assignment.add((TOPIC, 0))
    return lp


def skipped(lp: IngestLoop) -> float:
    return lp.metrics.registry.get_sample_value("detector_ingest_commits_skipped_total") or 0.0


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    ],
)
def test_a_revocation_while_the_coordinator_is_away_skips_the_commit(code: int) -> None:
    lp = loop()
    lp._on_revoke(RefusingConsumer(code), [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    assert skipped(lp) == 1 and not lp._assignment and not lp._positions


def test_a_commit_refused_for_good_still_raises() -> None:
    lp = loop()
    with pytest.raises(KafkaException):
        lp._on_revoke(RefusingConsumer(KafkaError.GROUP_AUTHORIZATION_FAILED), [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]


class AssigningConsumer:
    def __init__(self) -> None:
        self.resumed: list[TopicPartition] = []

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed += partitions


def test_partitions_assigned_again_after_backpressure_ended_are_resumed() -> None:
    # Also found by bench/faults.py: paused while the broker was down, revoked, resumed with an empty assignment,
    # then assigned the same partitions again: librdkafka kept them paused and the worker consumed nothing more.
    lp, consumer, tps = loop(), AssigningConsumer(), [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
    lp._on_assign(consumer, tps)  # type: ignore[arg-type]
    assert consumer.resumed == tps
    lp._paused_since, consumer.resumed = 1.0, []  # backpressure on: new partitions stay paused with the rest
    lp._on_assign(consumer, tps)  # type: ignore[arg-type]
    assert consumer.resumed == []
