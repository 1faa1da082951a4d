"""Crash and restart: a replayed stream with known positives, while the worker is SIGKILLed and the broker restarted.

    .venv/bin/python -m bench.faults [--records 200000] [--kills 5] [--seed 9]     (or: make faults)

It starts its own broker (deploy/kafka/kafka.sh, on private ports, 19292/19293 by default, state in a temporary
directory), so it needs no `make kafka-up` and never touches another broker. Then, in one run:

  stream  N records from tools/synth (a few hundred positives, some malformed) are produced at a steady pace
          into namespaced topics, consumed by one worker with the cap off (DETECTOR_MAX_SIGNALS=0: a capped alert
          is held back on purpose, and which ones depends on arrival order, which replays change, so zero loss
          can only be checked per id without the cap).
  cap     beside it, a second worker with a cap (by default the rule's own, 100 per 5 min) gets K > cap positives
          in slices, one before each fault, so its window state has to come back from the table's changelog.
  faults  at random moments, the workers are SIGKILLed (both, at the same moment) and restarted, `kills` times,
          and once the broker is restarted (kafka.sh down, then up on the same state directory) with the workers
          left running: they have to ride over it, the same processes (same pid) before and after.

Then it waits until the stream's consumer group has committed every input offset, and checks:

  * every alert id the core gives in-process (detector.engine, prefilter off) is on the alerts topic: zero lost,
    and nothing else is; an id seen more than once is a duplicate (at-least-once replay), same id by construction
  * every malformed record is a dead letter, found by its source topic/partition/offset headers
  * the cap: at most `cap` distinct alerts published in the window, and its suppression record accounts for every
    distinct positive (emitted + suppressed >= K): the window survived the kills (state restored, not reset)
  * the workers that lived through the broker restart never exited (same pids, still running)

and prints figures: records, kills, alerts and dead letters expected/found, duplicates, and the time to recover
after each kill (restart to /readyz; to the group committing offsets again) and after the broker restart.
tests/integration/test_faults.py runs the same code on a short stream, on other private ports.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import SOURCES
from tools.synth import Generated, generate

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
RULE_ID = "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891"
LARGE_MESSAGE_BYTES = 16 << 20  # synth's too_large records are 1-3 MB: input topics and producer must take them
PARTITIONS = 4


@dataclass
class Plan:
    records: int = 200_000
    kills: int = 5
    broker_restarts: int = 1
    seed: int = 9
    netsupport_rate: float = 0.0015  # ~300 positives in 200,000
    malformed_rate: float = 0.001  # ~200 malformed
    duration: float = 150.0  # seconds over which the stream is produced (faster once the faults are done)
    max_gap: float = 8.0  # a fault comes 1 s to max_gap s after the previous one has recovered
    cap: int = -1  # the cap worker's DETECTOR_MAX_SIGNALS: -1 = the rule's own (100)
    cap_interval: str = ""  # the cap worker's DETECTOR_CAP_INTERVAL: "" = the rule's interval (5 min)
    cap_positives: int = 250
    port: int = 19292
    controller_port: int = 19293
    drain_timeout: float = 300.0


@dataclass
class Recovery:
    what: str  # "kill" | "broker"
    at: float  # seconds since the stream started
    ready_s: float | None = None  # kill: restart to /readyz
    resumed_s: float | None = None  # to the group committing offsets again
    down_s: float | None = None  # broker: how long it was unreachable (down + up)


@dataclass
class Report:
    records: int = 0
    positives: int = 0
    kills: int = 0
    broker_restarts: int = 0
    alerts_expected: int = 0
    alerts_found: int = 0
    alerts_unexpected: int = 0
    alert_messages: int = 0
    duplicates: int = 0
    deadletters_expected: int = 0
    deadletters_found: int = 0
    deadletter_messages: int = 0
    cap: int = 0
    cap_positives: int = 0
    cap_distinct_published: int = 0
    cap_suppression: dict[str, Any] = field(default_factory=dict)
    broker_survivor_pids: list[int] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    elapsed_s: float = 0.0
    stream_s: float = 0.0  # the stream was all produced this long after it started
    drain_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        kills = [r for r in self.recoveries if r.what == "kill"]
        brokers = [r for r in self.recoveries if r.what == "broker"]
        out = [
            f"records replayed        {self.records:,} ({self.positives} positives)",
            f"worker SIGKILLs         {self.kills} (each restarted); broker restarts {self.broker_restarts}",
            f"alerts expected/found   {self.alerts_expected}/{self.alerts_found} "
            f"(lost {self.alerts_expected - self.alerts_found}, unexpected ids {self.alerts_unexpected})",
            f"alert messages          {self.alert_messages} (duplicates {self.duplicates}, all with an expected id)",
            f"dead letters exp/found  {self.deadletters_expected}/{self.deadletters_found} "
            f"({self.deadletter_messages} messages)",
            f"cap                     {self.cap} per window: {self.cap_positives} positives, "
            f"{self.cap_distinct_published} distinct published, suppression record {self.cap_suppression}",
            f"broker restart          worker pids {self.broker_survivor_pids} before = after, never exited",
        ]
        for i, r in enumerate(kills, 1):
            out.append(
                f"kill {i} at {r.at:6.1f} s      restart to /readyz {_s(r.ready_s)}, "
                f"to commits resuming {_s(r.resumed_s)}"
            )
        for r in brokers:
            out.append(
                f"broker at {r.at:6.1f} s      down+up {_s(r.down_s)}, then commits resumed in {_s(r.resumed_s)} "
                "(worker not restarted)"
            )
        out.append(
            f"stream produced in      {self.stream_s:.1f} s, then drained in {self.drain_s:.1f} s; "
            f"whole run {self.elapsed_s:.1f} s"
        )
        out += [f"FAILED: {f}" for f in self.failures] or ["all invariants hold"]
        return out


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


# -- the broker ----------------------------------------------------------------------------------------------
class Broker:
    """A private broker from deploy/kafka/kafka.sh: own ports and state directory, never the shared one."""

    def __init__(self, port: int, controller_port: int, state: Path) -> None:
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_STATE": str(state),
        }

    def _run(self, *args: str) -> None:
        res = subprocess.run([str(KAFKA_SH), *args], env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")

    def up(self) -> None:
        self._run("up")

    def down(self, wipe: bool = False) -> None:
        self._run("down", *(["--wipe"] if wipe else []))


# -- workers ---------------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, env: dict[str, str], log: Path, cwd: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector.cli.main", "worker"],
            env={
                **os.environ,
                **env,
                "DETECTOR_HTTP_PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(REPO),
            },
            cwd=cwd,  # Faust writes its data directory into the working directory
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return int(r.status) == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: see {self.log}")
            if self.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout:.0f} s: see {self.log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._fh.close()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._fh.closed:
            self._fh.close()
        return self.proc.returncode


# -- topics and records ----------------------------------------------------------------------------------------
@dataclass
class Names:
    prefix: str

    def topic(self, source: str) -> str:
        return f"{self.prefix}.telemetry.{source}"

    def env(self, bootstrap: str, **extra: str) -> dict[str, str]:
        return {
            "DETECTOR_BOOTSTRAP_SERVERS": bootstrap,
            "DETECTOR_CONSUMER_GROUP": f"{self.prefix}-group",
            "DETECTOR_TOPICS": ",".join(f"{self.topic(s)}={s}" for s in SOURCES),
            "DETECTOR_ALERTS_TOPIC": f"{self.prefix}.alerts",
            "DETECTOR_DEADLETTER_TOPIC": f"{self.prefix}.deadletter",
            "DETECTOR_MATCHES_TOPIC": f"{self.prefix}.matches",
            **extra,
        }

    @property
    def inputs(self) -> list[str]:
        return [self.topic(s) for s in SOURCES]

    def create(self, bootstrap: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        big = {"max.message.bytes": str(LARGE_MESSAGE_BYTES)}
        new = [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1, config=big) for t in self.inputs]
        new += [
            NewTopic(f"{self.prefix}.{t}", num_partitions=PARTITIONS, replication_factor=1)
            for t in ("alerts", "deadletter", "matches")
        ]
        for fut in admin.create_topics(new, operation_timeout=30).values():
            fut.result()


class Feeder:
    """An idempotent acks=all producer that remembers where each malformed record landed."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,  # retries across the broker restart must not duplicate input records
                "linger.ms": 20,
                "message.max.bytes": LARGE_MESSAGE_BYTES,
                "message.timeout.ms": 600_000,
            }
        )
        self.malformed: set[tuple[str, int, int]] = set()
        self.errors: list[str] = []
        self.produced = 0

    def _report(self, malformed: bool, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(str(err))
        elif malformed:
            self.malformed.add((str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)))

    def send(self, topic: str, g: Generated) -> None:
        cb = (lambda err, msg: self._report(True, err, msg)) if g.kind == "malformed" else self._errors_only
        while True:
            try:
                self.producer.produce(topic, value=g.raw, on_delivery=cb)
                break
            except BufferError:  # the local queue is full (e.g. the broker is down): wait for it to drain
                self.producer.poll(0.2)
        self.produced += 1
        self.producer.poll(0)

    def _errors_only(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(str(err))

    def flush(self) -> None:
        left = self.producer.flush(600)
        if left or self.errors:
            raise RuntimeError(f"the feeder could not deliver {left} record(s): {self.errors[:3]}")


class Offsets:
    """Committed offsets of a group and end offsets of its input topics, through one long-lived client."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        self.tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})

    def committed(self) -> int | None:
        """Sum of the committed offsets, or None if the broker cannot say right now."""
        try:
            return sum(max(tp.offset, 0) for tp in self.consumer.committed(self.tps, timeout=5))
        except KafkaException:
            return None

    def end(self) -> int | None:
        try:
            return sum(self.consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in self.tps)
        except KafkaException:
            return None

    def close(self) -> None:
        self.consumer.close()


def read_all(bootstrap: str, topic: str, settle: float = 3.0) -> list[tuple[dict[str, bytes], bytes]]:
    """Every message on `topic` (headers, value), read from the beginning until nothing new for `settle` s."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"faults-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        out: list[tuple[dict[str, bytes], bytes]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            msgs = c.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                if m.error() is None:
                    out.append(({k: v for k, v in (m.headers() or [])}, m.value() or b""))
            if msgs:
                quiet_since = time.monotonic()
        return out
    finally:
        c.close()


# -- the run -----------------------------------------------------------------------------------------------------
class Run:
    def __init__(self, plan: Plan, workdir: Path, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.workdir = workdir
        self.say = say
        self.rng = random.Random(plan.seed)
        self.broker = Broker(plan.port, plan.controller_port, workdir / "kafka")
        self.stream = Names(f"faults{uuid.uuid4().hex[:8]}")
        self.capns = Names(f"faultscap{uuid.uuid4().hex[:8]}")
        self.report = Report(records=plan.records)
        self.workers: dict[str, Worker] = {}
        self.restarts = Counter[str]()
        self.t0 = 0.0
        self.chaos_done = threading.Event()
        self.error: BaseException | None = None
        self.fed_at: float | None = None  # when the stream was all produced (s since its start)

    # workers
    def env_of(self, which: str) -> dict[str, str]:
        bootstrap = self.broker.bootstrap
        if which == "stream":
            return self.stream.env(bootstrap, DETECTOR_MAX_SIGNALS="0")
        extra = {"DETECTOR_MAX_SIGNALS": str(self.plan.cap)}
        if self.plan.cap_interval:
            extra["DETECTOR_CAP_INTERVAL"] = self.plan.cap_interval
        return self.capns.env(bootstrap, **extra)

    def start(self, which: str) -> Worker:
        self.restarts[which] += 1
        w = Worker(self.env_of(which), self.workdir / f"{which}-{self.restarts[which]}.log", self.workdir)
        self.workers[which] = w
        return w

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @staticmethod
    def committed_now(offsets: Offsets, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while (now := offsets.committed()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group's committed offsets unreadable for {timeout:.0f} s")
            time.sleep(0.2)
        return now

    def wait_resumed(self, offsets: Offsets, since: int, timeout: float = 120.0) -> float | None:
        """Seconds until the group's committed offsets pass `since` (None: nothing was left to consume)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            now = offsets.committed()
            if now is not None and now > since:
                return time.monotonic() - start
            end = offsets.end()
            if now is not None and end is not None and now >= end and self.feeding_done.is_set():
                return None  # nothing was left to consume: the stream had ended
            time.sleep(0.2)
        raise RuntimeError(f"consumption did not resume within {timeout:.0f} s")

    # the fault driver
    def chaos(self, offsets: Offsets, cap_slices: list[list[Generated]]) -> None:
        try:
            events = ["kill"] * self.plan.kills + ["broker"] * self.plan.broker_restarts
            # the broker restart lands anywhere but first: the stream is under way and a worker restart or two
            # has happened, so every kind of recovery is exercised on a warm group
            rest = events[1:]
            self.rng.shuffle(rest)
            events = events[:1] + rest if self.plan.kills else events
            for i, what in enumerate(events):
                self.feed_cap(cap_slices[i])
                time.sleep(self.rng.uniform(1.0, self.plan.max_gap))
                if what == "kill":
                    self.kill_and_restart(offsets)
                else:
                    self.restart_broker(offsets)
            self.feed_cap(cap_slices[-1])
        except BaseException as exc:
            self.error = exc
        finally:
            self.chaos_done.set()

    def feed_cap(self, records: list[Generated]) -> None:
        for g in records:
            self.cap_feeder.send(self.capns.topic(g.source), g)
        self.cap_feeder.flush()

    def kill_and_restart(self, offsets: Offsets) -> None:
        rec = Recovery("kill", self.elapsed())
        before = self.committed_now(offsets)
        for w in self.workers.values():
            w.kill()
        self.report.kills += 1
        self.say(f"  {rec.at:6.1f} s  SIGKILL #{self.report.kills} (pids {[w.pid for w in self.workers.values()]})")
        started = time.monotonic()
        new = [self.start(which) for which in list(self.workers)]
        for w in new:
            w.wait_ready()
        rec.ready_s = time.monotonic() - started
        resumed = self.wait_resumed(offsets, before)
        rec.resumed_s = None if resumed is None else rec.ready_s + resumed
        self.report.recoveries.append(rec)
        self.say(f"           ready in {_s(rec.ready_s)}, commits resumed {_s(rec.resumed_s)} after the restart")

    def restart_broker(self, offsets: Offsets) -> None:
        rec = Recovery("broker", self.elapsed())
        pids = {k: w.pid for k, w in self.workers.items()}
        self.say(f"  {rec.at:6.1f} s  broker restart (worker pids {sorted(pids.values())} keep running)")
        started = time.monotonic()
        self.broker.down()
        self.broker.up()
        rec.down_s = time.monotonic() - started
        before = self.committed_now(offsets)
        resumed = self.wait_resumed(offsets, before)
        rec.resumed_s = resumed
        for k, w in self.workers.items():
            if w.pid != pids[k] or w.proc.poll() is not None:
                raise RuntimeError(f"the {k} worker did not ride over the broker restart (exit {w.proc.returncode})")
        self.report.broker_restarts += 1
        self.report.broker_survivor_pids = sorted(pids.values())
        self.report.recoveries.append(rec)
        self.say(f"           broker back in {_s(rec.down_s)}, commits resumed {_s(rec.resumed_s)} later")

    def feed_stream(self, records: list[Generated]) -> None:
        """The stream at a steady pace over plan.duration, and whatever is left at once when the faults are done."""
        try:
            per_chunk = 500
            pace = self.plan.duration / max(len(records) / per_chunk, 1)
            for i in range(0, len(records), per_chunk):
                started = time.monotonic()
                for g in records[i : i + per_chunk]:
                    self.feeder.send(self.stream.topic(g.source), g)
                if not self.chaos_done.is_set():
                    time.sleep(max(pace - (time.monotonic() - started), 0))
            self.feeder.flush()
            self.fed_at = self.elapsed()
        except BaseException as exc:
            self.error = exc
        finally:
            self.feeding_done.set()

    def execute(self) -> Report:
        plan, say, rep = self.plan, self.say, self.report
        started = time.monotonic()
        say(f"generating {plan.records:,} records (seed {plan.seed})")
        records = list(
            generate(
                plan.records, seed=plan.seed, netsupport_rate=plan.netsupport_rate, malformed_rate=plan.malformed_rate
            )
        )
        rep.positives = sum(1 for g in records if g.expect_alert)
        cap_records = [
            g for g in generate(plan.cap_positives * 20, seed=plan.seed + 1, netsupport_rate=0.1) if g.expect_alert
        ]
        cap_records = cap_records[: plan.cap_positives]
        if len(cap_records) < plan.cap_positives:
            raise RuntimeError("not enough positives generated for the cap check")
        n_events = plan.kills + plan.broker_restarts
        cap_slices = [cap_records[i :: n_events + 1] for i in range(n_events + 1)]

        say(f"starting a private broker on {self.broker.bootstrap} (state {self.workdir / 'kafka'})")
        self.broker.up()
        try:
            self.stream.create(self.broker.bootstrap)
            self.capns.create(self.broker.bootstrap)
            self.feeder = Feeder(self.broker.bootstrap)
            self.cap_feeder = Feeder(self.broker.bootstrap)
            self.feeding_done = threading.Event()
            offsets = Offsets(self.broker.bootstrap, f"{self.stream.prefix}-group", self.stream.inputs)
            for which in ("stream", "cap"):
                self.start(which)
            for w in self.workers.values():
                w.wait_ready()
            self.t0 = time.monotonic()
            say(
                f"stream: {plan.records:,} records over ~{plan.duration:.0f} s; faults: {plan.kills} kills, "
                f"{plan.broker_restarts} broker restart(s)"
            )
            feeder = threading.Thread(target=self.feed_stream, args=(records,), name="feeder")
            chaos = threading.Thread(target=self.chaos, args=(offsets, cap_slices), name="chaos")
            feeder.start()
            chaos.start()
            # meanwhile: what the core gives in-process, the expectation
            engine = Engine(load_rules(), use_prefilter=False)
            expected: set[str] = set()
            for g in records:
                expected.update(a["kibana.alert.uuid"] for a in engine.process(g.raw, g.source).alerts)
            cap_expected: set[str] = set()
            for g in cap_records:
                cap_expected.update(a["kibana.alert.uuid"] for a in engine.process(g.raw, g.source).alerts)
            chaos.join()
            feeder.join()
            if self.error is not None:
                raise self.error
            stream_end = time.monotonic()
            rep.stream_s = self.fed_at or 0.0
            late = [r for r in rep.recoveries if r.at >= rep.stream_s]
            if late:
                rep.failures.append(f"{len(late)} fault(s) after the stream had ended: raise the duration")
            say(f"  {self.elapsed():6.1f} s  stream produced; waiting for the group to commit every offset")
            deadline = time.monotonic() + plan.drain_timeout
            while True:
                c, e = offsets.committed(), offsets.end()
                if c is not None and e is not None and c >= e:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not drained after {plan.drain_timeout:.0f} s: committed {c} of {e}")
                for k, w in self.workers.items():
                    if w.proc.poll() is not None:
                        raise RuntimeError(f"the {k} worker exited with {w.proc.returncode}: see {w.log}")
                time.sleep(0.5)
            rep.drain_s = time.monotonic() - stream_end
            offsets.close()
            self.check_stream(expected)
            self.check_cap(cap_expected)
            for k, w in self.workers.items():
                if w.proc.poll() is not None:
                    rep.failures.append(f"the {k} worker exited with {w.proc.returncode} before the end: see {w.log}")
        finally:
            codes = {k: w.stop() for k, w in self.workers.items()}
            self.broker.down(wipe=True)
        for k, code in codes.items():
            if code not in (0, None) and not rep.failures:
                rep.failures.append(f"the {k} worker's graceful stop exited with {code}")
        rep.elapsed_s = time.monotonic() - started
        return rep

    def check_stream(self, expected: set[str]) -> None:
        rep, bootstrap = self.report, self.broker.bootstrap
        alerts = read_all(bootstrap, f"{self.stream.prefix}.alerts")
        ids = Counter(orjson.loads(v)["kibana.alert.uuid"] for _, v in alerts)
        rep.alerts_expected = len(expected)
        rep.alerts_found = len(expected & set(ids))
        rep.alerts_unexpected = len(set(ids) - expected)
        rep.alert_messages = sum(ids.values())
        rep.duplicates = sum(n - 1 for n in ids.values())
        if rep.alerts_found != rep.alerts_expected:
            rep.failures.append(f"{rep.alerts_expected - rep.alerts_found} expected alert(s) lost")
        if rep.alerts_unexpected:
            rep.failures.append(f"{rep.alerts_unexpected} alert id(s) the core does not give")
        if not expected:
            rep.failures.append("the stream held no positive")
        dead = read_all(bootstrap, f"{self.stream.prefix}.deadletter")
        found = Counter(
            (h["detector.source_topic"].decode(), int(h["detector.source_partition"]), int(h["detector.source_offset"]))
            for h, _ in dead
        )
        rep.deadletters_expected = len(self.feeder.malformed)
        rep.deadletters_found = len(self.feeder.malformed & set(found))
        rep.deadletter_messages = sum(found.values())
        if rep.deadletters_found != rep.deadletters_expected:
            rep.failures.append(
                f"{rep.deadletters_expected - rep.deadletters_found} malformed record(s) not dead-lettered"
            )
        if set(found) - self.feeder.malformed:
            rep.failures.append(f"{len(set(found) - self.feeder.malformed)} dead letter(s) for records not malformed")

    def check_cap(self, expected: set[str]) -> None:
        rep, plan = self.report, self.plan
        rep.cap = 100 if plan.cap < 0 else plan.cap  # the rule's max_signals
        rep.cap_positives = len(expected)
        # the window has to end before its suppression record is due (the timer ticks every second)
        interval = 300.0 if not plan.cap_interval else float(plan.cap_interval.rstrip("s"))
        deadline = time.monotonic() + interval + 60
        while True:
            msgs = [orjson.loads(v) for _, v in read_all(self.broker.bootstrap, f"{self.capns.prefix}.alerts", 1.0)]
            sups = [d for d in msgs if d.get("detector.record_type") == "suppression"]
            if sups or time.monotonic() > deadline:
                break
            time.sleep(2)
        alerts = {d["kibana.alert.uuid"] for d in msgs if d.get("detector.record_type") != "suppression"}
        rep.cap_distinct_published = len(alerts)
        windows = {d["detector.suppression"]["window_start"]: d["detector.suppression"] for d in sups}
        if alerts - expected:
            rep.failures.append(f"cap: {len(alerts - expected)} alert id(s) the core does not give")
        if len(alerts) > rep.cap:
            rep.failures.append(f"cap: {len(alerts)} distinct alerts published in a window capped at {rep.cap}")
        if len(windows) != 1:
            rep.failures.append(f"cap: {len(windows)} suppression windows, expected exactly 1")
            return
        (s,) = windows.values()
        rep.cap_suppression = {k: s[k] for k in ("max_signals", "alerts_emitted", "alerts_suppressed")}
        if s["alerts_emitted"] > rep.cap:
            rep.failures.append(f"cap: the window says {s['alerts_emitted']} emitted, over the cap {rep.cap}")
        if s["alerts_emitted"] + s["alerts_suppressed"] < len(expected):
            rep.failures.append(
                f"cap: the window accounts for {s['alerts_emitted'] + s['alerts_suppressed']} matches "
                f"of {len(expected)} distinct positives: state was lost"
            )


def run(plan: Plan, say: Callable[[str], None] = print, workdir: Path | None = None) -> Report:
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="faults-")) if workdir is None else workdir
    try:
        return Run(plan, wd, say).execute()
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=Plan.records)
    p.add_argument("--kills", type=int, default=Plan.kills)
    p.add_argument("--seed", type=int, default=Plan.seed)
    p.add_argument("--duration", type=float, default=Plan.duration, help="seconds over which the stream is produced")
    p.add_argument("--keep", type=Path, help="keep worker and broker logs in this directory")
    args = p.parse_args()
    if args.kills < 5:
        p.error("the long form SIGKILLs the worker at least 5 times")
    plan = Plan(records=args.records, kills=args.kills, seed=args.seed, duration=args.duration)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    rep = run(plan, workdir=args.keep)
    print()
    for line in rep.lines():
        print(line)
    sys.exit(1 if rep.failures else 0)


if __name__ == "__main__":
    main()
