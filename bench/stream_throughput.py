"""Records/s draining pre-loaded topics: `detector worker`, a bare confluent-kafka loop (the ceiling), plain Faust.

    make kafka-up && .venv/bin/python -m bench.stream_throughput [--bootstrap HOST:PORT] [--records 2000000]

The topics (one per source, 4 partitions each) hold --records records of tools/synth.py's realistic mix (8
sources, mean ~2.7 KB, ~0.1% NetSupport), produced uncompressed by two generator processes. They are kept and
reused by later runs with the same --records and --seed (named tput-<records>-s<seed>.<source>), since
generating a million records costs minutes; --fresh-topics makes new ones, --delete-topics removes them after.

Three consumers read the same topics, one after the other, each with a fresh consumer group, in the same run
(bare and worker alternate for --rounds rounds, 2 by default, and each keeps its best round):
- bare:   a confluent-kafka consume(2000) loop that only counts records (what the broker and client can give,
          with the worker's read-ahead settings);
          it passes over the topics again with a new group until >= --min-seconds are timed (each pass alone
          is a few seconds), and its rate is all passes' records over all passes' time
- worker: `detector worker` (its two processes) from its first record consumed to zero lag
- faust:  bench/plain_faust.py, a Faust agent doing the same per-record work (Engine.process, dead letters
          and matches sent), timed over the first --faust-records records (200,000: it is far slower, and
          a million would take minutes; >= 10 s all the same)
Each is timed from its first record to its last (start-up and group join not counted); CPU is the process's
user+system time over the same span (all threads: librdkafka's, Faust's). Writes bench/results/stream_throughput.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from bench._kafka import (
    DEFAULT_BOOTSTRAP,
    REPO,
    cpu_seconds,
    create_topics,
    delete_prefixed,
    delete_topics,
    machine_cpu_seconds,
    metric_sum,
    own_cpu_seconds,
    require_broker,
    start_worker,
    stop,
    worker_env,
    worker_processes,
    write_result,
)
from detector.sources import SOURCES
from detector.stream.ingest import CONSUMER_FETCH
from tools.synth import generate

PARTITIONS = 4


def _preload_part(args: tuple[str, str, int, int]) -> tuple[int, int, int]:
    """One generator process: `n` records of seed `seed` onto <prefix>.<source>; returns (records, bytes, positives)."""
    bootstrap, prefix, n, seed = args
    # Uncompressed: aiokafka (under Faust) has no lz4 codec here, and all three consumers must read the same bytes.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1000000})
    size = positives = 0
    for g in generate(n, seed=seed, netsupport_rate=0.001):
        while True:
            try:
                producer.produce(f"{prefix}.{g.source}", value=g.raw)
                break
            except BufferError:
                producer.poll(0.05)
        size += len(g.raw)
        positives += bool(g.expect_alert)
    producer.flush()
    return n, size, positives


def topic_records(bootstrap: str, topics: list[str]) -> int:
    """Records held by `topics` (high - low watermark, summed), -1 if one does not exist."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        meta = c.list_topics(timeout=10)
        total = 0
        for t in topics:
            if t not in meta.topics or meta.topics[t].error is not None:
                return -1
            for p in meta.topics[t].partitions:
                low, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                total += high - low
        return total
    finally:
        c.close()


