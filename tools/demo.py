"""`make demo`: broker, topics, a worker, the bundled demo corpus replayed, alerts printed as they arrive.

Everything it starts it stops on Ctrl-C (or SIGTERM, SIGHUP), in order: its own Kafka clients first (the
alerts consumer is closed, the worker is sent SIGTERM and waited for), the broker last and only if the demo
started it, so that no client is left retrying a broker that is gone (librdkafka would print a burst of
"Connection refused" lines). The worker runs in its own process group: the terminal's Ctrl-C reaches the
demo alone, and the worker gets one SIGTERM, its documented stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from detector.sources import SOURCES
from detector.stream.config import load_config
from detector.stream.topics import ensure_topics, worker_topics

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "samples" / "demo"
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
HTTP_PORT = int(os.environ.get("DETECTOR_HTTP_PORT", "8000"))
COLUMNS = (("time", 24), ("source", 26), ("host", 16), ("user", 18), ("process", 16), ("parent", 16), ("executable", 0))


def _say(text: str) -> None:
    print(f"\033[1m==>\033[0m {text}", flush=True)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _row(values: list[str]) -> str:
    cells = []
    for (_, width), value in zip(COLUMNS, values, strict=True):
        cells.append(value if not width else (value[: width - 1] + "…" if len(value) > width else value.ljust(width)))
    return " ".join(cells)


def _alert_row(doc: dict[str, Any]) -> str:
    if doc.get("detector.record_type") == "suppression":
        return f"  (suppression) {doc['kibana.alert.reason']}"
    p = doc.get("process", {})
    user = doc.get("user", {})
    return _row(
        [
            str(doc.get("kibana.alert.original_time", ""))[:23],
            str(doc.get("detector.source", "")),
            str(doc.get("host", {}).get("name") or doc.get("host", {}).get("hostname", "")),
            "\\".join(x for x in (user.get("domain"), user.get("name")) if x),
            str(p.get("name", "")),
            str(p.get("parent", {}).get("name", "")),
            str(p.get("executable", "")),
        ]
    )


def main() -> int:
    cfg = load_config()
    host, _, port = cfg.bootstrap_servers.split(",")[0].rpartition(":")
    started_broker = False
    worker: subprocess.Popen[bytes] | None = None
    alerts: Consumer | None = None
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        if not _port_open(host, int(port)):
            _say(f"starting the Kafka broker on {cfg.bootstrap_servers} (first run resolves its jars with Maven)")
            up = subprocess.Popen([str(KAFKA_SH), "up"], stdout=subprocess.PIPE, text=True)
            assert up.stdout is not None
            for line in up.stdout:
                print(line, end="", flush=True)
                # Ours only if this very `up` launched it: a broker someone else started meanwhile (say a
                # test session on the same port) is reused by kafka.sh and must not be stopped by the demo.
                started_broker = started_broker or line.startswith("kafka: starting Apache Kafka")
            if up.wait() != 0:
                raise SystemExit(f"{KAFKA_SH.relative_to(REPO)} up failed (status {up.returncode})")
        else:
            _say(f"using the Kafka broker already running on {cfg.bootstrap_servers}")
        created = ensure_topics(cfg, worker_topics(cfg, include_inputs=True))
        _say(f"topics ready ({len(created)} created)")
        log_path = REPO / ".run" / "demo-worker.log"
        log_path.parent.mkdir(exist_ok=True)
        _say(f"starting `detector worker` (log: {log_path.relative_to(REPO)})")
        env = {**os.environ, "DETECTOR_HTTP_PORT": str(HTTP_PORT), "DETECTOR_AUTO_OFFSET_RESET": "latest"}
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "detector.cli.main", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # Ctrl-C is for the demo; the worker is stopped by it, in order
            )
        _wait_ready(worker, log_path)
        alerts = Consumer(
            {
                **cfg.kafka_client_config(),
                "group.id": f"demo-viewer-{os.getpid()}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        alerts.subscribe([cfg.alerts_topic])
        alerts.consume(num_messages=1, timeout=3)  # join the group before the replay starts
        files = sorted(DEMO_DIR.glob("*.ndjson.gz"))
        _say(f"replaying the demo corpus: {len(files)} files, one per source ({', '.join(SOURCES)})")
        for f in files:
            subprocess.run(
                [sys.executable, "-m", "detector.cli.main", "replay", "--source", f.name.split(".")[0], str(f)],
                check=True,
                env=os.environ | {"PYTHONWARNINGS": "ignore"},
            )
        _say(f"alerts on {cfg.alerts_topic} as they arrive (Ctrl-C to stop):")
        print("\033[1m" + _row([name for name, _ in COLUMNS]) + "\033[0m")
        _say_metrics_hint()
        deadline_hint = time.monotonic() + 15
        while True:
            for msg in alerts.consume(num_messages=100, timeout=0.5):
                value = msg.value()
                if msg.error() is None and value:
                    print(_alert_row(orjson.loads(value)), flush=True)
            if deadline_hint and time.monotonic() > deadline_hint:
                _print_counts()
                deadline_hint = 0.0
            if worker.poll() is not None:
                _say(f"the worker exited with status {worker.returncode}; see {log_path}")
                return 1
    except KeyboardInterrupt:
        print()
        _say("stopping")
        return 0
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave a worker or the broker behind; every
        # step below is bounded (consumer close, the worker's 60 s, kafka.sh's 30 s).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(alerts, worker, started_broker)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(alerts: Consumer | None, worker: subprocess.Popen[bytes] | None, started_broker: bool) -> None:
    """Our clients first, while the broker still answers; the broker last (only one the demo started)."""
    if alerts is not None:
        alerts.close()  # leaves the group and stops librdkafka's threads: nothing left to reconnect
    if worker is not None and worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        _say("worker stopped")
    if started_broker:
        subprocess.run([str(KAFKA_SH), "down"], check=False)


def _wait_ready(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with status {worker.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    _say("worker ready")
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the worker did not become ready in 120 s; see {log_path}")


def _say_metrics_hint() -> None:
    _say(
        f"metrics: http://127.0.0.1:{HTTP_PORT}/metrics  health: /healthz  readiness: /readyz  "
        f"dead letters: detections.deadletter"
    )


def _print_counts() -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return
    totals: dict[str, float] = {}
    for line in text.splitlines():
        for name in (
            "detector_records_consumed_total",
            "detector_records_prefiltered_total",
            "detector_records_rejected_total",
            "detector_alerts_emitted_total",
        ):
            if line.startswith(name + "{"):
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    _say(
        "so far: {:.0f} records consumed, {:.0f} skipped by the prefilter, {:.0f} dead-lettered, {:.0f} alerts".format(
            totals.get("detector_records_consumed_total", 0),
            totals.get("detector_records_prefiltered_total", 0),
            totals.get("detector_records_rejected_total", 0),
            totals.get("detector_alerts_emitted_total", 0),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
