"""Worker RSS over a steady run: one `detector worker` fed at a paced rate, RSS sampled every second.

    make kafka-up && .venv/bin/python -m bench.stream_memory [--bootstrap HOST:PORT] [--rate 50000] [--minutes 10]

The input is the realistic mix of tools/synth.py (8 sources, mean ~2.7 KB, 0.1% NetSupport positives, each with
its own sequence number so alerts are distinct), cycled from a pool of distinct records, produced by a paced
producer in this process (lz4, linger 5 ms). The worker's VmRSS (/proc, the whole process: Python heap,
librdkafka's queues, Faust) is read every second; its consumed-records counter every 5 s, to tell whether it
keeps up. Input topics are created with a small retention (segments of 64 MB, 256 MB per partition) so a long
run does not fill the disk; they are deleted at the end.

Warm-up RSS is the RSS when the warm-up (the first --warmup-fraction of the run, at most 60 s) ends; growth is
(final - warm-up) / warm-up. Targets: growth < 10 % and max < 250 MB. Writes bench/results/stream_memory.json.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench._kafka import (
    DEFAULT_BOOTSTRAP,
    Paced,
    build_pool,
    cpu_seconds,
    create_topics,
    delete_prefixed,
    metric_sum,
    paced_produce,
    paced_producer,
    require_broker,
    rss_bytes,
    start_worker,
    stop,
    worker_env,
    write_result,
)
from detector.sources import SOURCES

MB = 1024 * 1024
GROWTH_TARGET = 0.10
RSS_TARGET_MB = 250.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="broker (default $BENCH_BOOTSTRAP or 9092)")
    ap.add_argument("--rate", type=float, default=50_000.0, help="records/s offered (default 50000)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the steady run (default 10)")
    ap.add_argument("--warmup-fraction", type=float, default=0.1)
    ap.add_argument("--pool", type=int, default=60_000, help="distinct benign records cycled by the producer")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--name", default="stream_memory", help="result file bench/results/<name>.json")
    ap.add_argument("--note", default="", help="a sentence for the report (e.g. why this rate)")
    ap.add_argument("--no-json", action="store_true", help="print only; do not write bench/results")
    args = ap.parse_args()
    broker = require_broker(args.bootstrap)
    seconds = args.minutes * 60
    warmup = min(60.0, seconds * args.warmup_fraction)
    print(f"generating a pool of {args.pool:,} records ...", flush=True)
    pool = build_pool(args.pool, args.seed)
    prefix = f"mem{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{s}" for s in SOURCES]
    retention = {"segment.bytes": str(64 * MB), "retention.bytes": str(256 * MB), "retention.ms": "120000"}
    create_topics(args.bootstrap, topics, config=retention)
    env = worker_env(prefix, f"{prefix}-group", list(SOURCES), DETECTOR_BOOTSTRAP_SERVERS=args.bootstrap)
    samples: list[tuple[float, int]] = []  # (seconds since the run started, RSS bytes)
    progress: list[tuple[float, float, int]] = []  # (seconds, records consumed by the worker, records produced)
    res = Paced()
    stopping = threading.Event()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc, port = start_worker(env, Path(tmp) / "worker.log")
            rss_at_ready = rss_bytes(proc.pid)
            start = time.monotonic()

            def sample() -> None:
                tick = 0
                while not stopping.is_set():
                    now = time.monotonic() - start
                    samples.append((now, rss_bytes(proc.pid)))
                    if tick % 5 == 0:
                        with contextlib.suppress(OSError):  # a scrape timed out under load: skip that one
                            produced = res.sent
                            progress.append((now, metric_sum(port, "detector_records_consumed_total"), produced))
                    tick += 1
                    stopping.wait(max(0.0, start + tick - time.monotonic()))

            sampler = threading.Thread(target=sample, daemon=True)
            cpu0 = cpu_seconds(proc.pid)
            sampler.start()
            producer = paced_producer(args.bootstrap)
            print(f"{args.rate:,.0f} records/s offered for {args.minutes:g} min ...", flush=True)
            paced_produce(producer, prefix, pool, args.rate, seconds, 1000, seq0=0, res=res)
            producer.flush()
            # Let the worker catch up (or show that it cannot): up to 60 s more, still sampled.
            caught_up = time.monotonic()
            while time.monotonic() - caught_up < 60:
                if metric_sum(port, "detector_records_consumed_total") >= res.sent:
                    break
                time.sleep(1)
            lag_drain_s = time.monotonic() - caught_up
            consumed = metric_sum(port, "detector_records_consumed_total")
            cpu = cpu_seconds(proc.pid) - cpu0
            stopping.set()
            sampler.join(5)
            stop(proc)
    finally:
        delete_prefixed(args.bootstrap, prefix)  # with the Faust app's topics, named after its group
    in_run = [(t, r) for t, r in samples if t <= res.seconds]
    warm = [r for t, r in in_run if t <= warmup]
    warm_rss = warm[-1] if warm else in_run[0][1]
    final_rss = in_run[-1][1]
    max_rss = max(r for _, r in samples)
    growth = (final_rss - warm_rss) / warm_rss
    # the worker's own rate over the run, from the counter (first to last sample within the run)
    run_progress = [(t, n) for t, n, _ in progress if t <= res.seconds]
    lags = [max(0, int(p - n)) for t, n, p in progress if t <= res.seconds]
    max_lag = max(lags, default=0)
    consumed_rate = (
        (run_progress[-1][1] - run_progress[0][1]) / (run_progress[-1][0] - run_progress[0][0])
        if len(run_progress) > 1 and run_progress[-1][0] > run_progress[0][0]
        else 0.0
    )
    # Kept up: the lag never exceeded 5 s of input (a worker behind fills librdkafka's prefetch queue: memory).
    kept_up = max_lag <= 5 * res.rate and consumed >= res.sent
    print()
    print(f"offered {args.rate:,.0f}/s; produced {res.rate:,.0f}/s over {res.seconds:.0f} s ({res.sent:,} records)")
    print(
        f"worker consumed {consumed_rate:,.0f}/s during the run; {consumed:,.0f} of {res.sent:,} by the end "
        f"({'kept up: lag at most 5 s of input' if kept_up else 'fell behind'}; drained {lag_drain_s:.0f} s after)"
    )
    end_lag = lags[-1] if lags else 0
    print(f"lag (produced - consumed, sampled every 5 s): max {max_lag:,}, at the end of input {end_lag:,}")
    print(f"{'RSS MB':>10}{'ready':>9}{'warm-up':>9}{'final':>9}{'max':>9}{'growth':>9}")
    print(
        f"{'':>10}{rss_at_ready / MB:>9.1f}{warm_rss / MB:>9.1f}{final_rss / MB:>9.1f}{max_rss / MB:>9.1f}"
        f"{growth:>9.1%}"
    )
    met_growth, met_max = growth < GROWTH_TARGET, max_rss / MB < RSS_TARGET_MB
    print(f"targets: growth < 10%: {'met' if met_growth else 'NOT met'}; < 250 MB: {'met' if met_max else 'NOT met'}")
    if not args.no_json:
        result: dict[str, Any] = {
            "bench": "stream_memory",
            "command": (
                f"python -m bench.stream_memory --rate {args.rate:g} --minutes {args.minutes:g}"
                + ("" if args.name == "stream_memory" else f" --name {args.name}")
            ),
            "note": args.note,
            "broker_at_start": broker,
            "offered_rate": args.rate,
            "achieved_rate": round(res.rate, 1),
            "worker_consumed_rate": round(consumed_rate, 1),
            "records_produced": res.sent,
            "records_consumed": int(consumed),
            "kept_up": kept_up,
            "drain_after_run_s": round(lag_drain_s, 1),
            "max_lag_records": max_lag,
            "lag_samples": [[round(t, 1), max(0, int(p - n))] for t, n, p in progress],
            "run_seconds": round(res.seconds, 1),
            "warmup_seconds": warmup,
            "worker_cpu_seconds": round(cpu, 1),
            "rss_mb": {
                "at_ready": round(rss_at_ready / MB, 1),
                "warmup": round(warm_rss / MB, 1),
                "final": round(final_rss / MB, 1),
                "max": round(max_rss / MB, 1),
            },
            "growth": round(growth, 4),
            "targets": {"growth_lt": GROWTH_TARGET, "max_mb_lt": RSS_TARGET_MB},
            "targets_met": {"growth": met_growth, "max": met_max},
            "samples": [[round(t, 1), round(r / MB, 2)] for t, r in samples],
        }
        path = write_result(args.name, result)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
