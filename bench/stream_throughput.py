"""Records/s through one `detector worker` draining a pre-loaded topic, beside a bare confluent-kafka loop.

    make kafka-up && .venv/bin/python -m bench.stream_throughput [--records 500000]

Both read the same pre-loaded topics (a realistic mix of the eight sources, ~0.1% NetSupport) with a
fresh consumer group, in the same run, so their ratio is meaningful on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench._kafka import cpu_seconds, metric_sum, require_broker, start_worker
from detector.sources import SOURCES
from tools.synth import generate


def preload(bootstrap: str, prefix: str, n: int, seed: int) -> dict[str, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"{prefix}.{s}" for s in SOURCES]
    for fut in admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in topics]).values():
        fut.result()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1000000, "compression.type": "lz4"}
    )
    counts = dict.fromkeys(SOURCES, 0)
    for g in generate(n, seed=seed, netsupport_rate=0.001):
        while True:
            try:
                producer.produce(f"{prefix}.{g.source}", value=g.raw)
                break
            except BufferError:
                producer.poll(0.05)
        counts[g.source] += 1
    producer.flush()
    return counts


def bare_loop(bootstrap: str, topics: list[str], n: int) -> tuple[float, float]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
            "queued.max.messages.kbytes": 262144,
        }
    )
    c.subscribe(topics)
    seen = 0
    start = None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    while seen < n:
        batch = c.consume(num_messages=2000, timeout=1.0)
        if batch and start is None:
            start = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    c.close()
    return elapsed, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def worker_drain(bootstrap: str, prefix: str, n: int, log: Path) -> tuple[float, float]:
    env = {
        "DETECTOR_BOOTSTRAP_SERVERS": bootstrap,
        "DETECTOR_CONSUMER_GROUP": f"bench-worker-{uuid.uuid4().hex[:8]}",
        "DETECTOR_TOPICS": ",".join(f"{prefix}.{s}={s}" for s in SOURCES),
        "DETECTOR_ALERTS_TOPIC": f"{prefix}.alerts",
        "DETECTOR_DEADLETTER_TOPIC": f"{prefix}.deadletter",
        "DETECTOR_MATCHES_TOPIC": f"{prefix}.matches",
        "DETECTOR_MAX_SIGNALS": "0",
    }
    proc, port = start_worker(env, log)
    try:
        # Timed from the first record consumed to the last, so start-up is not counted.
        t0 = None
        cpu0 = 0.0
        while True:
            done = metric_sum(port, "detector_records_consumed_total")
            now = time.perf_counter()
            if done > 0 and t0 is None:
                t0, cpu0 = now, cpu_seconds(proc.pid)
            if done >= n:
                return now - (t0 or now), cpu_seconds(proc.pid) - cpu0
            time.sleep(0.5)  # scraping /metrics costs the worker CPU: not too often
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    require_broker(args.bootstrap)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    print(f"pre-loading {args.records:,} records onto {len(SOURCES)} topics {prefix}.<source> ...", flush=True)
    preload(args.bootstrap, prefix, args.records, args.seed)
    topics = [f"{prefix}.{s}" for s in SOURCES]
    bare_s, bare_cpu = bare_loop(args.bootstrap, topics, args.records)
    with tempfile.TemporaryDirectory() as tmp:
        worker_s, worker_cpu = worker_drain(args.bootstrap, prefix, args.records, Path(tmp) / "worker.log")
    bare_rate, worker_rate = args.records / bare_s, args.records / worker_s
    print(f"{'':34}{'records/s':>12}{'CPU s':>8}")
    print(f"{'bare confluent-kafka consume loop':34}{bare_rate:>12,.0f}{bare_cpu:>8.1f}")
    print(f"{'detector worker (one process)':34}{worker_rate:>12,.0f}{worker_cpu:>8.1f}")
    ratio = worker_rate / bare_rate
    print(f"worker / bare = {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
    AdminClient({"bootstrap.servers": args.bootstrap}).delete_topics(topics)


if __name__ == "__main__":
    main()