def preload(bootstrap: str, prefix: str, n: int, seed: int) -> dict[str, Any]:
    topics = [f"{prefix}.{s}" for s in SOURCES]
    meta_path = Path(tempfile.gettempdir()) / f"{prefix}.json"
    held = topic_records(bootstrap, topics)
    if held == n and meta_path.exists():
        info: dict[str, Any] = orjson.loads(meta_path.read_bytes())
        print(f"reusing {n:,} pre-loaded records on {prefix}.<source>", flush=True)
        return {**info, "reused": True}
    if held >= 0:
        delete_topics(bootstrap, topics)
        time.sleep(2)
    create_topics(bootstrap, topics, PARTITIONS)
    print(f"pre-loading {n:,} records onto {len(topics)} topics {prefix}.<source> (2 processes) ...", flush=True)
    t = time.perf_counter()
    half = n // 2
    with multiprocessing.get_context("fork").Pool(2) as workers:
        parts = workers.map(_preload_part, [(bootstrap, prefix, half, seed), (bootstrap, prefix, n - half, seed + 1)])
    took = time.perf_counter() - t
    info = {
        "records": sum(p[0] for p in parts),
        "bytes": sum(p[1] for p in parts),
        "positives": sum(p[2] for p in parts),
        "preload_seconds": round(took, 1),
    }
    meta_path.write_bytes(orjson.dumps(info))
    print(f"pre-loaded in {took:.0f} s", flush=True)
    return {**info, "reused": False}


