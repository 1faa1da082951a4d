"""The Faust app of `detector worker`: ingest service, the alert-publishing agent, its cap table, HTTP.

Shape (why: see detector/stream/ingest.py and the README's "Design"):

  telemetry.<source> --(IngestLoop: batched confluent-kafka consumer, prefilter, normalise, evaluate)-->
      detections.deadletter   rejected records, original bytes + reason headers
      detections.matches      rule matches, keyed by rule id (internal)
  detections.matches --(Faust agent `publish_alerts`, cap state in Faust table `alert-windows`)-->
      detections.alerts       alerts keyed by host, and one suppression record per capped window
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
import traceback
from datetime import datetime
from typing import Any

import aiokafka
import faust
import orjson
from mode import Service

from detector.alerts.builder import alert_key
from detector.engine import Engine
from detector.metrics import CONTENT_TYPE, Metrics
from detector.rules.model import Rule, duration_seconds
from detector.stream import cap
from detector.stream.config import WorkerConfig
from detector.stream.ingest import IngestLoop

log = logging.getLogger("detector.worker")

TABLE_NAME = "alert-windows"
FETCH_MAX_WAIT_MS = 50


class _PromptConsumer(aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
    """aiokafka consumer with a short fetch wait.

    faust-streaming hard-codes fetch_max_wait_ms=1500 for its worker consumer; measured here, that put
    the p99 of produce-to-alert at ~1.5 s, because a match can wait out a long poll on the internal topic.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", 500)), FETCH_MAX_WAIT_MS)
        super().__init__(*args, **kwargs)


def _use_prompt_consumer() -> None:
    # Faust looks the class up on the aiokafka module when it creates its consumer.
    if aiokafka.AIOKafkaConsumer is not _PromptConsumer:
        aiokafka.AIOKafkaConsumer = _PromptConsumer


