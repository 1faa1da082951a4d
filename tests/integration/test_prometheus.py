"""The alert rules and the dashboard against a real Prometheus scraping a real worker on the real broker.

Debian's `prometheus` (installed by .ci/run) runs on 127.0.0.1 with 1 s scrape and evaluation intervals and the
rules of deploy/prometheus/detector.rules.yml shortened by tools/prom_rules.py (a minute window becomes 4 s;
the silent-source window of 15 * 60 s becomes 30 s). Traffic flows to three topics; then every dashboard query
(variables substituted) must return data, every alert expression must evaluate and the alerts stay quiet; then
one topic's traffic stops and DetectorSourceSilent fires for that topic alone. The dashboard is rendered to a
PNG from this Prometheus (DETECTOR_DASHBOARD_PNG=docs/dashboard.png to refresh the README's picture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from tests.integration.harness import Namespace, WorkerProcess, create_topics, free_port, produce
from tools import render_dashboard
from tools.prom_rules import RULES, shorten
from tools.synth import generate

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]

FACTOR, TIME_FACTOR = 15, 30  # [1m] -> [4s], for: 10m -> 40s; silent window 15 * 60 s -> 30 s
SOURCES = ("endpoint", "windows_sysmon", "crowdstrike_fdr")
SILENCED = "windows_sysmon"
JOB = "netsupport-detector"
SILENT_S = 15 * 60 // TIME_FACTOR


class Prometheus:
    def __init__(self, workdir: Path, target: str, namespace: str) -> None:
        exe = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(exe).exists():
            pytest.fail("prometheus not found: install Debian's prometheus package (.ci/run does)")
        rules = workdir / "detector.rules.yml"
        rules.write_text(shorten(RULES.read_text(), FACTOR, TIME_FACTOR))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [target], "labels": {"namespace": namespace}}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if render_dashboard.query(self.url, f'up{{job="{JOB}"}} == 1'):
                    return
            except (OSError, urllib.error.URLError, RuntimeError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"prometheus has not scraped the worker after {timeout:.0f} s:\n{self.log()}")

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = render_dashboard.api(self.url, "/api/v1/alerts", {})["alerts"]
        return alerts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Traffic(threading.Thread):
    """A few records a second to each topic, a positive among them now and then, until told to stop (per topic)."""

    def __init__(self, bootstrap: str, ns: Namespace) -> None:
        super().__init__(name="traffic", daemon=True)
        self.bootstrap, self.ns = bootstrap, ns
        self.records = {
            s: [g.raw for g in generate(400, seed=40 + i, netsupport_rate=0.08, sources=[s])]
            for i, s in enumerate(SOURCES)
        }
        self.active = set(SOURCES)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})
        i = 0
        try:
            while not self.stop_event.wait(0.5):
                for source in sorted(self.active):
                    batch = self.records[source]
                    for raw in (batch[i % len(batch)], batch[(i + 1) % len(batch)]):
                        producer.produce(self.ns.topic(source), value=raw)
                producer.flush(10)
                i += 2
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            producer.flush(10)


def _alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load(shorten(RULES.read_text(), FACTOR, TIME_FACTOR))["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}


def _original_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Namespace, WorkerProcess, Prometheus, Traffic]]:
    ns = Namespace()
    create_topics(kafka_bootstrap, [*(ns.topic(s) for s in SOURCES), ns.alerts, ns.deadletter, ns.matches])
    # The first record the prefilter skips on each topic is validated: one that is no source's data, so the
    # invalid-share and rejected series exist (the dashboard must show data for them) before Prometheus
    # looks, and then stay flat (the alerts on them stay quiet).
    for source in SOURCES:
        produce(kafka_bootstrap, ns.topic(source), [b'{"misrouted": true}'])
    env = ns.env(
        kafka_bootstrap,
        DETECTOR_TOPICS=",".join(f"{ns.topic(s)}={s}" for s in SOURCES),
        DETECTOR_MAX_SIGNALS="0",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    traffic = Traffic(kafka_bootstrap, ns)
    prometheus: Prometheus | None = None
    try:
        worker.wait_ready(120)
        traffic.start()
        deadline = time.monotonic() + 60
        while "detector_records_rejected_total{" not in worker.metrics():
            assert time.monotonic() < deadline, "the garbage records were not rejected"
            time.sleep(0.5)
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{worker.port}", ns.prefix)
        prometheus.wait_ready()
        yield ns, worker, prometheus, traffic
    finally:
        traffic.stop_event.set()
        if prometheus is not None:
            prometheus.stop()
        worker.stop_quietly()


def test_dashboard_and_alerts_on_a_real_prometheus(
    stack: tuple[Namespace, WorkerProcess, Prometheus, Traffic], tmp_path: Path
) -> None:
    ns, worker, prom, traffic = stack
    started = time.time()
    variables = {
        "datasource": "prometheus",
        "namespace": ns.prefix,
        "job": JOB,
        "source": ".*",
        "__rate_interval": "8s",
        "__range": "60s",
        "__interval": "1s",
    }
    dashboard = render_dashboard.load()
    queries = [
        (p["title"], render_dashboard.substitute(t["expr"], variables))
        for p in render_dashboard.panels(dashboard)
        for t in p.get("targets", [])
    ]
    assert len(queries) >= 30

    # 1. Every dashboard query returns data once a few windows of traffic are in (retried: slow machines).
    empty: list[tuple[str, str]] = queries
    deadline = time.monotonic() + 60
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        empty = [(title, q) for title, q in queries if not render_dashboard.query(prom.url, q)]
    assert not empty, f"dashboard queries without data: {empty}\n{worker.log()}"
    # The same with one source selected: per-source panels follow $source, the others are unaffected.
    for title, expr in queries:
        if 'source=~".*"' in expr:
            one = expr.replace('source=~".*"', 'source=~"endpoint"')
            assert render_dashboard.query(prom.url, one), f"{title}: nothing for source endpoint: {one}"

    # 2. Every alert expression evaluates; all are quiet (expression empty, nothing pending or firing) at some
    # moment, and nothing fires meanwhile. The unshortened expressions evaluate too.
    for expr in _original_exprs():
        render_dashboard.query(prom.url, expr)
    exprs = _alert_exprs()
    assert len(exprs) >= 11
    deadline = time.monotonic() + 45
    while True:
        assert not [a for a in prom.alerts() if a["state"] == "firing"], prom.alerts()
        active = {name: r for name, e in exprs.items() if (r := render_dashboard.query(prom.url, e))}
        if not active and not prom.alerts():
            break
        assert time.monotonic() < deadline, f"alerts not quiet: {active} {prom.alerts()}"
        time.sleep(1)
    assert traffic.error is None, traffic.error

    # 3. One source goes silent: DetectorSourceSilent fires for its topic, and for no other.
    traffic.active.discard(SILENCED)
    silenced_at = time.monotonic()
    deadline = silenced_at + SILENT_S + 45
    while True:
        firing = [a for a in prom.alerts() if a["state"] == "firing"]
        if any(a["labels"]["alertname"] == "DetectorSourceSilent" for a in firing):
            break
        assert time.monotonic() < deadline, f"DetectorSourceSilent did not fire: {prom.alerts()}"
        time.sleep(1)
    took = time.monotonic() - silenced_at
    assert took >= SILENT_S - 2, f"fired after {took:.0f} s, before its {SILENT_S} s window"
    assert [
        (a["labels"]["alertname"], a["labels"]["namespace"], a["labels"]["topic"], a["labels"]["source"])
        for a in firing
    ] == [("DetectorSourceSilent", ns.prefix, ns.topic(SILENCED), SILENCED)]
    assert firing[0]["annotations"]["runbook_url"] == "docs/runbook.md#detectorsourcesilent"
    assert traffic.error is None, traffic.error

    # 4. The dashboard as a picture, from this Prometheus.
    end = time.time()
    out = Path(os.environ.get("DETECTOR_DASHBOARD_PNG") or tmp_path / "dashboard.png")
    render_dashboard.render(prom.url, variables, out, started - 20, end, 1.0, dashboard)
    assert out.stat().st_size > 10_000
