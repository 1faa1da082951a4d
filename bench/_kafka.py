"""Helpers shared by the streaming benchmarks: broker check, a worker subprocess, metric reading, results.

The broker is BENCH_BOOTSTRAP (default 127.0.0.1:9092) unless a bench is given --bootstrap.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

# NewTopic is documented in confluent_kafka.admin but not marked as re-exported there.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from detector.engine import Engine
from detector.rules.model import load_rules
from tools.synth import generate

REPO = Path(__file__).resolve().parents[1]


# Partitions on the broker above which a bench warns: a local broker that kept every test run's topics had
# 10,800 partitions (3,000 topics), and its produce-to-consume p99 at 5k records/s was 47-67 ms against 15-21 ms
# once they were deleted (bare consumer, same machine): the figures measured the clutter.
CLUTTERED_PARTITIONS = 2000


def require_broker(bootstrap: str) -> dict[str, int]:
    """Exit if no broker answers; else its topic and partition counts, with a warning if it is cluttered."""
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        sys.exit(f"no Kafka broker on {bootstrap}: run `make kafka-up` first")
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    facts = {"topics": len(topics), "partitions": sum(len(t.partitions) for t in topics.values())}
    if facts["partitions"] > CLUTTERED_PARTITIONS:
        print(
            f"warning: the broker holds {facts['topics']:,} topics ({facts['partitions']:,} partitions), left by "
            "earlier runs? A cluttered broker lengthens the latency tails; for figures to record, start from an "
            "empty one: deploy/kafka/kafka.sh down --wipe && make kafka-up",
            file=sys.stderr,
            flush=True,
        )
    return facts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector.cli.main", "worker"],
        env={**os.environ, **env, "DETECTOR_HTTP_PORT": str(port), "DETECTOR_LOG_LEVEL": "warning"},
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"worker exited: see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"worker not ready in 120 s: see {log}")


def metric_sum(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the worker runs its ingest loop in a child process)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def own_cpu_seconds(pid: int) -> float:
    """User+system CPU of one process (all its threads, none of its children), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process, its threads and its live descendants, from /proc."""
    return sum(own_cpu_seconds(p) for p in process_tree(pid))


def worker_processes(pid: int) -> dict[str, int]:
    """The worker's processes by role: its Faust app (`pid`) and its ingest process (spawned by multiprocessing;
    the other child, multiprocessing's resource tracker, uses next to no CPU and is left out)."""
    roles = {"faust_app": pid}
    for p in process_tree(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            roles["ingest"] = p
    return roles


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU-seconds of all the machine's cores so far, from /proc/stat.

    Busy is user, nice, system, irq and softirq; stolen is time the hypervisor gave to other guests.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / ticks, fields[7] / ticks


DEFAULT_BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092")
# Results go to bench/results/ of this tree, or BENCH_RESULTS (a run from an exported commit writes them back).
RESULTS = Path(os.environ.get("BENCH_RESULTS", REPO / "bench" / "results"))
# `git archive <commit>` exports carry no .git: the export's .bench-commit says which commit (hash, subject).
COMMIT_STAMP = REPO / ".bench-commit"


def worker_env(prefix: str, group: str, sources: list[str], outputs: str | None = None, **extra: str) -> dict[str, str]:
    """A worker's settings for topics <prefix>.<source> and outputs <outputs>.alerts / .deadletter / .matches
    (`outputs` defaults to `prefix`)."""
    out = outputs or prefix
    return {
        "DETECTOR_CONSUMER_GROUP": group,
        "DETECTOR_TOPICS": ",".join(f"{prefix}.{s}={s}" for s in sources),
        "DETECTOR_ALERTS_TOPIC": f"{out}.alerts",
        "DETECTOR_DEADLETTER_TOPIC": f"{out}.deadletter",
        "DETECTOR_MATCHES_TOPIC": f"{out}.matches",
        "DETECTOR_MAX_SIGNALS": "0",  # no cap: every positive must come out as an alert
        **extra,
    }


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its descendants from /proc (VmRSS, summed)."""
    total = 0
    for p in process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in lines if line.startswith("VmRSS:")), 0)
    return total


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    """What a figure was measured on: cores, CPU, memory, Python, the commit (and whether the tree was dirty)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    if COMMIT_STAMP.exists():  # an exported commit: clean by construction
        commit, _, subject = COMMIT_STAMP.read_text().strip().partition("\n")
        code = {"git_commit": commit, "git_subject": subject[:120], "git_dirty_detector": False, "tree": "export"}
    else:
        code = {
            "git_commit": git("rev-parse", "HEAD"),
            "git_subject": git("log", "-1", "--format=%s")[:120],
            "git_dirty_detector": bool(git("status", "--porcelain", "--", "detector")),
            "tree": "work tree",
        }
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **code,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """bench/results/<name>.json with the machine facts attached; returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_bytes(orjson.dumps({"machine": machine_facts(), **payload}, option=orjson.OPT_INDENT_2) + b"\n")
    return path


# -- paced input with time-stamped positives (latency and memory benches) ----------------------------------
# A positive's command line carries "#@<seq, 8 digits>@<produce time, ns since the epoch, 19 digits>", which
# reaches the alert's process.command_line: the alert says itself when its record was produced.
PLACEHOLDER = b"#@00000000@0000000000000000000"
TOKEN_RE = re.compile(rb"#@(\d{8})@(\d{19})")


@dataclass(frozen=True, slots=True)
class Pool:
    benign: list[tuple[str, bytes]]  # (source, raw): the realistic mix without its positives
    positives: list[tuple[str, bytes]]  # (source, raw with PLACEHOLDER in the command line)


def _benign_chunk(args: tuple[int, int]) -> list[tuple[str, bytes]]:
    n, seed = args
    return [(g.source, g.raw) for g in generate(n, seed=seed, netsupport_rate=0.001) if g.kind != "positive"]


def _positive_templates(seed: int, per_source: int = 4) -> list[tuple[str, bytes]]:
    """Generated positives whose command line takes the placeholder and still raise an alert that shows it."""
    engine = Engine(load_rules())
    out: list[tuple[str, bytes]] = []
    per: dict[str, int] = {}
    for g in generate(4000, seed=seed, netsupport_rate=1.0):
        if per.get(g.source, 0) >= per_source:
            continue
        first = engine.process(g.raw, g.source)
        if not first.alerts:
            continue
        cmd = first.alerts[0].get("process", {}).get("command_line")
        if not isinstance(cmd, str) or not cmd:
            continue
        encoded = orjson.dumps(cmd)[1:-1]
        if encoded not in g.raw:
            continue
        raw = g.raw.replace(encoded, encoded + b" " + PLACEHOLDER)
        check = engine.process(raw.replace(PLACEHOLDER, b"#@00000001@1000000000000000000"), g.source)
        if check.alerts and b"#@00000001@1000000000000000000" in orjson.dumps(check.alerts[0]):
            out.append((g.source, raw))
            per[g.source] = per.get(g.source, 0) + 1
    if not out:
        raise SystemExit("no positive template carries a command line: cannot time alerts")
    return out


def build_pool(n: int, seed: int) -> Pool:
    """`n` benign records of the generator's mix (two processes) and positive templates."""
    half = n // 2
    with multiprocessing.get_context("fork").Pool(2) as workers:
        chunks = workers.map(_benign_chunk, [(half, seed), (n - half, seed + 1000)])
    return Pool([r for c in chunks for r in c], _positive_templates(seed))


@dataclass(slots=True)
class Paced:
    sent: int = 0
    positives: int = 0
    seconds: float = 0.0
    full_queue_waits: int = 0
    # positive's sequence number -> seconds from its hand-off to the producer to the broker's acknowledgement
    # (librdkafka's own clock, so a late poll does not count): the generator's and the broker's share of
    # a latency figure, before the worker could read the record.
    acked: dict[int, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def _acked(acked: dict[int, float], seq: int, err: KafkaError | None, msg: Message) -> None:
    if err is None:
        acked[seq] = msg.latency() or 0.0


def paced_produce(
    producer: Producer,
    prefix: str,
    pool: Pool,
    rate: float,
    seconds: float,
    positive_every: int,
    seq0: int,
    stop: threading.Event | None = None,
    res: Paced | None = None,
) -> Paced:
    """Produce at `rate` records/s for `seconds`, every `positive_every`-th a positive numbered from `seq0`.

    Paced by the clock (a record is due at start + i/rate; what is due is produced at once), so a producer
    that falls behind catches up in bursts; the achieved rate is what was actually sent in the window.
    """
    benign, positives = pool.benign, pool.positives
    nb, np_ = len(benign), len(positives)
    topics = {s: f"{prefix}.{s}" for s in {s for s, _ in benign} | {s for s, _ in positives}}
    res = Paced() if res is None else res  # given: its .sent follows the run, for a sampler to read
    produce, poll, clock = producer.produce, producer.poll, time.perf_counter
    start = clock()
    i = 0
    while True:
        now = clock() - start
        if now >= seconds or (stop is not None and stop.is_set()):
            break
        # at most 2 ms of records per burst, so a producer that has fallen behind still sees the window end
        due = min(int(now * rate) + 1, int(seconds * rate), i + max(1, int(rate / 500)))
        while i < due:
            on_delivery = None
            if i % positive_every == positive_every - 1:
                source, raw = positives[res.positives % np_]
                token = b"#@%08d@%019d" % (seq0 + res.positives, time.time_ns())
                value = raw.replace(PLACEHOLDER, token)
                on_delivery = partial(_acked, res.acked, seq0 + res.positives)
                res.positives += 1
            else:
                source, value = benign[i % nb]
            while True:
                try:
                    produce(topics[source], value, on_delivery=on_delivery)
                    break
                except BufferError:
                    res.full_queue_waits += 1
                    poll(0.01)
            i += 1
        res.sent = i
        poll(0)
        if i >= int((clock() - start) * rate):
            time.sleep(0.0005)
    res.seconds = clock() - start
    res.sent = i
    return res


def paced_producer(bootstrap: str) -> Producer:
    # lz4 and a short linger like a log shipper's; the linger is part of the produce-to-alert figure.
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )


def create_topics(bootstrap: str, topics: list[str], partitions: int = 4, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1, config=config or {}) for t in topics]
    for fut in admin.create_topics(new).values():
        fut.result()


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.delete_topics(topics).values():
        with contextlib.suppress(Exception):  # already gone: nothing to clean
            fut.result()


def delete_prefixed(bootstrap: str, *prefixes: str) -> None:
    """Delete every topic named with one of `prefixes`: a run's inputs and outputs, and the Faust app's own
    (its changelogs and assignor topic are named after the consumer group)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefixes)]
    if names:
        delete_topics(bootstrap, names)


def quantiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of `values` (nearest rank), 0s when empty."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(values)

    def rank(q: float) -> float:
        return s[min(len(s), max(1, math.ceil(q * len(s)))) - 1]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": s[-1]}