def bare_pass(bootstrap: str, topics: list[str], n: int) -> tuple[float, float, float]:
    """(seconds, the loop's CPU-seconds, the machine's busy CPU-seconds) of one pass, first record to last."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The worker's read-ahead settings: with librdkafka's defaults the bare loop stalls on
            # fetch.queue.backoff.ms (1 s) as the worker did, and would understate the ceiling by a third or more.
            # Its queue is at least 32 MiB: the worker's 16 MiB was as fast for the bare loop here (468-560k
            # against 506-560k records/s), but the ceiling must not be the one to pay for the worker's memory bound.
            **CONSUMER_FETCH,
            "queued.max.messages.kbytes": max(CONSUMER_FETCH["queued.max.messages.kbytes"], 32 * 1024),
        }
    )
    c.subscribe(topics)
    seen = 0
    start: float | None = None
    cpu0 = busy0 = 0.0
    while seen < n:
        batch = c.consume(num_messages=2000, timeout=1.0)
        if batch and start is None:
            start = time.perf_counter()
            r = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = r.ru_utime + r.ru_stime
            busy0 = machine_cpu_seconds()[0]
        seen += sum(1 for m in batch if m.error() is None)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    r = resource.getrusage(resource.RUSAGE_SELF)
    busy = machine_cpu_seconds()[0] - busy0
    c.close()
    return elapsed, r.ru_utime + r.ru_stime - cpu0, busy


def bare(bootstrap: str, topics: list[str], n: int, min_seconds: float) -> dict[str, Any]:
    seconds = cpu = busy = 0.0
    passes = 0
    while seconds < min_seconds:
        s, c, b = bare_pass(bootstrap, topics, n)
        seconds, cpu, busy, passes = seconds + s, cpu + c, busy + b, passes + 1
    return {
        "records": n * passes,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "passes": passes,
        "cores": {"consumer": cpu / seconds, "machine_busy": busy / seconds},
    }


def worker_drain(bootstrap: str, prefix: str, n: int, log: Path) -> dict[str, Any]:
    group = f"bench-worker-{uuid.uuid4().hex[:8]}"
    # Output topics of its own: on shared ones, a round's Faust app (a new group, reading from the earliest
    # offset) would first re-read the previous rounds' matches, and the later rounds measured that extra work.
    env = worker_env(prefix, group, list(SOURCES), outputs=group, DETECTOR_BOOTSTRAP_SERVERS=bootstrap)
    proc, port = start_worker(env, log)
    try:
        # Timed from the first record consumed to the last, so start-up is not counted. The counter is scraped
        # every 0.25 s (a scrape costs the worker CPU); the first and last scrape bound the timing error.
        t0: float | None = None
        cpu0 = busy0 = 0.0
        roles: dict[str, int] = {}
        by_role0: dict[str, float] = {}
        while True:
            done = metric_sum(port, "detector_records_consumed_total")
            now = time.perf_counter()
            if done > 0 and t0 is None:
                roles = worker_processes(proc.pid)
                by_role0 = {k: own_cpu_seconds(p) for k, p in roles.items()}
                t0, cpu0, busy0, first = now, cpu_seconds(proc.pid), machine_cpu_seconds()[0], done
            if done >= n:
                assert t0 is not None
                seconds = now - t0
                # Who used the cores over the span: the worker's two processes, and the machine as a whole (the
                # rest is in effect the broker). On two shared cores, what the Faust app takes the ingest loses.
                cores = {k: (own_cpu_seconds(p) - by_role0[k]) / seconds for k, p in roles.items()}
                cores["machine_busy"] = (machine_cpu_seconds()[0] - busy0) / seconds
                # the records counted at the first scrape were consumed before t0: not in the timed span
                return {
                    "records": int(done - first),
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds(proc.pid) - cpu0,
                    "alerts_matched": int(metric_sum(port, "detector_alerts_emitted_total")),
                    "cores": cores,
                }
            if proc.poll() is not None:
                sys.exit(f"worker exited: see {log}")
            time.sleep(0.25)
    finally:
        stop(proc)
        delete_prefixed(bootstrap, group)  # its outputs, and the Faust app's changelogs and assignor topic


def faust_drain(bootstrap: str, prefix: str, n: int, tmp: Path) -> dict[str, Any]:
    result = tmp / "plain_faust.json"
    log = tmp / "plain_faust.log"
    run = uuid.uuid4().hex[:8]  # its own output topics: a run killed before its clean-up leaves them behind
    env = {
        **os.environ,
        "PF_BOOTSTRAP": bootstrap,
        "PF_GROUP": f"bench-faust-{run}",
        "PF_TOPICS": ",".join(f"{prefix}.{s}={s}" for s in SOURCES),
        "PF_MATCHES": f"{prefix}.pf-matches-{run}",
        "PF_DEADLETTER": f"{prefix}.pf-deadletter-{run}",
        "PF_RECORDS": str(n),
        "PF_RESULT": str(result),
        "PF_DATADIR": str(tmp / "faust"),
    }
    create_topics(bootstrap, [env["PF_MATCHES"], env["PF_DEADLETTER"]], PARTITIONS)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.plain_faust", "worker", "-l", "warn"],
            env=env,
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 3600
        while not result.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"plain Faust agent exited or hung: see {log}")
            if b"Crashed reason=" in log.read_bytes():  # Faust restarts a crashed agent, which would crash again
                sys.exit(f"plain Faust agent crashed: see {log}")
            time.sleep(0.5)
        time.sleep(0.2)
        doc: dict[str, Any] = orjson.loads(result.read_bytes())
        return doc
    finally:
        stop(proc)
        delete_topics(bootstrap, [env["PF_MATCHES"], env["PF_DEADLETTER"]])
        delete_prefixed(bootstrap, env["PF_GROUP"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="broker (default $BENCH_BOOTSTRAP or 9092)")
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-seconds", type=float, default=10.0, help="least timed seconds of the bare loop")
    ap.add_argument("--rounds", type=int, default=2, help="bare/worker rounds, best kept (default 2)")
    ap.add_argument(
        "--faust-records",
        type=int,
        default=200_000,
        help="records the plain Faust agent is timed over (it is ~30x slower; default 200000, at most --records)",
    )
    ap.add_argument("--skip-faust", action="store_true", help="leave out the plain Faust agent")
    ap.add_argument("--fresh-topics", action="store_true", help="pre-load again even if the topics are there")
    ap.add_argument("--delete-topics", action="store_true", help="delete the pre-loaded topics at the end")
    ap.add_argument("--no-json", action="store_true", help="print only; do not write bench/results")
    args = ap.parse_args()
    broker = require_broker(args.bootstrap)
    prefix = f"tput-{args.records}-s{args.seed}"
    if args.fresh_topics:
        delete_topics(args.bootstrap, [f"{prefix}.{s}" for s in SOURCES])
        time.sleep(2)
    corpus = preload(args.bootstrap, prefix, args.records, args.seed)
    topics = [f"{prefix}.{s}" for s in SOURCES]
    rows: dict[str, dict[str, Any]] = {}
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Bare and worker alternate for --rounds rounds; each keeps its best round (the least disturbed by
            # the machine's other load), as the scan bench keeps its best of --repeat.
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}: bare confluent-kafka loop ...", flush=True)
                b = bare(args.bootstrap, topics, args.records, args.min_seconds)
                print(f"round {i + 1}/{args.rounds}: detector worker ...", flush=True)
                w = worker_drain(args.bootstrap, prefix, args.records, Path(tmp) / "worker.log")
                rounds.append({"bare": b, "worker": w})
                print(f"  bare {b['records'] / b['seconds']:,.0f}/s, worker {w['records'] / w['seconds']:,.0f}/s")
            for key in ("bare", "worker"):
                rows[key] = max((r[key] for r in rounds), key=lambda m: m["records"] / m["seconds"])
            if not args.skip_faust:
                print("plain Faust agent ...", flush=True)
                rows["faust"] = faust_drain(args.bootstrap, prefix, min(args.faust_records, args.records), Path(tmp))
    finally:
        if args.delete_topics:  # each worker's outputs went with it (worker_drain)
            delete_topics(args.bootstrap, topics)
    for r in rows.values():
        r["records_per_s"] = r["records"] / r["seconds"]
        r["cpu_us_per_record"] = r["cpu_seconds"] / r["records"] * 1e6
        r["records_per_cpu_s"] = r["records"] / r["cpu_seconds"] if r["cpu_seconds"] else 0.0
    ceiling = rows["bare"]
    for r in rows.values():
        r["ratio_to_bare"] = r["records_per_s"] / ceiling["records_per_s"]
        r["ratio_to_bare_per_cpu_s"] = r["records_per_cpu_s"] / ceiling["records_per_cpu_s"]
    names = {
        "bare": "bare confluent-kafka loop",
        "worker": "detector worker",
        "faust": "plain Faust agent",
    }
    print()
    print(f"{'':28}{'records/s':>11}{'/ bare':>8}{'s':>7}{'CPU s':>8}{'CPU µs/rec':>11}{'rec/CPU-s / bare':>17}")
    for key, r in rows.items():
        print(
            f"{names[key]:28}{r['records_per_s']:>11,.0f}{r['ratio_to_bare']:>8.2f}{r['seconds']:>7.1f}"
            f"{r['cpu_seconds']:>8.1f}{r['cpu_us_per_record']:>11.1f}{r['ratio_to_bare_per_cpu_s']:>17.2f}"
        )
    w, b = rows["worker"]["cores"], rows["bare"]["cores"]
    print(
        f"cores busy: bare round {b['machine_busy']:.2f} (the loop {b['consumer']:.2f}); worker round "
        f"{w['machine_busy']:.2f} (Faust app {w['faust_app']:.2f}, ingest {w.get('ingest', 0.0):.2f}, "
        f"the rest {w['machine_busy'] - w['faust_app'] - w.get('ingest', 0.0):.2f})"
    )
    ratio = rows["worker"]["ratio_to_bare"]
    print(f"worker / bare = {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
    if "faust" in rows:
        print(f"worker / plain Faust = {rows['worker']['records_per_s'] / rows['faust']['records_per_s']:.1f}x")
    if not args.no_json:
        path = write_result(
            "stream_throughput",
            {
                "bench": "stream_throughput",
                "command": (
                    f"python -m bench.stream_throughput --records {args.records} --rounds {args.rounds} "
                    f"--faust-records {args.faust_records}"
                ),
                "corpus": {
                    **corpus,
                    "topics": len(topics),
                    "partitions_per_topic": PARTITIONS,
                    "mix": "tools.synth generate, 8 sources, netsupport_rate 0.001, uncompressed",
                },
                "broker_at_start": broker,
                "consumers": {k: {**v, "name": names[k]} for k, v in rows.items()},
                "rounds": [
                    {k: {**m, "records_per_s": m["records"] / m["seconds"]} for k, m in r.items()} for r in rounds
                ],
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
