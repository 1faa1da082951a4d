"""The Faust app of `detector worker`: ingest service, the alert-publishing agent, its cap table, HTTP.

Shape (why: see detector/stream/ingest.py and the README's "Design"):

  telemetry.<source> --(IngestLoop, in a process of its own: batched consumer, prefilter, normalise, evaluate)-->
      detections.deadletter   rejected records, original bytes + reason headers
      detections.matches      rule matches, keyed by rule id (internal)
  detections.matches --(Faust agent `publish_alerts`: publish.handle_match, cap state in Faust table `alert-windows`)-->
      detections.alerts       alerts keyed by host, and one suppression record per capped window
  timer `tick_cap_windows` --(a tick per capped rule a second, on that rule's matches partition)--> detections.matches
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
import orjson
from mode import Service

from detector.metrics import CONTENT_TYPE, Metrics
from detector.prevalence import Recency
from detector.rules.model import Rule, duration_seconds
from detector.stream import prevalence as fleet
from detector.stream import publish, suppress
from detector.stream.config import WorkerConfig
from detector.stream.ingest_process import IngestProcess, freeze_heap
from detector.stream.staging import Staged
from detector.times import iso_to_epoch

log = logging.getLogger("detector.worker")

TABLE_NAME = "alert-windows"
GROUPS_TABLE = "alert-groups"  # alert suppression: a rule's groups (<rule id>:<terms digest>) and its watermark
PREVALENCE_TABLE = "executables"
SEND_RETRY_S = 0.5  # first wait before sending a refused alert again, doubling up to SEND_RETRY_MAX_S
SEND_RETRY_MAX_S = 5.0
FETCH_MAX_WAIT_MS = 50
AGENT_BATCH_MAX = 500  # matches messages handled before their alerts' acknowledgements are awaited, at most


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


def cap_for(rule: Rule, cfg: WorkerConfig) -> tuple[int, float]:
    limit = rule.max_signals if cfg.max_signals < 0 else cfg.max_signals
    interval = duration_seconds(cfg.cap_interval) if cfg.cap_interval else rule.interval_seconds
    return limit, float(interval)


def _observe(
    metrics: Metrics, message: publish.Message, outputs: list[publish.Output], caps: Mapping[str, publish.Capped]
) -> None:
    if publish.suppressed(message, outputs, caps):
        metrics.alerts_suppressed.labels(message.rule_id).inc()
        return
    done = time.time()
    for out in outputs:
        if out.kind != "alert":
            continue
        metrics.alerts_emitted.labels(message.rule_id).inc()
        consumed_at = done if message.consumed_at is None else message.consumed_at
        metrics.processing_latency.observe(max(done - consumed_at, 0.0))
        original = iso_to_epoch(out.record.get("kibana.alert.original_time"))
        if original is not None:
            metrics.event_delay.observe(max(done - original, 0.0))


def changelog_topics(app: faust.App) -> list[str]:
    """The changelog topics of the app's tables, for the worker to create (compacted) before Faust starts."""
    return [table.changelog_topic.get_topic_name() for table in app.tables.values()]


