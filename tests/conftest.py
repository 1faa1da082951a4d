"""Shared test fixtures. Tests marked `kafka` run against the real broker from deploy/kafka/kafka.sh."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Shared 2-core machines: a slow example is load, not a bug. Per-test settings still choose the counts.
settings.register_profile("project", deadline=None, print_blob=True)
settings.load_profile("project")

REPO = Path(__file__).resolve().parents[1]

# Parsed mapping files are cached between runs (detector/sources/mapping.py): in a directory of the test
# session's own, not the user's ~/.cache. Set at import, before the tests' imports load the built-in mappings;
# the worker processes the tests start inherit it.
_CACHE_DIR = tempfile.mkdtemp(prefix="detector-test-cache-")
os.environ["DETECTOR_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


BOOTSTRAP = os.environ.get("DETECTOR_TEST_BOOTSTRAP", "127.0.0.1:9092")


def _port_open(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running broker: the one already up (CI starts it), or one started here and stopped after."""
    started = False
    if not _port_open(BOOTSTRAP):
        res = subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), "up"], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"could not start the Kafka broker:\n{res.stdout}\n{res.stderr}")
        started = True
    yield BOOTSTRAP
    from tests.integration.harness import delete_session_topics  # imports confluent_kafka: only when used

    delete_session_topics(BOOTSTRAP)
    if started:
        subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), "down"], capture_output=True, text=True)
