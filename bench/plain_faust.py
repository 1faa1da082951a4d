"""The design the product rejected for the ingest thread: a plain Faust agent doing the worker's work per record.

    .venv/bin/python -m bench.plain_faust worker -l warn      (configured by the PF_* environment, below)

One Faust app, one agent iterating the eight raw topics as a Faust stream: per record Engine.process (the same
engine, prefilter included), and what the worker's ingest produces from it sent with Faust: dead letters
(original bytes) and the matches topic's messages (detector.stream.prevalence.prevalence_messages). No cap,
suppression or tables: this is the ingest's work only, so the comparison with `detector worker` is about the
consume loop (Faust's per-event machinery against a batched confluent-kafka consumer).

bench/stream_throughput.py starts it as a subprocess. Once it has processed PF_RECORDS records it writes
PF_RESULT (JSON: wall and CPU time from its first record to the last) and keeps running until terminated.

PF_BOOTSTRAP, PF_GROUP (the app id, hence the consumer group), PF_TOPICS (topic=source,...), PF_MATCHES,
PF_DEADLETTER, PF_RECORDS, PF_RESULT, PF_DATADIR (Faust's data directory).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.stream.prevalence import prevalence_messages


def create_app() -> faust.App:
    env = os.environ
    topics = dict(pair.split("=", 1) for pair in env["PF_TOPICS"].split(","))
    target = int(env["PF_RECORDS"])
    result = Path(env["PF_RESULT"])
    app = faust.App(
        env["PF_GROUP"],
        broker=f"kafka://{env['PF_BOOTSTRAP']}",
        store="memory://",
        datadir=env.get("PF_DATADIR", "plain-faust-data"),
        autodiscover=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_allow_declare=False,
    )
    as_bytes: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    raw_topics = app.topic(*topics, **as_bytes)
    matches = app.topic(env["PF_MATCHES"], **as_bytes)
    deadletter = app.topic(env["PF_DEADLETTER"], **as_bytes)
    engine = Engine(load_rules())
    rule_ids = [r.rule_id for r in engine.rules]
    state: dict[str, Any] = {"n": 0, "t0": 0.0, "cpu0": 0.0, "sent": 0}

    @app.agent(raw_topics, name="plain_ingest", concurrency=1)
    async def plain_ingest(stream: Any) -> None:
        process = engine.process
        async for event in stream.events():
            if state["n"] == 0:
                state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
            raw = event.value or b""
            message = event.message
            out = process(raw, topics.get(message.topic))
            if not out.prefiltered:
                if out.rejection is not None:
                    await deadletter.send(key=message.key, value=raw)
                    state["sent"] += 1
                else:
                    for key, value in prevalence_messages(out, time.time(), rule_ids):
                        await matches.send(key=key, value=value)
                        state["sent"] += 1
            state["n"] += 1
            if state["n"] == target:
                took = time.perf_counter() - state["t0"]
                cpu = time.process_time() - state["cpu0"]
                doc = {"records": target, "seconds": took, "cpu_seconds": cpu, "sent": state["sent"]}
                result.write_bytes(orjson.dumps(doc))

    return app


if __name__ == "__main__":
    create_app().main()