def create_app(cfg: WorkerConfig, rules: list[Rule], metrics: Metrics) -> faust.App:
    caps = {r.rule_id: publish.Capped(r, *cap_for(r, cfg)) for r in rules}
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
    # Alert suppression (detector/stream/suppress.py): written, like the cap windows, only by the agent that
    # owns the rule's matches partition, so one worker owns a rule's groups.
    groups = app.Table(GROUPS_TABLE, default=None, partitions=cfg.topic_partitions, key_type=str)
    specs = {r.rule_id: s for r in rules if (s := suppress.spec_for(r)) is not None}
    # Fleet prevalence (detector/stream/prevalence.py): executable -> row, written by the owner of its partition.
    executables = app.Table(PREVALENCE_TABLE, default=None, partitions=cfg.topic_partitions, key_type=str)
    horizon = float(duration_seconds(cfg.prevalence_horizon))
    recency: dict[int, Recency] = {}  # per matches partition, so an evicted row's tombstone lands on its own
    state: dict[str, Any] = {"agent_started": False, "publish_blocked": False}

    async def send_alert(key: bytes, value: bytes) -> None:
        """Send and await the broker's acknowledgement, retrying until it comes (backpressure on the agent).

        A send that raised out of the agent would lose the alert: Faust acks the event being processed even
        when the agent fails on it. So a refused send is retried, for as long as it takes; meanwhile the agent
        reads nothing more (Faust's stream buffer, stream_buffer_maxsize, bounds what its consumer prefetches)
        and matches wait in the matches topic, not in memory.
        """
        since: float | None = None
        backoff = SEND_RETRY_S
        while True:
            try:
                await (await alerts.send(key=key, value=value))
                break
            except Exception as exc:  # aiokafka's KafkaError and timeouts alike: nothing is dropped
                if since is None:
                    since = time.monotonic()
                    state["publish_blocked"] = True
                    log.warning("backpressure: alert send refused (%r); retrying until the broker takes it", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, SEND_RETRY_MAX_S)
        if since is not None:
            waited = time.monotonic() - since
            state["publish_blocked"] = False
            metrics.backpressure.labels("publish").inc(waited)
            log.warning("backpressure over after %.1f s: alerts are acknowledged again", waited)

    def observe_execution(
        obs: fleet.Observation, partition: int, staged: Staged
    ) -> tuple[Any, dict[str, Any] | None, list[str]]:
        """The executable's new row for the rule, the observation's alert enriched from it (if it carries one),
        and the rows to evict. Nothing is written: the agent stores the row once the alert is acknowledged."""
        now = time.time()
        key = obs.row_key
        row, alert = fleet.handle_observation(
            staged.get(executables, key), obs, now, horizon=horizon, max_hosts=cfg.prevalence_max_hosts
        )
        lru = recency.get(partition)
        gone: list[str] = []
        if lru is None:  # first row of this partition since it was assigned: rebuild from the restored table
            assert not staged  # (the agent applies its staged writes first: the table is read whole)
            n = app.consumer.topic_partitions(cfg.matches_topic) or cfg.topic_partitions
            lru = recency[partition] = Recency(cfg.prevalence_max_executables, horizon)
            # (oldest fleet-last-seen first; then processing time: restored rows count as seen now)
            for other, old in sorted(executables.items(), key=lambda kv: kv[1]["l"] if kv[1] else 0):
                if old and other != key and publish.match_partition(fleet.row_rule(other), n) == partition:
                    gone += lru.touch(other, now)
        gone += lru.touch(key, now)
        return row, alert, gone

    def grouped(
        window: Any, message: publish.Message, spec: suppress.Spec, staged: Staged
    ) -> tuple[Any, list[publish.Output], list[tuple[str, Any]]]:
        """A message of a rule with alert suppression: (cap window, outputs, group-table writes to make)."""
        now = time.time()
        wm_key = suppress.watermark_key(message.rule_id)
        watermark = staged.get(groups, wm_key)
        writes: list[tuple[str, Any]] = []
        if message.kind == publish.TICK:
            assert not staged  # (the agent applies its staged writes first: the table is read whole)
            window, outputs = publish.handle_match(window, message, now, caps)
            prefix = message.rule_id + ":"
            for key, group in list(groups.items()):
                if group is None or key == wm_key or not key.startswith(prefix):
                    continue
                new, updates = suppress.on_tick(group, watermark, spec, now)
                outputs += updates
                if new is not group:
                    writes.append((key, new))
            return window, outputs, writes
        assert message.alert is not None
        key = suppress.group_key(message.rule_id, suppress.terms(message.alert, spec.group_by))
        group = staged.get(groups, key)
        r = suppress.handle_alert(window, group, watermark, message, now, caps[message.rule_id], spec)
        if r.group is not group:
            writes.append((key, r.group))
        if r.watermark != watermark:
            writes.append((wm_key, r.watermark))
        return r.cap_state, r.outputs, writes

    @app.on_partitions_revoked.connect
    def forget_recency(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        recency.clear()  # rebuilt from the table for each partition this worker still (or again) owns

    class Batch:
        """Matches messages processed, their alerts sent but not yet acknowledged, and their staged writes."""

        def __init__(self) -> None:
            self.events: list[Any] = []
            self.sends: list[tuple[Any, bytes, bytes]] = []  # (the send's future or None, key, value)
            self.staged = Staged()
            self.observed: list[tuple[publish.Message, list[publish.Output]]] = []

        def clear(self) -> None:
            self.events, self.sends, self.observed = [], [], []

    async def send_soon(key: bytes, value: bytes) -> Any:
        """Hand an alert to the producer; its acknowledgement is awaited in settle(). None: refused at once."""
        try:
            return await alerts.send(key=key, value=value)
        except Exception:  # e.g. the producer's buffer is full: settle() sends it the patient way
            return None

    async def settle(batch: Batch, stream: Any) -> None:
        """Wait for every alert of the batch, then write its tables, then ack its messages (in that order:
        see detector/stream/staging.py). A refused alert is sent again until the broker takes it; the order of
        alerts on the topic then differs from the matches', which consumers must not rely on anyway."""
        for future, key, value in batch.sends:
            try:
                if future is None:
                    raise RuntimeError("not sent")
                await future
            except Exception:  # aiokafka's KafkaError and timeouts alike: nothing is dropped
                await send_alert(key, value)
        batch.staged.apply()
        for message, outputs in batch.observed:
            _observe(metrics, message, outputs, caps)
        for event in batch.events:
            await stream.ack(event)
        batch.clear()  # (the staged writes were cleared by apply)

    async def handle(event: Any, batch: Batch, stream: Any) -> None:
        """One matches message: its outputs sent (not awaited), its table writes staged."""
        value = event.value
        obs = fleet.decode(value)
        row: Any = None
        evict: list[str] = []
        staged = batch.staged
        if obs is not None:
            partition = event.message.partition
            if partition not in recency and staged:  # the recency rebuild reads the table whole
                await settle(batch, stream)
            # One hop: the rule's row, the enrichment and the cap are all on this (the rule's) partition.
            row, alert, evict = observe_execution(obs, partition, staged)
            if alert is None:
                store_row(staged, obs.row_key, row, evict)
                return
            message: publish.Message | None = publish.Message(
                publish.MATCH, obs.rule_id, alert, obs.consumed_at if obs.consumed_at is not None else time.time()
            )
        else:
            message = publish.decode(value)
        if message is None:
            log.error("ignoring a malformed message on %s", cfg.matches_topic)
            return
        spec = specs.get(message.rule_id)
        if spec is not None and message.kind == publish.TICK and staged:  # a tick reads the groups whole
            await settle(batch, stream)
            staged = batch.staged
        window = staged.get(windows, message.rule_id)
        writes: list[tuple[str, Any]] = []
        if spec is None:
            new_window, outputs = publish.handle_match(window, message, time.time(), caps)
        else:
            new_window, outputs, writes = grouped(window, message, spec, staged)
        for out in outputs:
            # at-least-once: the message is acked only after the broker has what it produced (settle)
            key, out_value = out.key.encode(), orjson.dumps(out.record)
            batch.sends.append((await send_soon(key, out_value), key, out_value))
        if obs is not None:  # written after the sends are acknowledged, as the cap window and the groups
            store_row(staged, obs.row_key, row, evict)
        for group_key, group in writes:
            staged.set(groups, group_key, group)
        if new_window is not window:
            staged.set(windows, message.rule_id, new_window)
        batch.observed.append((message, outputs))

    @app.agent(matches, name="publish_alerts", concurrency=1)
    async def publish_alerts(stream: Any) -> None:
        # The app is up: what it has built stays for good. Unfrozen, each full collection walked it for 20-40 ms
        # (about every 25 s at 50k records/s), and the agent published nothing meanwhile.
        freeze_heap()
        state["agent_started"] = True
        # Manual acks: a message is acked once its alerts are acknowledged and its writes made (settle). The
        # messages that arrived together (what the stream's buffer holds) are handled before waiting once for
        # all their alerts: the alerts go in one request, where waiting for each cost a round trip and the
        # producer's and the consumer's bookkeeping per alert. Nothing waits for more to arrive.
        manual = stream.noack()
        batch = Batch()
        async for event in manual.events():
            await handle(event, batch, manual)
            batch.events.append(event)  # after handle: a settle() inside it must not ack this one yet
            if len(batch.events) >= AGENT_BATCH_MAX or manual.channel.empty():
                await settle(batch, manual)

    def store_row(staged: Staged, key: str, row: Any, evict: list[str]) -> None:
        staged.set(executables, key, row)
        for gone in evict:  # the tombstone goes to this partition's changelog, the row's own
            staged.set(executables, gone, None)

    capped = [rule_id for rule_id, c in caps.items() if c.limit > 0 or rule_id in specs]
    if capped:

        @app.timer(interval=publish.TICK_EVERY_S)  # type: ignore[untyped-decorator]
        async def tick_cap_windows() -> None:
            # Through the matches topic, not straight at the table: see publish.py and the README's "Design".
            partitions = app.consumer.topic_partitions(cfg.matches_topic)
            if not partitions:
                return  # the agents' consumer has not read the topic's metadata yet
            for rule_id in capped:
                await matches.send(
                    key=rule_id.encode(),
                    value=publish.tick_message(rule_id),
                    partition=publish.match_partition(rule_id, partitions),
                )

    def on_ingest_exit(code: int) -> None:
        # The ingest process cannot go on (e.g. the broker refused what a batch produced) and said why in its
        # log. Its offsets are not committed, so exiting loses nothing; the orchestrator restarts the worker.
        log.critical("ingest process ended unexpectedly, exiting with status %d", code)
        logging.shutdown()
        os._exit(code)

    ingest = IngestProcess(cfg, rules, on_ingest_exit)
    metrics.set_ready(
        lambda: ingest.running and ingest.assigned.is_set() and state["agent_started"] and not ingest.paused
    )

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
        return web.bytes(metrics.exposition(ingest.snapshot()), content_type=CONTENT_TYPE.split("; charset")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        # Paused on backpressure: alive, and resumes by itself, but not doing its job until the broker acks.
        ready = ingest.running and ingest.assigned.is_set() and state["agent_started"] and not ingest.paused
        body = {
            "ready": ready,
            "ingest_running": ingest.running,
            "ingest_assigned": ingest.assigned.is_set(),
            "agent_started": state["agent_started"],
            "ingest_paused": ingest.paused,
            "publish_blocked": state["publish_blocked"],
        }
        return web.json(body, status=200 if ready else 503)

    app.detector_ingest = ingest  # type: ignore[attr-defined]
    return app
