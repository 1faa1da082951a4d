"""deploy/kafka/kafka.sh without a broker: syntax, lint, help, and that it never claims what is not its own."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_bash_syntax() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean() -> None:
    res = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_help_names_the_pinned_version() -> None:
    res = _run("--help")
    assert res.returncode == 0
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version and f"Apache Kafka {version.group(1)}" in res.stdout
    assert "up" in res.stdout and "down [--wipe]" in res.stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert _run("frobnicate").returncode == 2


def test_down_without_our_broker_stops_nothing(tmp_path: Path) -> None:
    res = _run("down", env={"KAFKA_STATE": str(tmp_path / "state"), "KAFKA_PORT": str(_free_port())})
    assert res.returncode == 0
    assert "nothing stopped" in res.stdout


def test_status_without_our_broker_is_non_zero(tmp_path: Path) -> None:
    res = _run("status", env={"KAFKA_STATE": str(tmp_path / "state"), "KAFKA_PORT": str(_free_port())})
    assert res.returncode == 1
    assert "not running" in res.stdout


def test_up_refuses_a_port_taken_by_something_that_is_not_kafka(tmp_path: Path) -> None:
    """Something else on the port: a clear error, and no download, no state, no broker started."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:  # answers every connection with garbage, like a foreign service would
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        state, cache = tmp_path / "state", tmp_path / "cache"
        res = _run(
            "up",
            env={
                "KAFKA_STATE": str(state),
                "KAFKA_CACHE": str(cache),
                "KAFKA_PORT": str(port),
                "KAFKA_CONTROLLER_PORT": str(_free_port()),
            },
        )
    finally:
        stop.set()
        t.join()
        srv.close()
    assert res.returncode != 0
    assert "does not answer as a Kafka broker" in res.stderr
    assert not state.exists() and not cache.exists()
