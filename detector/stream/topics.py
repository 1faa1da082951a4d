"""Creating the worker's topics when they are missing (never altering existing ones)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from detector.stream.config import WorkerConfig

log = logging.getLogger("detector.topics")


def worker_topics(cfg: WorkerConfig, include_inputs: bool) -> list[str]:
    names = [cfg.alerts_topic, cfg.deadletter_topic, cfg.matches_topic]
    if include_inputs:
        names += list(cfg.topics)
    return names


def ensure_topics(cfg: WorkerConfig, names: Iterable[str], timeout: float = 30.0) -> list[str]:
    """Create those of `names` that do not exist; returns the ones created."""
    admin = AdminClient(cfg.kafka_client_config())
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {cfg.bootstrap_servers}: {exc}") from None
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=cfg.topic_partitions, replication_factor=cfg.topic_replication) for n in wanted],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "code", lambda: None)() == 36:  # TOPIC_ALREADY_EXISTS: a race
                continue
            raise
    log.info("created topics %s", created)
    return created
