"""Produce -> alert latency through one `detector worker` at steady input rates (default 1k, 5k and 50k/s).

    make kafka-up && .venv/bin/python -m bench.stream_latency [--bootstrap HOST:PORT] [--rates 1000,5000,50000]
        [--seconds 60]

One worker, started once, reads eight topics (one per source) while a paced producer writes the generator's
realistic mix (benign records and near-misses, mean ~2.7 KB) at each rate in turn, for a timed window each. Every
`rate / positives-per-second`-th record is a NetSupport positive whose command line carries its sequence
number and the time it was handed to the producer (ns since the epoch); a reader in its own process (so the
producer's loop cannot delay it) takes alerts off the alerts topic and subtracts. Same machine, same clock.

Latency = alert read from the alerts topic - positive handed to the producer, so it includes the producer's
linger (5 ms, lz4), the broker, the worker's batching, the matches topic, the Faust agent (prevalence, cap)
and the alerts topic. Lost = positives produced whose alert never came (30 s grace after each window).
Split at the broker's acknowledgement of each positive (librdkafka's delivery latency): before it, the load
generator and the broker, which share the machine's cores with the worker; after it, the worker's pipeline.
Positives per second: max(0.1% of the rate, --min-positives-per-s), so low rates still give percentiles.
Writes bench/results/stream_latency.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import uuid
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, cast

import orjson
from confluent_kafka import Consumer

from bench._kafka import (
    DEFAULT_BOOTSTRAP,
    TOKEN_RE,
    build_pool,
    cpu_seconds,
    create_topics,
    delete_prefixed,
    machine_cpu_seconds,
    metric_sum,
    paced_produce,
    paced_producer,
    quantiles,
    require_broker,
    start_worker,
    stop,
    worker_env,
    write_result,
)
from detector.sources import SOURCES
from detector.times import iso_to_epoch

GRACE_S = 30.0


def cores_line(cores: dict[str, float], ncpu: int) -> str:
    """Who used the machine's cores in a window (cores = CPU-seconds per second)."""
    return (
        f"cores busy {cores['busy']:.2f} of {ncpu}: worker {cores['worker']:.2f}, producer {cores['producer']:.2f}, "
        f"reader {cores['reader']:.2f}, the rest (broker, other jobs) {cores['rest']:.2f}; stolen {cores['stolen']:.2f}"
    )


