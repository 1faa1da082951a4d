"""Checking that Kafka answers with the configured credentials, and creating the worker's topics when they
are missing (never altering existing ones)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from detector.stream.config import WorkerConfig

log = logging.getLogger("detector.topics")


def worker_topics(cfg: WorkerConfig, include_inputs: bool) -> list[str]:
    names = [cfg.alerts_topic, cfg.deadletter_topic, cfg.matches_topic]
    if include_inputs:
        names += list(cfg.topics)
    return names


# librdkafka errors that retrying cannot mend: wrong credentials, a mechanism the broker does not offer, a
# certificate that does not verify. librdkafka retries them for ever (and logs each attempt); at start-up
# they end the command at once, with librdkafka's own reason.
_FATAL_AT_START = {
    KafkaError._AUTHENTICATION: "authentication failed",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed",
    KafkaError._SSL: "TLS handshake failed",
    KafkaError.UNSUPPORTED_SASL_MECHANISM: "authentication failed",
    KafkaError.ILLEGAL_SASL_STATE: "authentication failed",
}
_CHECK_STEP_S = 0.5


def connect(cfg: WorkerConfig, timeout: float = 30.0) -> tuple[AdminClient, Any]:
    """An admin client and the cluster's metadata (ClusterMetadata), or ConnectionError with a one-line reason.

    Wrong credentials or an untrusted certificate fail as soon as the broker says so (well under a second),
    naming it, instead of after `timeout` as "Broker transport failure".
    """
    errors: list[KafkaError] = []
    # log_level 0: the reason is in our error, not in a line on stderr per retry.
    conf: dict[str, Any] = {**cfg.kafka_client_config(), "error_cb": errors.append, "log_level": 0}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    while True:
        step = min(_CHECK_STEP_S, max(deadline - time.monotonic(), 0.01))
        try:
            return admin, admin.list_topics(timeout=step)
        except KafkaException as exc:
            last: KafkaError | str = exc.args[0] if exc.args else str(exc)
        admin.poll(0)  # serves error_cb
        for err in errors:
            what = _FATAL_AT_START.get(err.code())
            if what is not None:
                raise ConnectionError(f"Kafka at {cfg.bootstrap_servers}: {what} ({_credentials(cfg)}): {err.str()}")
        if time.monotonic() >= deadline:
            reason = errors[-1].str() if errors else (last.str() if isinstance(last, KafkaError) else last)
            raise ConnectionError(f"cannot reach Kafka at {cfg.bootstrap_servers} within {timeout:.0f} s: {reason}")


def _credentials(cfg: WorkerConfig) -> str:
    """What the client presented, for the error message (never the password)."""
    if cfg.security_protocol.startswith("SASL"):
        return f"{cfg.security_protocol}, {cfg.sasl_mechanism} as user {cfg.sasl_username!r}"
    return cfg.security_protocol


def ensure_topics(
    cfg: WorkerConfig, names: Iterable[str], timeout: float = 30.0, compacted: Iterable[str] = ()
) -> list[str]:
    """Create those of `names` and `compacted` (`cleanup.policy=compact`: Faust table changelogs) that do not
    exist; returns the ones created."""
    admin, metadata = connect(cfg, timeout)
    existing = set(metadata.topics)
    compact = set(compacted)
    wanted = [n for n in dict.fromkeys([*names, *compacted]) if n not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                n,
                num_partitions=cfg.topic_partitions,
                replication_factor=cfg.topic_replication,
                config={"cleanup.policy": "compact"} if n in compact else {},
            )
            for n in wanted
        ],
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
    _await_visible(admin, created, timeout)
    return created


def _await_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker's metadata lists each new topic with a leader for every partition.

    A created topic reaches the broker's metadata cache a moment after the controller commits it. A Faust
    consumer that joins its group in that moment is told the topic is missing, is assigned nothing from it,
    and looks again only at its next metadata refresh, minutes later: the agents would sit idle. Seen on a
    loaded machine; waiting here costs milliseconds.
    """
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        for name in list(pending):
            topic = metadata.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and topic.partitions
                and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())
            ):
                pending.discard(name)
        if pending:
            time.sleep(0.1)
    if pending:
        log.warning("topics %s were created but are not in the broker's metadata yet", sorted(pending))
