"""Pipelined commits: the ingest loop reads the next batch while the previous batches' outputs are in flight.

What must hold (at-least-once): a batch's offsets are committed only once everything it produced is
acknowledged, and only after every earlier batch's offsets; no more than MAX_PENDING_BATCHES wait at once;
on revocation, what is acknowledged is committed and what is not is left to the new owner. Matches held while
catching up count as their batch's outputs, go out in order, and go out before the loop waits or stops.
The kill tests (tests/integration/test_faults.py) prove the same on the real broker.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from confluent_kafka import TopicPartition

from detector.stream import ingest
from detector.stream.ingest import MATCH_HOLD_BATCHES, MAX_PENDING_BATCHES, IngestLoop
from tests.test_ingest_hostile import (
    CS_TOPIC,
    DL_TOPIC,
    MATCHES_TOPIC,
    FakeConsumer,
    FakeMessage,
    FakeProducer,
    Sent,
    benign,
    make_loop,
    messages,
    positive,
    run_batches,
)


def held_producer() -> FakeProducer:
    producer = FakeProducer()
    producer.hold_acks = True  # poll() reports nothing: the broker's acknowledgements are slower than the loop
    return producer


def step(loop: IngestLoop, consumer: FakeConsumer, producer: FakeProducer, batch: list[FakeMessage]) -> None:
    loop._process_batch(consumer, producer, batch)  # type: ignore[arg-type]


def test_the_next_batch_is_read_before_the_previous_ones_outputs_are_acknowledged() -> None:
    loop, consumer, producer = make_loop(), FakeConsumer(), held_producer()
    step(loop, consumer, producer, messages(CS_TOPIC, [b"not json"], start=0))  # one dead letter, in flight
    step(loop, consumer, producer, messages(CS_TOPIC, [benign("crowdstrike_fdr")] * 3, start=1))
    # The second batch produced nothing, but the first is unacknowledged: nothing may be committed yet.
    assert consumer.commits == [] and len(producer.pending) == 1 and producer.delivered == []
    producer.flush()  # the broker acknowledges
    loop._settle(consumer, producer)  # type: ignore[arg-type]
    assert [d.v for d in producer.on(DL_TOPIC)] == [b"not json"]
    assert consumer.commits == [{(CS_TOPIC, 0): 4}]  # both batches, in one commit, up to the last record


def test_a_batch_without_outputs_is_committed_at_once() -> None:
    loop, consumer, producer = make_loop(), FakeConsumer(), held_producer()
    step(loop, consumer, producer, messages(CS_TOPIC, [benign("crowdstrike_fdr")] * 2))
    assert consumer.commits == [{(CS_TOPIC, 0): 2}]


class SlowAcks(FakeProducer):
    """Acknowledges everything in flight on every `every`-th poll only."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.hold_acks = True
        self.every = every
        self.most_in_flight = 0

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        self.most_in_flight = max(self.most_in_flight, len(self.pending))
        if self.polls % self.every == 0:
            self.flush()
        return 0


def test_no_more_than_max_pending_batches_wait_and_commits_stay_in_order() -> None:
    loop, consumer, producer = make_loop(), FakeConsumer(), SlowAcks(every=7)
    offset = 0
    for _ in range(40):
        step(loop, consumer, producer, messages(CS_TOPIC, [b"not json", benign("crowdstrike_fdr")], start=offset))
        offset += 2
        assert len(loop._pending) <= MAX_PENDING_BATCHES
    producer.flush()
    loop._settle(consumer, producer)  # type: ignore[arg-type]
    committed = [c[(CS_TOPIC, 0)] for c in consumer.commits]
    assert committed == sorted(committed) and committed[-1] == offset  # in order, and all of it in the end
    assert len(producer.on(DL_TOPIC)) == 40
    assert 1 < producer.most_in_flight <= MAX_PENDING_BATCHES + 1  # overlapped, and bounded