def read_alerts(bootstrap: str, topic: str, out: str, ready: EventType, done: EventType, matches: str = "") -> None:
    """Reader process, appending to `out` one line per alert carrying a token:
    "<seq> <latency ns> <produce -> evaluated ns> <produced ns> <alert's Kafka timestamp ms>",
    and with `matches`, one per matches-topic message carrying one: "H <seq> <observe|match> <timestamp ms>"
    (the hop the alert took). Kafka timestamps are CreateTime: when the message was handed to its producer."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 5,  # the reader must not add its own long poll to the figure
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic, matches] if matches else [topic])
    with open(out, "a", buffering=1) as fh:
        ready.set()
        while not done.is_set():
            # poll, not consume(num_messages=...): a batch consume waits for its count or its timeout, which
            # would add up to the whole timeout to every figure.
            first = reader.poll(0.05)
            if first is None:
                continue
            now = time.time_ns()
            for m in [first, *reader.consume(num_messages=500, timeout=0)]:
                value = m.value()
                if m.error() is not None or not value:
                    continue
                found = TOKEN_RE.search(value)
                if not found:
                    continue
                stamp = m.timestamp()[1]
                if m.topic() != topic:
                    kind = "observe" if b'"type":"observe"' in value[:40] else "match"
                    fh.write(f"H {int(found.group(1))} {kind} {stamp}\n")
                    continue
                produced = int(found.group(2))
                # The alert's @timestamp is when the ingest evaluated the record (ms): splits the figure
                # into produce -> evaluated (producer, broker, ingest fetch and batch) and the rest (matches
                # topic, the Faust agent's hops, the alerts topic, this reader).
                try:
                    evaluated = iso_to_epoch(orjson.loads(value).get("@timestamp"))
                except orjson.JSONDecodeError:
                    evaluated = None
                stage = -1 if evaluated is None else int(evaluated * 1e9) - produced
                fh.write(f"{int(found.group(1))} {now - produced} {stage} {produced} {stamp}\n")
    reader.close()


def received(path: Path) -> dict[int, list[tuple[int, int]]]:
    """seq -> (latency, produce-to-evaluation) in ns of its alerts so far (more than one: a duplicate)."""
    seen: dict[int, list[tuple[int, int]]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:
            seen.setdefault(int(parts[0]), []).append((int(parts[1]), int(parts[2])))
    return seen


HOPS = (
    "ingest: evaluated -> match produced",
    "agent: match -> alert sent",
    "alerts topic -> reader",
)


def hops(path: Path, seqs: set[int]) -> dict[str, dict[str, float]]:
    """Quantiles (ms) of each hop the first alert of each of `seqs` took after its record was evaluated.

    From the Kafka timestamps (ms) of the first matches-topic message the ingest produced for it (an observation
    or a plain match) and of the alert the agent published, with the alert's @timestamp (evaluated, ms) and the
    time it was read."""
    sent: dict[int, int] = {}
    alerts: dict[int, tuple[float, float, int]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "H":
            sent.setdefault(int(parts[1]), int(parts[3]))
        elif len(parts) == 5 and int(parts[0]) not in alerts and parts[2] != "-1":
            produced = int(parts[3])
            alerts[int(parts[0])] = ((produced + int(parts[2])) / 1e6, (produced + int(parts[1])) / 1e6, int(parts[4]))
    spans: dict[str, list[float]] = {h: [] for h in HOPS}
    for seq in seqs:
        if seq not in alerts or seq not in sent:
            continue
        evaluated_ms, read_ms, alert_ms = alerts[seq]
        match = sent[seq]
        for hop, span in zip(HOPS, (match - evaluated_ms, alert_ms - match, read_ms - alert_ms), strict=True):
            spans[hop].append(span)
    return {h: {k: round(v, 2) for k, v in quantiles(sorted(v)).items()} for h, v in spans.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="broker (default $BENCH_BOOTSTRAP or 9092)")
    ap.add_argument("--rates", default="1000,5000,50000", help="records/s, comma-separated, run in this order")
    # 60 s: the p99 of a 15-s window at 50k records/s is the 8th-worst of 749 alerts. Fifteen such windows,
    # alternating this worker with four earlier versions of it (none consistently better), gave 48-175 ms;
    # 60 s gives 3,000 alerts and a steadier figure.
    ap.add_argument("--seconds", type=float, default=60.0, help="timed window per rate (default 60)")
    ap.add_argument("--min-positives-per-s", type=float, default=20.0)
    ap.add_argument("--pool", type=int, default=60_000, help="distinct benign records cycled by the producer")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-json", action="store_true", help="print only; do not write bench/results")
    args = ap.parse_args()
    broker = require_broker(args.bootstrap)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print(f"generating a pool of {args.pool:,} records and positive templates ...", flush=True)
    pool = build_pool(args.pool, args.seed)
    prefix = f"lat{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{s}" for s in SOURCES]
    create_topics(args.bootstrap, topics)
    env = worker_env(prefix, f"{prefix}-group", list(SOURCES), DETECTOR_BOOTSTRAP_SERVERS=args.bootstrap)
    rows: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "worker.log"
            proc, port = start_worker(env, log)
            out = Path(tmp) / "alerts.txt"
            out.touch()
            ready, done = ctx.Event(), ctx.Event()
            reader = ctx.Process(
                target=read_alerts,
                args=(args.bootstrap, f"{prefix}.alerts", str(out), ready, done, f"{prefix}.matches"),
            )
            reader.start()
            ready.wait(60)
            producer = paced_producer(args.bootstrap)
            try:
                # Warm-up, not counted: the worker's first batches, the agent's first match, the reader's join.
                warm = paced_produce(producer, prefix, pool, 1000, 5.0, 100, seq0=90_000_000)
                producer.flush()
                deadline = time.monotonic() + GRACE_S
                while time.monotonic() < deadline:
                    if sum(1 for s in received(out) if s >= 90_000_000) >= warm.positives:
                        break
                    time.sleep(0.2)
                seq0 = 0
                for rate in rates:
                    every = max(1, round(rate / max(rate * 0.001, args.min_positives_per_s)))
                    consumed0 = metric_sum(port, "detector_records_consumed_total")
                    cpu0 = cpu_seconds(proc.pid)
                    # Who used the two cores in the window: the worker, this process (the paced producer), the
                    # reader, and the rest (the broker, other jobs on the machine).
                    mine0, reader0, (busy0, stolen0) = (
                        time.process_time(),
                        cpu_seconds(cast(int, reader.pid)),
                        machine_cpu_seconds(),
                    )
                    print(f"{rate:,.0f} records/s for {args.seconds:.0f} s (a positive every {every}) ...", flush=True)
                    res = paced_produce(producer, prefix, pool, rate, args.seconds, every, seq0)
                    producer.flush()
                    cpu_window = cpu_seconds(proc.pid) - cpu0
                    busy, stolen = (
                        now - then for now, then in zip(machine_cpu_seconds(), (busy0, stolen0), strict=True)
                    )
                    load_cpu = time.process_time() - mine0
                    reader_cpu = cpu_seconds(cast(int, reader.pid)) - reader0
                    cores = {
                        "busy": busy,
                        "worker": cpu_window,
                        "producer": load_cpu,
                        "reader": reader_cpu,
                        "rest": busy - cpu_window - load_cpu - reader_cpu,
                        "stolen": stolen,
                    }
                    wanted = set(range(seq0, seq0 + res.positives))
                    deadline = time.monotonic() + GRACE_S
                    while time.monotonic() < deadline:
                        got = received(out)
                        if wanted <= got.keys():
                            break
                        time.sleep(0.2)
                    drained = time.monotonic() - (deadline - GRACE_S)
                    consumed = metric_sum(port, "detector_records_consumed_total") - consumed0
                    got = received(out)
                    mine = {s: v for s, v in got.items() if s in wanted}
                    lat_ms = sorted(v[0][0] / 1e6 for v in mine.values())
                    q = quantiles(lat_ms)
                    to_eval = [v[0][1] / 1e6 for v in mine.values() if v[0][1] != -1]
                    after_eval = [(v[0][0] - v[0][1]) / 1e6 for v in mine.values() if v[0][1] != -1]
                    to_ack = [res.acked[s] * 1e3 for s in mine if s in res.acked]
                    after_ack = [v[0][0] / 1e6 - res.acked[s] * 1e3 for s, v in mine.items() if s in res.acked]
                    rows.append(
                        {
                            "target_rate": rate,
                            "achieved_rate": round(res.rate, 1),
                            "window_s": round(res.seconds, 2),
                            "records_produced": res.sent,
                            "records_consumed_by_worker": int(consumed),
                            "producer_full_queue_waits": res.full_queue_waits,
                            "positives": res.positives,
                            "alerts_received": len(mine),
                            "alerts_lost": len(wanted - mine.keys()),
                            "duplicates": sum(len(v) - 1 for v in mine.values()),
                            "worker_cpu_s_in_window": round(cpu_window, 2),
                            "worker_cpu_share": round(cpu_window / res.seconds, 2),
                            "machine_cores": {k: round(v / res.seconds, 2) for k, v in cores.items()},
                            "drain_after_window_s": round(drained, 1),
                            "latency_ms": {k: round(v, 2) for k, v in q.items()},
                            "produce_to_evaluation_ms": {k: round(v, 2) for k, v in quantiles(to_eval).items()},
                            "evaluation_to_alert_ms": {k: round(v, 2) for k, v in quantiles(after_eval).items()},
                            "produce_to_broker_ack_ms": {k: round(v, 2) for k, v in quantiles(to_ack).items()},
                            "broker_ack_to_alert_ms": {k: round(v, 2) for k, v in quantiles(after_ack).items()},
                            "hops_ms": hops(out, wanted),
                            "latencies_ms": [round(x, 2) for x in lat_ms],
                        }
                    )
                    seq0 += 1_000_000
            finally:
                done.set()
                reader.join(30)
                stop(proc)
    finally:
        delete_prefixed(args.bootstrap, prefix)  # with the Faust app's topics, named after its group
    print()
    print(
        f"{'target/s':>9}{'achieved/s':>12}{'window s':>9}{'alerts':>9}{'lost':>6}{'dup':>5}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'worker CPU':>11}"
    )
    for r in rows:
        lat = r["latency_ms"]
        print(
            f"{r['target_rate']:>9,.0f}{r['achieved_rate']:>12,.0f}{r['window_s']:>9.1f}"
            f"{r['alerts_received']:>5}/{r['positives']:<4}{r['alerts_lost']:>5}{r['duplicates']:>5}"
            f"{lat['p50']:>9.1f}{lat['p95']:>9.1f}{lat['p99']:>9.1f}{lat['max']:>9.1f}{r['worker_cpu_share']:>10.0%}"
        )
    print("\nwhere the time goes (alert @timestamp = evaluated by the ingest, ms precision):")
    for r in rows:
        a, b = r["produce_to_evaluation_ms"], r["evaluation_to_alert_ms"]
        print(
            f"{r['target_rate']:>9,.0f}/s  produce -> evaluated p50 {a['p50']:.1f} p99 {a['p99']:.1f} ms; "
            f"evaluated -> alert read p50 {b['p50']:.1f} p99 {b['p99']:.1f} ms"
        )
        c, d = r["produce_to_broker_ack_ms"], r["broker_ack_to_alert_ms"]
        print(
            f"{'':>13}produce -> acknowledged by the broker p50 {c['p50']:.1f} p99 {c['p99']:.1f} ms; "
            f"acknowledged -> alert read p50 {d['p50']:.1f} p99 {d['p99']:.1f} ms"
        )
        for hop, q in r["hops_ms"].items():
            print(f"{'':>13}{hop:<44} p50 {q['p50']:>6.1f}  p99 {q['p99']:>6.1f} ms")
        print(f"{'':>13}{cores_line(r['machine_cores'], os.cpu_count() or 1)}")
    if not args.no_json:
        path = write_result(
            "stream_latency",
            {
                "bench": "stream_latency",
                "command": "python -m bench.stream_latency " + f"--rates {args.rates} --seconds {args.seconds:g}",
                "seconds_per_rate": args.seconds,
                "record_mix": "tools.synth generate mix (8 sources), positives time-stamped",
                "mean_record_bytes": round(sum(len(r) for _, r in pool.benign) / len(pool.benign)),
                "producer": "confluent-kafka, linger.ms 5, lz4, acks all",
                "broker_at_start": broker,
                "rates": rows,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
