"""`detector worker` on the real broker with hostile and messy input: records too large for a dead letter,
a dead-letter topic that takes little, and topics that carry something other than their source's data."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from detector.engine import Engine
from detector.rules.model import load_rules
from tests.integration.harness import (
    Namespace,
    Reader,
    WorkerProcess,
    alerts_only,
    committed_offsets,
    create_topics,
    end_offsets,
)
from tests.integration.test_worker import create_large_message_topics, produce_large
from tools.synth import generate

pytestmark = pytest.mark.kafka

FULL = Engine(load_rules(), use_prefilter=False)
PREFILTER = Engine(load_rules())
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
DEFAULT_DEADLETTER_MAX = 512 * 1024


def positive(source: str) -> bytes:
    raw = (FIXTURES / source / "positives.ndjson").read_bytes().splitlines()[0]
    assert FULL.process(raw, source).alerts
    return raw


def benign(source: str, n: int, seed: int) -> list[bytes]:
    """Valid records of `source` that the prefilter skips unparsed."""
    out = [
        g.raw
        for g in generate(n * 2, seed=seed, netsupport_rate=0.0, near_miss_rate=0.0, sources=[source])
        if PREFILTER.process(g.raw, source).prefiltered and FULL.process(g.raw, source).rejection is None
    ]
    assert len(out) >= n
    return out[:n]


def huge_crowdstrike_record(size: int) -> bytes:
    """A CrowdStrike record with a command line of `size` bytes: over any default message limit."""
    record = orjson.loads(positive("crowdstrike_fdr"))
    record["CommandLine"] = "client32.exe " + "QUFB" * (size // 4)
    return orjson.dumps(record)


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label text: value} of one metric in a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            out[labels] = float(value)
    return out


def test_a_3mb_record_becomes_a_cut_dead_letter_and_the_stream_goes_on(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = Namespace()
    topic = ns.topic("crowdstrike_fdr")
    create_large_message_topics(kafka_bootstrap, [topic], partitions=1)
    create_topics(kafka_bootstrap, [ns.alerts, ns.deadletter, ns.matches])
    huge = huge_crowdstrike_record(3 << 20)
    after = positive("crowdstrike_fdr")
    # One partition: the positive is behind the huge record, so it is processed only if the worker got past it.
    produce_large(kafka_bootstrap, topic, [huge, after])
    env = ns.env(kafka_bootstrap, DETECTOR_TOPICS=f"{topic}=crowdstrike_fdr", DETECTOR_MAX_SIGNALS="0")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    alerts, dead = Reader(kafka_bootstrap, ns.alerts), Reader(kafka_bootstrap, ns.deadletter)
    try:
        worker.wait_ready()
        dead.wait_for(lambda m: len(m) >= 1, 60, "the dead letter")
        expected = [a["kibana.alert.uuid"] for a in FULL.process(after, "crowdstrike_fdr").alerts]
        alerts.wait_for(lambda m: len(alerts_only(m)) >= 1, 60, "the alert of the record after the huge one")
        alerts.poll(2.0)
        dead.poll(1.0)
        assert [d["kibana.alert.uuid"] for d in alerts_only(alerts.messages)] == expected
        (letter,) = dead.messages
        h = letter.headers
        assert h["detector.reason"] == b"too_large"
        assert h["detector.truncated"] == b"true"
        assert int(h["detector.original_size"]) == len(huge) > 3 << 20
        assert h["detector.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
        assert (
            huge.startswith(letter.value) and DEFAULT_DEADLETTER_MAX - 8192 < len(letter.value) < DEFAULT_DEADLETTER_MAX
        )
        assert h["detector.source_topic"] == topic.encode() and h["detector.source_offset"] == b"0"
        metrics = worker.metrics()
        assert "detector_deadletters_truncated_total 1.0" in metrics
        assert worker.get("/readyz")[0] == 200
    finally:
        code = worker.terminate()
        alerts.close()
        dead.close()
    assert code == 0, worker.log()
    assert end_offsets(kafka_bootstrap, topic, partitions=1) == [2]
    assert committed_offsets(kafka_bootstrap, ns.group, topic, partitions=1) == [2]


def test_a_dead_letter_topic_that_takes_64kb_still_gets_every_dead_letter(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = Namespace()
    topic = ns.topic("crowdstrike_fdr")
    limit = 64 * 1024
    create_large_message_topics(kafka_bootstrap, [topic], partitions=1)
    create_topics(kafka_bootstrap, [ns.alerts, ns.matches])
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    new = NewTopic(ns.deadletter, num_partitions=1, replication_factor=1, config={"max.message.bytes": str(limit)})
    admin.create_topics([new])[ns.deadletter].result()
    # Consecutive bad records, several far over 64 KB: in one consume batch, so that dead letters that each
    # fit must also not be sent together in one record batch over the topic's limit.
    bad = [
        huge_crowdstrike_record(3 << 20),  # too_large
        b"{" + b"x" * 200_000,  # not_json
        b"[" + b"1," * 100_000 + b"1]",  # not_object
        orjson.dumps({"k" * 100_000: "client32.exe"}),  # unknown_source, its detail quoting an attacker-sized key
        b"not json, but small",
    ]
    after = positive("crowdstrike_fdr")
    produce_large(kafka_bootstrap, topic, [*bad, after])
    env = ns.env(kafka_bootstrap, DETECTOR_TOPICS=f"{topic}=crowdstrike_fdr", DETECTOR_MAX_SIGNALS="0")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    alerts, dead = Reader(kafka_bootstrap, ns.alerts), Reader(kafka_bootstrap, ns.deadletter)
    try:
        worker.wait_ready()
        dead.wait_for(lambda m: len(m) >= len(bad), 60, f"{len(bad)} dead letters")
        alerts.wait_for(lambda m: len(alerts_only(m)) >= 1, 60, "the alert after the bad records")
        dead.poll(1.0)
        assert len(dead.messages) == len(bad)
        by_offset = {int(m.headers["detector.source_offset"]): m for m in dead.messages}
        assert sorted(by_offset) == list(range(len(bad)))
        reasons = [by_offset[i].headers["detector.reason"].decode() for i in range(len(bad))]
        assert reasons == ["too_large", "not_json", "not_object", "unknown_source", "not_json"]
        for i, raw in enumerate(bad):
            m = by_offset[i]
            size = len(m.value) + sum(len(k) + len(v) for k, v in m.headers.items())
            assert size < limit
            assert len(m.headers["detector.detail"]) <= 1024
            if len(raw) > limit:
                assert m.headers["detector.truncated"] == b"true"
                assert m.headers["detector.original_sha256"] == hashlib.sha256(raw).hexdigest().encode()
                assert raw.startswith(m.value) and len(m.value) > limit // 2
            else:
                assert m.value == raw and "detector.truncated" not in m.headers
    finally:
        code = worker.terminate()
        alerts.close()
        dead.close()
    assert code == 0, worker.log()
    # The bound came from the topic's configuration, so no batch was refused and nothing was sent twice.
    assert re.search(rf"dead letters bounded to {limit - 512} bytes", worker.log())
    assert "refused" not in worker.log()


def test_a_misrouted_topic_is_noticed_and_a_correct_one_samples_ok(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = Namespace()
    # telemetry.crowdstrike_fdr is fed Sysmon records; telemetry.windows_sysmon is fed the same, correctly.
    wrong, right = ns.topic("crowdstrike_fdr"), ns.topic("windows_sysmon")
    create_topics(kafka_bootstrap, [wrong, right, ns.alerts, ns.deadletter, ns.matches])
    env = ns.env(kafka_bootstrap, DETECTOR_TOPICS=f"{wrong}=crowdstrike_fdr,{right}=windows_sysmon")
    records = benign("windows_sysmon", 3000, seed=5)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    dead = Reader(kafka_bootstrap, ns.deadletter)
    try:
        worker.wait_ready()
        # A steady trickle over about 4 s, as a live topic: the defaults (every 2000th record, and at least
        # one per topic per second) pick samples by count and by time.
        chunks = [records[i : i + 750] for i in range(0, len(records), 750)]
        started = time.monotonic()
        for n, chunk in enumerate(chunks):
            produce_large(kafka_bootstrap, wrong, chunk)
            produce_large(kafka_bootstrap, right, chunk)
            if n == 0:
                dead.wait_for(lambda m: len(m) >= 1, 15, "the first dead letter of a validation sample")
                noticed_after = time.monotonic() - started
            time.sleep(1.0)
        dead.wait_for(lambda m: len(m) >= 3, 30, "dead letters of validation samples")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # every record consumed, so the counts below are final
            consumed = metric_values(worker.metrics(), "detector_records_consumed_total")
            if sum(consumed.values()) >= 2 * len(records):
                break
            time.sleep(0.5)
        dead.poll(1.0)
        validated = metric_values(worker.metrics(), "detector_records_validated_total")
        on_wrong = {k: v for k, v in validated.items() if f'topic="{wrong}"' in k}
        on_right = {k: v for k, v in validated.items() if f'topic="{right}"' in k}
        # 3000 records a topic over about 4 s: about one sample a second by time, one or two by count.
        assert 3 <= len(dead.messages) <= 15
        assert on_wrong == {f'result="unknown_source",source="crowdstrike_fdr",topic="{wrong}"': len(dead.messages)}
        (ok_label,) = on_right
        assert ok_label == f'result="ok",source="windows_sysmon",topic="{right}"' and on_right[ok_label] >= 3
        for m in dead.messages:
            h = m.headers
            assert h["detector.source_topic"] == wrong.encode()
            assert h["detector.reason"] == b"unknown_source"
            assert h["detector.validation_sample"] == b"true"
            assert b"does not look like crowdstrike_fdr" in h["detector.detail"]
            assert m.value in records
        assert noticed_after < 5, f"the first dead letter took {noticed_after:.1f} s"
    finally:
        code = worker.terminate()
        dead.close()
    assert code == 0, worker.log()
