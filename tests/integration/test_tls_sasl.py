"""The worker and `detector replay` over a SASL_SSL listener, as on Confluent Cloud, MSK, Strimzi or Event Hubs.

A broker of its own (deploy/kafka/kafka.sh on private 191xx ports and its own state, stopped at the end)
with a SASL_SSL listener whose certificate is signed by a CA made here with openssl. An alert read back
proves both Kafka clients of the worker: the ingest consumer and producer (confluent-kafka) read the input
and write the match, the Faust agent (aiokafka) reads the match and writes the alert.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from tests.integration.harness import REPO, Namespace, Reader, WorkerProcess, alerts_only

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make the test CA"),
]

SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
HOST = "127.0.0.1"
PLAINTEXT_PORT, CONTROLLER_PORT, SASL_SSL_PORT = 19192, 19193, 19194
USERS = {"alice": "alice-scram-secret", "bob": "bob-plain-secret"}
SOURCE = "endpoint"
POSITIVES = REPO / "tests" / "fixtures" / "sources" / SOURCE / "positives.ndjson"


@dataclass
class SecureBroker:
    plaintext: str  # for the test's own reader and nothing else
    sasl_ssl: str
    cafile: Path

    def env(self, mechanism: str, user: str, password: str, **extra: str) -> dict[str, str]:
        return {
            "DETECTOR_BOOTSTRAP_SERVERS": self.sasl_ssl,
            "DETECTOR_SECURITY_PROTOCOL": "SASL_SSL",
            "DETECTOR_SASL_MECHANISM": mechanism,
            "DETECTOR_SASL_USERNAME": user,
            "DETECTOR_SASL_PASSWORD": password,
            "DETECTOR_SSL_CAFILE": str(self.cafile),
            **extra,
        }


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path, store_password: str) -> tuple[Path, Path]:
    """A CA, and the broker's key and certificate (for 127.0.0.1 and localhost) signed by it, as PKCS12."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=detector test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "broker.key", "-out", "broker.csr", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "broker.pem", cwd=d)  # fmt: skip
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
             "-name", "broker", "-passout", f"pass:{store_password}", "-out", "broker.p12", cwd=d)  # fmt: skip
    return d / "ca.pem", d / "broker.p12"


def _script(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    d = tmp_path_factory.mktemp("tls-sasl")
    cafile, keystore = make_certificates(d, "store-secret")
    env = {
        **os.environ,
        "KAFKA_HOST": HOST,
        "KAFKA_PORT": str(PLAINTEXT_PORT),
        "KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "KAFKA_SASL_SSL_PORT": str(SASL_SSL_PORT),
        "KAFKA_STATE": str(d / "kafka"),
        "KAFKA_SSL_KEYSTORE": str(keystore),
        "KAFKA_SSL_KEYSTORE_PASSWORD": "store-secret",
        "KAFKA_SASL_USERS": ",".join(f"{u}:{p}" for u, p in USERS.items()),
    }
    res = _script("up", env=env)
    if res.returncode != 0:
        pytest.fail(f"could not start the SASL_SSL broker:\n{res.stdout}\n{res.stderr}")
    try:
        yield SecureBroker(f"{HOST}:{PLAINTEXT_PORT}", f"{HOST}:{SASL_SSL_PORT}", cafile)
    finally:
        _script("down", "--wipe", env=env, timeout=60)


def replay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "detector.cli.main", "replay", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def expected_alert_ids() -> list[str]:
    engine = Engine(load_rules(), use_prefilter=False)
    lines = [line for line in POSITIVES.read_bytes().splitlines() if line.strip()]
    return [a["kibana.alert.uuid"] for line in lines for a in engine.process(line, SOURCE).alerts]


def replay_and_alert(broker: SecureBroker, security: dict[str, str], tmp_path: Path) -> None:
    """Replay the positives over SASL_SSL, run a worker over SASL_SSL, and read back every expected alert."""
    ns = Namespace()
    expected = expected_alert_ids()
    assert expected
    res = replay(security, "--topic", ns.topic(SOURCE), "--create-topics", str(POSITIVES))
    assert res.returncode == 0, res.stderr
    assert f"replayed {len(POSITIVES.read_bytes().splitlines())} records" in res.stderr, res.stderr
    env = {
        **ns.env(broker.sasl_ssl),
        **security,
        "DETECTOR_TOPICS": f"{ns.topic(SOURCE)}={SOURCE}",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    alerts = Reader(broker.plaintext, ns.alerts)
    try:
        worker.wait_ready(60)
        got = alerts.wait_for(lambda m: len(alerts_only(m)) >= len(expected), 45, f"{len(expected)} alerts")
        assert sorted(d["kibana.alert.uuid"] for d in alerts_only(got)) == sorted(expected)
        assert {d["detector.source"] for d in alerts_only(got)} == {SOURCE}
        assert worker.proc.poll() is None
    finally:
        alerts.close()
        worker.stop_quietly()


def test_scram_sha_512_over_sasl_ssl(broker: SecureBroker, tmp_path: Path) -> None:
    security = broker.env("SCRAM-SHA-512", "alice", USERS["alice"])
    replay_and_alert(broker, security, tmp_path)


def test_plain_over_sasl_ssl_with_the_password_in_a_file(broker: SecureBroker, tmp_path: Path) -> None:
    pw = tmp_path / "sasl-password"
    pw.write_text(USERS["bob"] + "\n")  # as a mounted Kubernetes Secret may hold it
    security = broker.env("PLAIN", "bob", "", DETECTOR_SASL_PASSWORD_FILE=str(pw))
    del security["DETECTOR_SASL_PASSWORD"]
    replay_and_alert(broker, security, tmp_path)


def test_a_wrong_password_stops_the_worker_at_start_in_one_line(broker: SecureBroker, tmp_path: Path) -> None:
    ns = Namespace()
    wrong = "not-alices-password"
    env = {**ns.env(broker.sasl_ssl), **broker.env("SCRAM-SHA-512", "alice", wrong)}
    started = time.monotonic()
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        status = worker.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker with a wrong password still runs after 30 s:\n{worker.log()}")
    finally:
        worker.stop_quietly()
    took = time.monotonic() - started
    output = worker.log()
    assert status == 2, output
    assert took < 20, f"{took:.1f} s to give up"
    assert "Traceback" not in output and wrong not in output, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output  # no retry storm: one line that says it
    assert errors[0].startswith("detector: error: Kafka at 127.0.0.1:19194: authentication failed"), output
    assert "SCRAM-SHA-512 as user 'alice'" in errors[0] and "invalid credentials" in errors[0], output


def test_replay_with_a_wrong_password_or_an_untrusted_ca_fails_in_one_line(
    broker: SecureBroker, tmp_path: Path
) -> None:
    res = replay(broker.env("PLAIN", "bob", "wrong-password"), "--topic", "never-sent", str(POSITIVES))
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("detector: error: Kafka at 127.0.0.1:19194: authentication failed (SASL_SSL, PLAIN")

    # The system's CAs do not know the test CA: the certificate check fails, and says so.
    env = broker.env("SCRAM-SHA-512", "alice", USERS["alice"])
    del env["DETECTOR_SSL_CAFILE"]
    res = replay(env, "--topic", "never-sent", str(POSITIVES))
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "TLS handshake failed" in res.stderr and "certificate verify failed" in res.stderr, res.stderr
