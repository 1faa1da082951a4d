"""A source added without code, on the real broker: `detector worker` given a mapping file through
DETECTOR_SOURCE_MAPS reads that source's topic and alerts on it like on a built-in source's, and a broken
mapping file stops the worker at start with the setting and the problem named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import add_source_maps, remove_user_sources
from tests.integration.harness import REPO, Namespace, Reader, WorkerProcess, alerts_only, create_topics, produce

pytestmark = pytest.mark.kafka

SOURCE = "osquery_process_etw"
OSQUERY_MAP = REPO / "deploy" / "source-maps" / f"{SOURCE}.toml"
OSQUERY_DATA = REPO / "tests" / "fixtures" / "source_maps" / f"{SOURCE}.ndjson"
MALFORMED_PID = f'detector_malformed_values_total{{field="columns.pid",source="{SOURCE}"}} 1.0'


def expected_alerts(lines: list[bytes]) -> dict[str, str]:
    """{kibana.alert.uuid: host.name} of what the engine alerts on in-process, with the map loaded here too."""
    add_source_maps([OSQUERY_MAP])
    try:
        engine = Engine(load_rules())
        out = {}
        for raw in lines:
            for alert in engine.process(raw, SOURCE).alerts:
                out[alert["kibana.alert.uuid"]] = alert["host"]["name"]
        return out
    finally:
        remove_user_sources()


def test_a_worker_with_a_source_map_alerts_on_that_sources_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    lines = OSQUERY_DATA.read_bytes().splitlines()
    assert len(lines) == 7
    expected = expected_alerts(lines)
    assert sorted(expected.values()) == ["WKS-001", "WKS-002", "WKS-007"]

    ns = Namespace()
    topic = ns.topic(SOURCE)
    create_topics(kafka_bootstrap, [topic, ns.alerts, ns.deadletter, ns.matches])
    env = ns.env(kafka_bootstrap, DETECTOR_SOURCE_MAPS=str(OSQUERY_MAP), DETECTOR_TOPICS=f"{topic}={SOURCE}")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    alerts, dead = Reader(kafka_bootstrap, ns.alerts), Reader(kafka_bootstrap, ns.deadletter)
    try:
        worker.wait_ready()
        assert produce(kafka_bootstrap, topic, lines) == 7
        alerts.wait_for(lambda m: len(alerts_only(m)) >= len(expected), 90, f"{len(expected)} alerts")
        # The metric is counted as the record is processed; give the scrape a moment to catch up.
        deadline = time.monotonic() + 30
        metrics = worker.metrics()
        while MALFORMED_PID not in metrics and time.monotonic() < deadline:
            time.sleep(0.5)
            metrics = worker.metrics()
        alerts.poll(2.0)  # anything extra (a duplicate, a stray alert) would arrive now
        dead.poll(2.0)
        docs = alerts_only(alerts.messages)
        assert sorted(d["kibana.alert.uuid"] for d in docs) == sorted(expected)
        assert all(d["detector.source"] == SOURCE for d in docs)
        assert sorted(d["host"]["name"] for d in docs) == ["WKS-001", "WKS-002", "WKS-007"]
        assert dead.messages == []
        assert MALFORMED_PID in metrics, [ln for ln in metrics.splitlines() if "malformed" in ln]
        assert worker.get("/readyz")[0] == 200
    finally:
        code = worker.terminate()
        alerts.close()
        dead.close()
    assert code == 0, worker.log()


def test_a_worker_given_a_broken_source_map_exits_at_start_naming_the_setting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    good = OSQUERY_MAP.read_text()
    assert 'convert = "basename"' in good
    bad.write_text(good.replace('convert = "basename"', 'convert = "eval"', 1))
    ns = Namespace()
    env = {
        **os.environ,
        **ns.env(kafka_bootstrap, DETECTOR_SOURCE_MAPS=str(bad), DETECTOR_TOPICS=f"{ns.topic(SOURCE)}={SOURCE}"),
        "PYTHONUNBUFFERED": "1",
    }
    res = subprocess.run(
        [sys.executable, "-m", "detector.cli.main", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = res.stdout + res.stderr
    assert res.returncode == 2, log  # a usage error, as for a bad setting
    assert "DETECTOR_SOURCE_MAPS" in log and "unknown converter 'eval'" in log and str(bad) in log, log
    assert "Traceback" not in log, log