def faust_credentials(cfg: WorkerConfig) -> Any:
    """Faust (aiokafka) credentials matching the librdkafka settings of the ingest side.

    Besides kafka_client_config, the one place secrets are revealed (faust.SASLCredentials' repr omits them).
    """
    context: ssl.SSLContext | None = None
    if cfg.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=cfg.ssl_cafile or None)
        if cfg.ssl_certfile:
            context.load_cert_chain(
                cfg.ssl_certfile, cfg.ssl_keyfile or None, password=cfg.ssl_key_password.reveal() or None
            )
    if cfg.security_protocol.startswith("SASL"):
        password = cfg.sasl_password.reveal()
        if cfg.sasl_mechanism == "PLAIN":
            return faust.SASLCredentials(username=cfg.sasl_username, password=password, ssl_context=context)
        return faust.SASLCredentials(
            username=cfg.sasl_username,
            password=password,
            mechanism=cfg.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


# aiokafka logs every request and response at debug level by its repr, and a SaslAuthenticate request
# carries the PLAIN password in clear (b'\x00user\x00password') or a SCRAM proof.
_SASL_EXCHANGE = "SaslAuthenticate"
# Scrubbing a one- to three-character value out of every message would garble the logs and, by the
# gaps, point at the password; such a password is no protection anyway.
_MIN_SCRUBBED_LEN = 4


def _scrub_arg(arg: Any) -> Any:
    if type(arg).__name__.startswith(_SASL_EXCHANGE):
        return f"<{type(arg).__name__}: redacted>"
    return arg


def install_log_redaction(cfg: WorkerConfig) -> None:
    """Keep the worker's secrets out of every log record created from now on, whoever logs it.

    A record factory rather than a handler filter: Faust (mode) replaces the root logger's handlers when
    the worker starts, and filters on loggers do not see their children's records. librdkafka writes to
    stderr itself, past Python logging; it never prints sasl.password or ssl.key.password.
    """
    needles: list[str] = []
    for secret in (cfg.sasl_password, cfg.ssl_key_password):
        value = secret.reveal()
        if len(value) >= _MIN_SCRUBBED_LEN:
            # also as a str repr (in a logged dict) and a bytes repr (in a protocol struct) escape it
            for needle in (value, repr(value)[1:-1], repr(value.encode())[2:-1]):
                if needle not in needles:
                    needles.append(needle)
    previous = logging.getLogRecordFactory()

    def scrub(text: str) -> str:
        for needle in needles:
            text = text.replace(needle, "***")
        return text

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        if not needles:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging itself reports it, without our help
            return record
        if any(n in message for n in needles):
            record.msg, record.args = scrub(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if any(n in text for n in needles):
                # Formatters use a record's exc_text as it is when set, instead of formatting exc_info.
                record.exc_text = scrub(text)
        return record

    logging.setLogRecordFactory(factory)


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def cap_for(rule: Rule, cfg: WorkerConfig) -> tuple[int, float]:
    limit = rule.max_signals if cfg.max_signals < 0 else cfg.max_signals
    interval = duration_seconds(cfg.cap_interval) if cfg.cap_interval else rule.interval_seconds
    return limit, float(interval)


def create_app(cfg: WorkerConfig, rules: list[Rule], metrics: Metrics) -> faust.App:
    engine = Engine(rules, use_prefilter=cfg.prefilter, max_record_bytes=cfg.max_record_bytes)
    rules_by_id = {r.rule_id: r for r in rules}
    caps = {r.rule_id: cap_for(r, cfg) for r in rules}
    cap_enabled = any(limit > 0 for limit, _ in caps.values())
    metrics.set_rules(rules)
    _use_prompt_consumer()

    app = faust.App(
        f"{cfg.consumer_group}-agents",
        broker=";".join(f"kafka://{h.strip()}" for h in cfg.bootstrap_servers.split(",")),
        broker_credentials=faust_credentials(cfg),
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        web_bind=cfg.http_host,
        web_port=cfg.http_port,
        web_host=cfg.http_host,
        topic_partitions=cfg.topic_partitions,
        topic_replication_factor=cfg.topic_replication,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=cfg.session_timeout,
        broker_heartbeat_interval=max(cfg.session_timeout / 3, 0.1),
    )
    matches = app.topic(
        cfg.matches_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=cfg.topic_partitions,
    )
    alerts = app.topic(cfg.alerts_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    windows = app.Table(TABLE_NAME, default=None, partitions=cfg.topic_partitions, key_type=str)
    state: dict[str, Any] = {"agent_started": False}

    async def publish(record: dict[str, Any], key: str) -> None:
        fut = await alerts.send(key=key.encode(), value=orjson.dumps(record))
        await fut  # at-least-once: the match's offset is acked only after the broker has the alert

    async def publish_summary(rule: Rule, window: cap.State) -> None:
        limit, interval = caps[rule.rule_id]
        record = cap.suppression_record(rule, window, limit, interval, time.time())
        await publish(record, f"suppression:{rule.rule_id}")

    @app.agent(matches, name="publish_alerts", concurrency=1)
    async def publish_alerts(stream: Any) -> None:
        state["agent_started"] = True
        async for value in stream:
            try:
                msg = orjson.loads(value)
                rule = rules_by_id.get(msg.get("rule_id") or msg["alert"]["kibana.alert.rule.rule_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.error("ignoring a malformed message on %s", cfg.matches_topic)
                continue
            if rule is None:
                continue  # a match from a worker with other rules loaded: not ours to publish
            limit, interval = caps[rule.rule_id]
            now = time.time()
            if msg["type"] == "tick":
                tick = cap.on_tick(windows.get(rule.rule_id), now, interval)
                if tick is not None and tick.summary_of is not None:
                    await publish_summary(rule, tick.summary_of)
                    windows[rule.rule_id] = tick.state
                continue
            alert = msg["alert"]
            decision = cap.on_alert(windows.get(rule.rule_id), now, limit, interval) if limit else None
            if decision is not None and decision.summary_of is not None:
                await publish_summary(rule, decision.summary_of)
            if decision is None or decision.publish:
                await publish(alert, alert_key(alert))
                done = time.time()
                metrics.alerts_emitted.labels(rule.rule_id).inc()
                metrics.processing_latency.observe(max(done - float(msg.get("consumed_at", done)), 0.0))
                original = _epoch(alert.get("kibana.alert.original_time"))
                if original is not None:
                    metrics.event_delay.observe(max(done - original, 0.0))
            else:
                metrics.alerts_suppressed.labels(rule.rule_id).inc()
            if decision is not None:
                windows[rule.rule_id] = decision.state

    def on_fatal(exc: BaseException) -> None:
        # The ingest thread cannot go on (e.g. the broker refused what a batch produced). Its offsets
        # are not committed, so exiting loses nothing; the orchestrator restarts the worker.
        log.critical("fatal ingest error, exiting: %s", exc)
        logging.shutdown()
        os._exit(70)

    ingest = IngestLoop(cfg, engine, rules, metrics, on_fatal, cap_enabled)

    @app.service
    class IngestService(Service):
        async def on_start(self) -> None:
            ingest.start()

        async def on_stop(self) -> None:
            ingest.stop()
            await asyncio.get_running_loop().run_in_executor(None, ingest.join, 60)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition.
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE.split("; charset")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = ingest.running and ingest.assigned.is_set() and state["agent_started"]
        body = {
            "ready": ready,
            "ingest_running": ingest.running,
            "ingest_assigned": ingest.assigned.is_set(),
            "agent_started": state["agent_started"],
        }
        return web.json(body, status=200 if ready else 503)

    app.detector_ingest = ingest  # type: ignore[attr-defined]
    return app