def test_every_commit_covers_only_acknowledged_batches() -> None:
    # A commit at offset o means every dead letter of the records before o was acknowledged when it was made.
    loop, consumer, producer = make_loop(), FakeConsumer(), SlowAcks(every=3)
    acked_when: list[int] = []

    def commit(offsets: list[Any], asynchronous: bool) -> None:
        acked_when.append(len(producer.on(DL_TOPIC)))
        FakeConsumer.commit(consumer, offsets, asynchronous)

    consumer.commit = commit  # type: ignore[method-assign]
    for i in range(20):
        step(loop, consumer, producer, messages(CS_TOPIC, [b"not json"], start=i))
    for c, acked in zip(consumer.commits, acked_when, strict=True):
        assert c[(CS_TOPIC, 0)] <= acked  # one dead letter per record: offset n needs n acknowledged


class Revoking(FakeConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.sync_commits: list[dict[tuple[str, int], int]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        (self.commits if asynchronous else self.sync_commits).append(
            {(tp.topic, tp.partition): tp.offset for tp in offsets}
        )


def revocable_loop(producer: FakeProducer, batch_size: int = 2000) -> IngestLoop:
    loop = make_loop(batch_size=batch_size)
    loop._producer = producer  # type: ignore[assignment]
    loop._assignment |= {(CS_TOPIC, 0), (CS_TOPIC, 1)}
    return loop


def test_on_revocation_what_is_acknowledged_is_committed_by_this_worker() -> None:
    producer, consumer = held_producer(), Revoking()
    loop = revocable_loop(producer)
    batch = [FakeMessage(CS_TOPIC, 0, 10, b"not json"), FakeMessage(CS_TOPIC, 1, 20, b"not json")]
    step(loop, consumer, producer, batch)
    assert consumer.commits == []
    loop._on_revoke(consumer, [TopicPartition(CS_TOPIC, 0)])  # type: ignore[arg-type]  # flush acknowledges
    assert consumer.sync_commits == [{(CS_TOPIC, 0): 11}]
    assert consumer.commits == [{(CS_TOPIC, 1): 21}]  # the partition kept: committed too, not left waiting
    assert not loop._pending


def test_on_revocation_what_is_still_unacknowledged_is_left_to_the_new_owner() -> None:
    producer, consumer = held_producer(), Revoking()
    producer.flush = lambda timeout=0: len(producer.pending)  # type: ignore[method-assign]  # the broker is away
    loop = revocable_loop(producer)
    step(loop, consumer, producer, [FakeMessage(CS_TOPIC, 0, 10, b"not json"), FakeMessage(CS_TOPIC, 1, 20, b"x")])
    loop._on_revoke(consumer, [TopicPartition(CS_TOPIC, 0)])  # type: ignore[arg-type]
    assert consumer.sync_commits == [] and consumer.commits == []
    # The batch still waits for its dead letters, but only for the partition this worker keeps.
    assert [b.offsets for b in loop._pending] == [{(CS_TOPIC, 1): 21}]


# -- catching up: matches held over a few batches -------------------------------------------------------------


class FreshMessage(FakeMessage):
    def timestamp(self) -> tuple[int, int]:
        return 1, int(time.time() * 1000)  # written just now: the consumer is not behind


def positives(start: int, n: int, fresh: bool = False) -> list[FakeMessage]:
    cls = FreshMessage if fresh else FakeMessage  # FakeMessage's records are from 2023: far behind
    return [cls(CS_TOPIC, 0, start + i, positive("crowdstrike_fdr")) for i in range(n)]


def origins(sent: list[Sent]) -> list[tuple[bytes | None, int]]:
    """Each match message's key and the offset of the record its alert came from, in the order produced."""
    return [(s.key, orjson.loads(s.v)["alert"]["detector.origin"]["offset"]) for s in sent]


@pytest.fixture
def no_hold_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MATCH_HOLD_S", 3600.0)  # only the batch count releases (a slow machine is no matter)


@pytest.mark.usefixtures("no_hold_timeout")
def test_catching_up_matches_wait_for_the_next_batches_and_go_out_together_in_order() -> None:
    batches = [positives(2 * i, 2) for i in range(MATCH_HOLD_BATCHES)]
    reference = FakeProducer()
    run_batches(make_loop(batch_size=3), reference, batches)  # not full: not behind, nothing held
    expected = origins(reference.on(MATCHES_TOPIC))
    assert len(expected) >= 2 * MATCH_HOLD_BATCHES

    loop, consumer, producer = make_loop(batch_size=2), FakeConsumer(), FakeProducer()  # acknowledges at once
    for batch in batches[:-1]:  # full batches of old records: behind
        step(loop, consumer, producer, batch)
        assert producer.on(MATCHES_TOPIC) == [] and not producer.pending
        assert consumer.commits == []  # their matches are outputs not yet acknowledged
    step(loop, consumer, producer, batches[-1])
    assert origins(producer.on(MATCHES_TOPIC)) == expected
    assert consumer.commits[-1] == {(CS_TOPIC, 0): 2 * MATCH_HOLD_BATCHES}


@pytest.mark.usefixtures("no_hold_timeout")
def test_a_batch_that_is_not_behind_sends_the_held_matches_first() -> None:
    loop, consumer, producer = make_loop(batch_size=2), FakeConsumer(), FakeProducer()
    step(loop, consumer, producer, positives(0, 2))  # behind: held
    assert producer.on(MATCHES_TOPIC) == []
    step(loop, consumer, producer, positives(2, 2, fresh=True))  # full but fresh: not behind
    assert [offset for _key, offset in origins(producer.on(MATCHES_TOPIC))] == [0, 1, 2, 3]
    assert consumer.commits[-1] == {(CS_TOPIC, 0): 4}


def test_held_matches_go_out_after_match_hold_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MATCH_HOLD_S", 0.0)
    loop, consumer, producer = make_loop(batch_size=2), FakeConsumer(), FakeProducer()
    step(loop, consumer, producer, positives(0, 2))
    assert [offset for _key, offset in origins(producer.on(MATCHES_TOPIC))] == [0, 1]
    assert consumer.commits == [{(CS_TOPIC, 0): 2}]


class BoundedSlowAcks(SlowAcks):
    def poll(self, timeout: float = 0) -> int:
        assert self.polls < 10_000, "the loop waits for acknowledgements of messages it never produced"
        return super().poll(timeout)


@pytest.mark.usefixtures("no_hold_timeout")
def test_held_matches_go_out_before_the_loop_waits_for_the_oldest_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # With acknowledgements slower than the loop, the window of batches in flight fills: the oldest batch's
    # held matches must be produced before the loop waits for them, or it would wait for ever. (A hold that
    # outlasts the window, so that only the wait releases them.)
    monkeypatch.setattr(ingest, "MATCH_HOLD_BATCHES", 10**6)
    loop, consumer, producer = make_loop(batch_size=2), FakeConsumer(), BoundedSlowAcks(every=3)
    for i in range(3 * MAX_PENDING_BATCHES):
        step(loop, consumer, producer, positives(2 * i, 2))
        assert len(loop._pending) <= MAX_PENDING_BATCHES
    producer.flush()
    loop._release_matches(producer)  # type: ignore[arg-type]
    producer.flush()
    loop._settle(consumer, producer)  # type: ignore[arg-type]
    offsets = [offset for _key, offset in origins(producer.on(MATCHES_TOPIC))]
    assert sorted(set(offsets)) == list(range(6 * MAX_PENDING_BATCHES)) and offsets == sorted(offsets)
    committed = [c[(CS_TOPIC, 0)] for c in consumer.commits]
    assert committed == sorted(committed) and committed[-1] == 6 * MAX_PENDING_BATCHES


@pytest.mark.usefixtures("no_hold_timeout")
def test_on_revocation_held_matches_go_out_and_are_committed() -> None:
    producer, consumer = FakeProducer(), Revoking()
    producer.hold_acks = True
    loop = revocable_loop(producer, batch_size=2)
    step(loop, consumer, producer, positives(9, 2))
    assert loop._deferred and producer.on(MATCHES_TOPIC) == []
    loop._on_revoke(consumer, [TopicPartition(CS_TOPIC, 0)])  # type: ignore[arg-type]
    assert producer.on(MATCHES_TOPIC) and not loop._deferred
    assert consumer.sync_commits == [{(CS_TOPIC, 0): 11}]
