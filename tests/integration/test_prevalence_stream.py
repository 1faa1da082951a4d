"""Fleet prevalence on the real broker: alerts enriched by the owner of their executable's row, the table
surviving a worker restart (restored from its changelog), and two workers splitting the matches partitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.harness import Namespace, Reader, WorkerProcess, alerts_only, create_topics, produce

pytestmark = pytest.mark.kafka

FLEET = Path(__file__).resolve().parents[1] / "fixtures" / "prevalence" / "fleet.ndjson"
LINES = FLEET.read_bytes().splitlines()


def _record(host: str, ts: str) -> bytes:
    doc = json.loads(LINES[2])  # wks-fin-001 running C:\ProgramData\NSM\client32.exe
    doc["host"]["name"] = doc["host"]["id"] = host
    doc["@timestamp"] = ts
    return json.dumps(doc).encode()


def _tail(docs: list[dict]) -> list[tuple[str, str]]:
    return [(d["host"]["name"], d["kibana.alert.reason"].rsplit("Path; ", 1)[1]) for d in docs]


def test_enrichment_survives_a_restart_and_two_workers(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = Namespace()
    create_topics(kafka_bootstrap, [ns.topic("endpoint"), ns.alerts, ns.deadletter, ns.matches])
    env = ns.env(kafka_bootstrap, DETECTOR_TOPICS=f"{ns.topic('endpoint')}=endpoint", DETECTOR_MAX_SIGNALS="0")
    alerts = Reader(kafka_bootstrap, ns.alerts)
    workers: list[WorkerProcess] = []
    try:
        first = WorkerProcess(env, tmp_path / "w1.log")
        workers.append(first)
        first.wait_ready()
        produce(kafka_bootstrap, ns.topic("endpoint"), LINES[:6], partition=0)  # 2 installs, 4 alerts
        alerts.wait_for(lambda m: len(m) >= 4, 60, "4 alerts")
        assert sorted(_tail(alerts_only(alerts.messages))) == sorted(
            [
                ("wks-fin-001", "first seen on this host; 1 of 1 hosts."),
                ("WKS-FIN-002", "first seen on this host; 1 of 2 hosts."),
                ("wks-fin-003", "first seen on this host; 1 of 3 hosts."),
                ("wks-fin-001", "seen on this host since 2026-03-02; 1 of 3 hosts."),
            ]
        )
        assert first.terminate() == 0
        # restart: the row is restored from the table's changelog
        second = WorkerProcess(env, tmp_path / "w2.log")
        workers.append(second)
        second.wait_ready()
        produce(kafka_bootstrap, ns.topic("endpoint"), [LINES[6]], partition=0)  # the new host
        alerts.wait_for(lambda m: len(m) >= 5, 60, "the new host's alert")
        new = alerts_only(alerts.messages)[4]
        assert _tail([new]) == [("wks-hr-042", "first seen on this host; 1 of 4 hosts.")]
        enr = new["detector.enrichment.prevalence"]
        assert enr["first_on_host"] is True and enr["hosts"] == 4
        assert enr["first_seen"] == {"fleet": "2026-03-02T10:00:00.000Z", "host": "2026-03-04T12:00:00.000Z"}
        # two workers: whichever owns the executable's partition keeps its row; every alert is enriched once
        third = WorkerProcess(env, tmp_path / "w3.log")
        workers.append(third)
        third.wait_ready()
        more = [_record(f"wks-new-{i:03d}", f"2026-03-05T0{i}:00:00.000Z") for i in range(1, 4)]
        produce(kafka_bootstrap, ns.topic("endpoint"), more + LINES[7:9])
        alerts.wait_for(lambda m: len(m) >= 10, 90, "10 alerts")
        alerts.poll(2.0)
        docs = alerts_only(alerts.messages)
        assert len({d["kibana.alert.uuid"] for d in docs}) == len(docs) == 10
        nsm = sorted(
            d["detector.enrichment.prevalence"]["hosts"]
            for d in docs[5:]
            if "nsm" in d["process"]["executable"].lower()
        )
        assert nsm == [5, 6, 7]
        assert all(d["detector.enrichment.prevalence"]["first_on_host"] for d in docs[5:])
    finally:
        for w in workers:
            w.stop_quietly()
        alerts.close()
