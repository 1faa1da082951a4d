"""Backpressure on the real broker: an output topic that refuses writes stops consumption, memory stays
bounded, and when the fault is lifted the worker resumes by itself with nothing lost.

The fault: the dead-letter topic is deleted while records that must be dead-lettered keep arriving, then
created again. With the broker's topic auto-creation off (production practice) or the producer not allowed to
create topics (the worker's `allow.auto.create.topics=false`), every dead letter is refused until an operator
recreates the topic: a realistic "topic refusing writes" that other clients (this test's own producer) do not
share. Kafka 4 cannot do it with min.insync.replicas on this one-broker cluster (a min.insync.replicas above
the replication factor no longer refuses acks=all writes), there is no authorizer for an ACL, and a producer
quota only slows writes. It runs on its own broker (deploy/kafka/kafka.sh on 193xx ports), started here if none
answers there.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.harness import (
    REPO,
    Namespace,
    Reader,
    WorkerProcess,
    alerts_only,
    committed_offsets,
    create_topics,
    end_offsets,
)
from tests.integration.test_worker import create_large_message_topics, expected_alert_ids, produce_large
from tools.synth import generate

pytestmark = pytest.mark.kafka

PORT = int(os.environ.get("DETECTOR_BACKPRESSURE_KAFKA_PORT", "19392"))
BOOTSTRAP = f"127.0.0.1:{PORT}"
SOURCE = "windows_sysmon"
PAD_BYTES = 100_000  # benign records of 100 KB: 60 MB arrive while the worker is paused
PADDED_RECORDS = 600
RSS_GROWTH_MAX_KB = 24 * 1024


def _port_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def own_broker() -> Iterator[str]:
    if _port_open():
        yield BOOTSTRAP
        return
    state = tempfile.mkdtemp(prefix="detector-backpressure-kafka-")
    env = {**os.environ, "KAFKA_PORT": str(PORT), "KAFKA_CONTROLLER_PORT": str(PORT + 1), "KAFKA_STATE": state}
    script = str(REPO / "deploy" / "kafka" / "kafka.sh")
    res = subprocess.run([script, "up"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"could not start the broker on {BOOTSTRAP}:\n{res.stdout}\n{res.stderr}")
    try:
        yield BOOTSTRAP
    finally:
        subprocess.run([script, "down", "--wipe"], env=env, capture_output=True, text=True)


def _rss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1))  # type: ignore[union-attr]


def _metric(worker: WorkerProcess, name: str) -> float:
    total = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait(predicate, timeout: float, what: str, worker: WorkerProcess) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert worker.proc.poll() is None, f"worker exited:\n{worker.log()}"
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{worker.log()}")


def _delete_topic(admin: AdminClient, topic: str) -> None:
    for fut in admin.delete_topics([topic], operation_timeout=30).values():
        fut.result()
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)


def _create_topic(admin: AdminClient, topic: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # a topic just deleted can take a moment to be gone for good
        try:
            for fut in admin.create_topics([NewTopic(topic, 4, 1)], operation_timeout=30).values():
                fut.result()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_refusing_output_topic_pauses_consumption_bounded_then_resumes_losing_nothing(
    own_broker: str, tmp_path: Path
) -> None:
    bootstrap = own_broker
    ns = Namespace()
    create_large_message_topics(bootstrap, [ns.topic(s) for s in [SOURCE]])
    create_topics(bootstrap, [ns.alerts, ns.deadletter, ns.matches])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = ns.topic(SOURCE)
    env = ns.env(bootstrap, DETECTOR_MAX_SIGNALS="0", DETECTOR_TOPICS=f"{topic}={SOURCE}")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        # The fault: the dead-letter topic is gone (and the worker's producer may not create it).
        _delete_topic(admin, ns.deadletter)

        gen = list(generate(400, seed=7, netsupport_rate=0.05, malformed_rate=0.05, sources=[SOURCE]))
        bad = [g for g in gen if g.kind == "malformed"]
        assert bad and any(g.expect_alert for g in gen)
        produce_large(bootstrap, topic, [g.raw for g in gen])
        expected = set(expected_alert_ids([(SOURCE, g.raw) for g in gen]))
        assert expected

        _wait(lambda: _metric(worker, "detector_ingest_paused") == 1, 60, "the ingest consumer to pause", worker)
        status, body = worker.get("/readyz")
        assert status == 503 and orjson.loads(body)["ingest_paused"] is True
        committed = committed_offsets(bootstrap, ns.group, topic)
        rss_before = _rss_kb(worker.proc.pid)

        # Records keep arriving (60 MB): none is consumed, none is buffered.
        pad = orjson.dumps({"Image": "C:\\Windows\\explorer.exe", "pad": "x" * PAD_BYTES})
        produce_large(bootstrap, topic, [pad] * PADDED_RECORDS)
        time.sleep(5)
        assert committed_offsets(bootstrap, ns.group, topic) == committed  # consumption stopped
        assert sum(end_offsets(bootstrap, topic)) == len(gen) + PADDED_RECORDS > sum(max(o, 0) for o in committed)
        rss_after = _rss_kb(worker.proc.pid)
        assert rss_after - rss_before < RSS_GROWTH_MAX_KB, (rss_before, rss_after)
        assert worker.proc.poll() is None  # neither dead nor kicked out: still paused, still in the group
        assert _metric(worker, "detector_ingest_paused") == 1

        # Lift the fault: the operator recreates the topic; the worker resumes by itself.
        _create_topic(admin, ns.deadletter)
        ends = end_offsets(bootstrap, topic)
        _wait(
            lambda: committed_offsets(bootstrap, ns.group, topic) == ends,
            60,
            "every record to be committed",
            worker,
        )
        assert _metric(worker, "detector_ingest_paused") == 0
        assert _metric(worker, "detector_backpressure_seconds_total") > 5
        status, _ = worker.get("/readyz")
        assert status == 200

        # Nothing lost: every dead letter (by its source offset; a refused one may have been sent twice) and
        # every alert.
        dead = Reader(bootstrap, ns.deadletter)

        def letters(messages: list) -> set[tuple[int, int]]:  # type: ignore[type-arg]
            return {
                (int(m.headers["detector.source_partition"]), int(m.headers["detector.source_offset"]))
                for m in messages
            }

        dead.wait_for(lambda m: len(letters(m)) >= len(bad), 30, f"{len(bad)} dead letters")
        for g in bad:  # each malformed record's dead letter: its bytes, or (cut) their start and digest
            assert any(
                m.value == g.raw or ("detector.truncated" in m.headers and g.raw.startswith(m.value))
                for m in dead.messages
            )
        alerts = Reader(bootstrap, ns.alerts)
        alerts.wait_for(
            lambda m: {d["kibana.alert.uuid"] for d in alerts_only(m)} >= expected, 30, f"{len(expected)} alerts"
        )
        assert {d["kibana.alert.uuid"] for d in alerts_only(alerts.messages)} == expected
        dead.close()
        alerts.close()
        log = worker.log_path.read_text(errors="replace")
        assert log.count("ingest consumer paused") == 1 and log.count("ingest consumer resumed") == 1
        assert worker.terminate() == 0
    finally:
        worker.stop_quietly()
