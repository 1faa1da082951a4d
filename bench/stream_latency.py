"""p50/p99 from produce to alert through one `detector worker`, at a steady input rate (default 2,000/s).

    make kafka-up && .venv/bin/python -m bench.stream_latency [--rate 2000] [--seconds 30]

Latency of one alert = the time the alert is read from the alerts topic minus the time its source
record was handed to the producer (same machine, same clock). The input mixes the eight sources with
~1% NetSupport so that a 30 s run yields hundreds of alerts to take percentiles over.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench._kafka import require_broker, start_worker
from detector.sources import SOURCES
from tools.synth import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--netsupport-rate", type=float, default=0.01)
    args = ap.parse_args()
    require_broker(args.bootstrap)
    prefix = f"lat{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{s}" for s in SOURCES]
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for fut in admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in topics]).values():
        fut.result()
    n = int(args.rate * args.seconds)
    records = list(generate(n, seed=5, netsupport_rate=args.netsupport_rate))
    env = {
        "DETECTOR_BOOTSTRAP_SERVERS": args.bootstrap,
        "DETECTOR_CONSUMER_GROUP": f"{prefix}-group",
        "DETECTOR_TOPICS": ",".join(f"{prefix}.{s}={s}" for s in SOURCES),
        "DETECTOR_ALERTS_TOPIC": f"{prefix}.alerts",
        "DETECTOR_DEADLETTER_TOPIC": f"{prefix}.deadletter",
        "DETECTOR_MATCHES_TOPIC": f"{prefix}.matches",
        "DETECTOR_MAX_SIGNALS": "0",
        "DETECTOR_AUTO_OFFSET_RESET": "latest",
    }
    sent_at: dict[tuple[str, int, int], float] = {}
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, _ = start_worker(env, Path(tmp) / "worker.log")
        reader = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": f"{prefix}-reader",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,  # the reader must not add its own long-poll delay to the figure
            }
        )
        reader.subscribe([f"{prefix}.alerts"])
        stop = threading.Event()

        def read_alerts() -> None:
            while not stop.is_set():
                for m in reader.consume(num_messages=1, timeout=0.05):
                    if m.error() is not None or not m.value():
                        continue
                    now = time.time()
                    origin = orjson.loads(m.value()).get("detector.origin", {})
                    key = (origin.get("topic"), origin.get("partition"), origin.get("offset"))
                    if key in sent_at:
                        latencies.append(now - sent_at[key])

        t = threading.Thread(target=read_alerts)
        t.start()
        producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0, "acks": "all"})

        def delivered(sent: float) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is None:
                    sent_at[(msg.topic(), msg.partition(), msg.offset())] = sent

            return on_delivery

        start = time.perf_counter()
        expected = 0
        for i, g in enumerate(records):
            delay = start + i / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.produce(f"{prefix}.{g.source}", value=g.raw, on_delivery=delivered(time.time()))
            producer.poll(0)
            expected += bool(g.expect_alert)
        producer.flush()
        achieved = n / (time.perf_counter() - start)
        deadline = time.monotonic() + 30
        while len(latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        t.join()
        reader.close()
        proc.terminate()
        proc.wait(60)
    admin.delete_topics([*topics, f"{prefix}.alerts", f"{prefix}.deadletter", f"{prefix}.matches"])
    if not latencies:
        raise SystemExit("no alerts were received")
    qs = statistics.quantiles(latencies, n=100)
    print(f"input {achieved:,.0f} records/s for {args.seconds:.0f} s; alerts received {len(latencies)}/{expected}")
    print(
        f"produce -> alert latency: p50 {qs[49] * 1000:.1f} ms, p99 {qs[98] * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
