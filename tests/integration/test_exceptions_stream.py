"""Rule exceptions on the real broker: a worker given a Kibana exception-list export (DETECTOR_EXCEPTIONS) drops
the alerts its items match and counts them per list and item; the file changed in place (as Kubernetes changes a
mounted ConfigMap) is picked up without a restart; a broken new version keeps the previous exceptions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.integration.harness import Namespace, Reader, WorkerProcess, alerts_only, create_topics, produce
from tests.test_exceptions import FIXTURE, endpoint

pytestmark = pytest.mark.kafka

LIST = "netsupport-tuning"


def excluded(item_id: str, n: int) -> str:
    return f'detector_alerts_excluded_total{{item_id="{item_id}",list_id="{LIST}"}} {float(n)}'


def wait_metrics(worker: WorkerProcess, ok: Callable[[str], bool], what: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = worker.metrics()
        if ok(text):
            return text
        if time.monotonic() > deadline:
            lines = [ln for ln in text.splitlines() if "exception" in ln or "excluded" in ln]
            raise AssertionError(f"timed out waiting for {what}: {lines}\n{worker.log()[-3000:]}")
        time.sleep(0.3)


def full_log(worker: WorkerProcess) -> str:
    return worker.log_path.read_text(errors="replace")


def rewrite_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:  # same inode, as a file edited in place
        f.truncate(0)
        f.write(data)


def test_exceptions_drop_alerts_per_item_and_reload_without_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    exceptions = tmp_path / "netsupport-tuning.ndjson"
    exceptions.write_bytes(FIXTURE.read_bytes())
    lines = FIXTURE.read_bytes().splitlines()
    ns = Namespace()
    topic = ns.topic("endpoint")
    create_topics(kafka_bootstrap, [topic, ns.alerts, ns.deadletter, ns.matches])
    env = ns.env(
        kafka_bootstrap,
        DETECTOR_TOPICS=f"{topic}=endpoint",
        DETECTOR_EXCEPTIONS=str(exceptions),
        DETECTOR_EXCEPTIONS_RELOAD_INTERVAL="0.5",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    alerts = Reader(kafka_bootstrap, ns.alerts)
    try:
        worker.wait_ready()
        assert "exceptions loaded from" in full_log(worker)
        first = [
            endpoint("WS-7", "C:\\ProgramData\\NetSupport\\client32.exe"),  # approved-install
            endpoint("HELPDESK-JUMP-01", "C:\\Users\\tech1\\NetSupport\\client32.exe"),  # helpdesk-jump-hosts
            endpoint("HELPDESK-JUMP-02", "C:\\Users\\tech2\\NetSupport\\client32.exe"),  # helpdesk-jump-hosts
            endpoint("HELPDESK-JUMP-01", "C:\\Users\\tech1\\NetSupport\\client32.exe", user="Administrator"),
            endpoint("WS-9", "C:\\Users\\bob\\AppData\\Roaming\\nsm\\client32.exe"),
        ]
        assert produce(kafka_bootstrap, topic, first) == 5
        alerts.wait_for(lambda m: len(alerts_only(m)) >= 2, 90, "2 alerts")
        wait_metrics(
            worker,
            lambda t: excluded("approved-install", 1) in t and excluded("helpdesk-jump-hosts", 2) in t,
            "the exclusions counted",
        )
        alerts.poll(2.0)
        docs = alerts_only(alerts.messages)
        assert sorted((d["host"]["name"], d["user"]["name"]) for d in docs) == [
            ("HELPDESK-JUMP-01", "Administrator"),
            ("WS-9", "alice"),
        ]

        # The list edited in Kibana and exported again: the jump-host item removed, WS-9 excepted instead.
        jump_item = next(ln for ln in lines if b'"helpdesk-jump-hosts"' in ln)
        ws9 = orjson.loads(jump_item)
        ws9.update(
            item_id="ws9-lab",
            name="WS-9 lab",
            entries=[{"field": "host.name", "operator": "included", "type": "match", "value": "WS-9"}],
        )
        changed = [ln if ln != jump_item else orjson.dumps(ws9) for ln in lines]
        rewrite_in_place(exceptions, b"\n".join(changed) + b"\n")
        wait_metrics(worker, lambda t: 'detector_exceptions_reloads_total{result="ok"} 2.0' in t, "the reload")
        assert "exceptions reloaded from" in full_log(worker)
        second = [
            endpoint("HELPDESK-JUMP-02", "C:\\Users\\tech3\\NetSupport\\client32.exe"),  # alerts now
            endpoint("WS-9", "C:\\Users\\carol\\AppData\\Roaming\\nsm\\client32.exe"),  # excluded now
        ]
        assert produce(kafka_bootstrap, topic, second) == 2
        alerts.wait_for(lambda m: len(alerts_only(m)) >= 3, 90, "3 alerts")
        wait_metrics(worker, lambda t: excluded("ws9-lab", 1) in t, "ws9-lab counted")

        # A broken version (a value list, which the loader refuses) keeps the exceptions in force.
        value_list = {
            "field": "host.name",
            "operator": "included",
            "type": "list",
            "list": {"id": "hosts.txt", "type": "keyword"},
        }
        listed = orjson.dumps({**ws9, "item_id": "from-value-list", "entries": [value_list]})
        broken = [*changed[:-1], listed, changed[-1]]
        rewrite_in_place(exceptions, b"\n".join(broken) + b"\n")
        wait_metrics(worker, lambda t: 'detector_exceptions_reloads_total{result="error"} 1.0' in t, "the error")
        log = full_log(worker)
        assert "keeping the previous ones" in log and "value list 'hosts.txt'" in log
        assert produce(kafka_bootstrap, topic, [endpoint("WS-9", "C:\\Users\\dave\\Downloads\\client32.exe")]) == 1
        wait_metrics(worker, lambda t: excluded("ws9-lab", 2) in t, "ws9-lab still applied")
        alerts.poll(2.0)
        docs = alerts_only(alerts.messages)
        assert len(docs) == 3, [(d["host"]["name"], d["process"]["executable"]) for d in docs]
        assert docs[-1]["host"]["name"] == "HELPDESK-JUMP-02"
        assert worker.get("/readyz")[0] == 200
    finally:
        code = worker.terminate()
        alerts.close()
    assert code == 0, worker.log()
