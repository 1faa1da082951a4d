"""Alerts/s one worker publishes in an alert storm: its Faust agent draining a matches topic full of alerts.

    make kafka-up && .venv/bin/python -m bench.alert_storm [--alerts 20000] [--rounds 2]

The ingest loop finds matches in bulk and hands them to the Faust agent (`publish_alerts`) over the internal
matches topic; the agent keeps fleet prevalence and the cap, sends each alert and waits for the broker. In an
alert storm (a tool pushed to the whole fleet at once) that agent, not the ingest, sets the pace. Here the
matches topic is pre-loaded with --alerts messages as the ingest loop writes them (one per positive execution,
each carrying its alert, NetSupport positives of the eight sources, distinct command lines), then a worker
(cap off) is started on it and timed from its first alert published to the last. CPU is the Faust app's
(the worker's main process) over the same span. Writes bench/results/alert_storm.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench._kafka import (
    DEFAULT_BOOTSTRAP,
    PLACEHOLDER,
    _positive_templates,
    create_topics,
    delete_prefixed,
    metric_sum,
    own_cpu_seconds,
    require_broker,
    start_worker,
    stop,
    worker_env,
    write_result,
)
from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import SOURCES
from detector.stream.prevalence import prevalence_messages

EMITTED = "detector_alerts_emitted_total"


def preload(bootstrap: str, topic: str, n: int) -> tuple[int, int]:
    """n observation messages carrying an alert each, as the ingest loop produces them: (messages, bytes)."""
    rules = load_rules()
    engine, ids = Engine(rules), [r.rule_id for r in rules]
    templates = _positive_templates(5)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "consistent_random", "linger.ms": 20})
    sent = size = 0
    for i in range(n):
        source, raw = templates[i % len(templates)]
        out = engine.process(raw.replace(PLACEHOLDER, b"#@%08d@%019d" % (i, time.time_ns())), source)
        for key, value in prevalence_messages(out, time.time(), ids):
            producer.produce(topic, value, key)
            sent, size = sent + 1, size + len(value)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush()
    return sent, size


def storm(bootstrap: str, n: int, log: Path) -> dict[str, Any]:
    prefix = f"storm-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [f"{prefix}.{s}" for s in SOURCES] + [f"{prefix}.matches"])
    try:
        messages, size = preload(bootstrap, f"{prefix}.matches", n)
        proc, port = start_worker(worker_env(prefix, f"{prefix}-group", list(SOURCES)), log)
        try:
            t0: float | None = None
            cpu0 = first = 0.0
            while True:
                done = metric_sum(port, EMITTED)
                now = time.perf_counter()
                if done > 0 and t0 is None:
                    t0, cpu0, first = now, own_cpu_seconds(proc.pid), done
                if done >= n:
                    assert t0 is not None
                    seconds = now - t0
                    alerts = done - first  # those counted at the first scrape were published before t0
                    cpu = own_cpu_seconds(proc.pid) - cpu0
                    return {
                        "alerts": int(alerts),
                        "seconds": seconds,
                        "alerts_per_s": alerts / seconds,
                        "faust_app_cpu_seconds": cpu,
                        "cpu_ms_per_alert": cpu / alerts * 1e3,
                        "faust_app_cores": cpu / seconds,
                        "matches_messages": messages,
                        "mean_message_bytes": size / messages,
                    }
                if proc.poll() is not None:
                    sys.exit(f"worker exited: see {log}")
                time.sleep(0.25)
        finally:
            stop(proc)
    finally:
        delete_prefixed(bootstrap, prefix)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="broker (default $BENCH_BOOTSTRAP or 9092)")
    ap.add_argument("--alerts", type=int, default=20_000, help="alerts pre-loaded (default 20000: >= 10 s)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, the best kept (default 2)")
    ap.add_argument("--no-json", action="store_true", help="print only; do not write bench/results")
    args = ap.parse_args()
    broker = require_broker(args.bootstrap)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}: pre-loading {args.alerts:,} alerts, then one worker ...", flush=True)
            r = storm(args.bootstrap, args.alerts, Path(tmp) / "worker.log")
            rounds.append(r)
            print(
                f"  {r['alerts_per_s']:,.0f} alerts/s over {r['seconds']:.1f} s; Faust app "
                f"{r['cpu_ms_per_alert']:.2f} ms CPU per alert ({r['faust_app_cores']:.2f} cores)"
            )
    best = max(rounds, key=lambda r: r["alerts_per_s"])
    print(f"best: {best['alerts_per_s']:,.0f} alerts/s, {best['cpu_ms_per_alert']:.2f} ms of Faust app CPU per alert")
    if not args.no_json:
        path = write_result(
            "alert_storm",
            {
                "bench": "alert_storm",
                "command": f"python -m bench.alert_storm --alerts {args.alerts} --rounds {args.rounds}",
                "broker_at_start": broker,
                "best": best,
                "rounds": rounds,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
