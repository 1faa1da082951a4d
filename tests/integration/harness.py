"""Running real `detector worker` processes against the real broker, and reading what they publish."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from detector.sources import SOURCES

REPO = Path(__file__).resolve().parents[2]
TEST_PREFIX = "it"  # every topic a test creates starts with it + 10 hex digits: conftest deletes them at the end
# The namespaces of this session, whose topics the session deletes when it ends: a broker kept between runs
# otherwise collects thousands of partitions (10,800 after many runs), which lengthened its latency tails.
CREATED_PREFIXES: list[str] = []


def new_prefix() -> str:
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:10]}"
    CREATED_PREFIXES.append(prefix)
    return prefix


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Namespace:
    """Unique topic and group names, so tests never see each other's data."""

    prefix: str = field(default_factory=new_prefix)

    def topic(self, source: str) -> str:
        return f"{self.prefix}.telemetry.{source}"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def matches(self) -> str:
        return f"{self.prefix}.matches"

    @property
    def group(self) -> str:
        return f"{self.prefix}-group"

    def topics_setting(self, sources: Iterable[str] = SOURCES) -> str:
        return ",".join(f"{self.topic(s)}={s}" for s in sources)

    def env(self, bootstrap: str, **extra: str) -> dict[str, str]:
        return {
            "DETECTOR_BOOTSTRAP_SERVERS": bootstrap,
            "DETECTOR_CONSUMER_GROUP": self.group,
            "DETECTOR_TOPICS": self.topics_setting(),
            "DETECTOR_ALERTS_TOPIC": self.alerts,
            "DETECTOR_DEADLETTER_TOPIC": self.deadletter,
            "DETECTOR_MATCHES_TOPIC": self.matches,
            **extra,
        }


def delete_session_topics(bootstrap: str) -> int:
    """Delete the topics of this session's namespaces (the Faust apps' own are named after their group, which
    carries the prefix); how many went."""
    if not CREATED_PREFIXES:
        return 0
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(tuple(CREATED_PREFIXES))]
    for fut in admin.delete_topics(names, operation_timeout=60).values() if names else ():
        with contextlib.suppress(KafkaException):  # deleted meanwhile by its own test: nothing to clean
            fut.result()
    return len(names)


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
    if new:
        for fut in admin.create_topics(new, operation_timeout=30).values():
            fut.result()


def produce(bootstrap: str, topic: str, values: Iterable[bytes], partition: int | None = None) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    n = 0
    for v in values:
        if partition is None:
            producer.produce(topic, value=v)
        else:
            producer.produce(topic, value=v, partition=partition)
        n += 1
        if n % 10000 == 0:
            producer.flush()
    assert producer.flush(30) == 0
    return n


@dataclass
class Received:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    timestamp_ms: int

    def json(self) -> Any:
        return orjson.loads(self.value)


class Reader:
    """Reads a topic from the beginning, accumulating everything seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.messages: list[Received] = []

    def poll(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for m in self.consumer.consume(num_messages=1000, timeout=0.2):
                if m.error() is None:
                    self.messages.append(
                        Received(
                            m.key(),
                            m.value() or b"",
                            {k: v for k, v in (m.headers() or [])},
                            m.partition(),
                            m.timestamp()[1],
                        )
                    )

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float, what: str) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.5)
            if predicate(self.messages):
                return self.messages
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; got {len(self.messages)} messages")

    def close(self) -> None:
        self.consumer.close()


def alerts_only(messages: list[Received]) -> list[dict[str, Any]]:
    docs = [m.json() for m in messages]
    return [d for d in docs if d.get("detector.record_type") != "suppression"]


def suppressions(messages: list[Received]) -> list[dict[str, Any]]:
    return [d for d in (m.json() for m in messages) if d.get("detector.record_type") == "suppression"]


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        full_env = {**os.environ, **env, "DETECTOR_HTTP_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector.cli.main", "worker", *(args or [])],
            env=full_env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.get("/readyz")
                if status == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout:.0f} s:\n{self.log()}")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body.decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._log.closed:
            self._log.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int = 4) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int = 4) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"offsets-{uuid.uuid4().hex}"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        c.close()
