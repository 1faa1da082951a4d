"""`detector replay` on the real broker: every line's bytes arrive as they are, malformed ones included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import Namespace, Reader, create_topics

pytestmark = pytest.mark.kafka


def test_replay_sends_each_line_as_is(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = Namespace()
    topic = ns.topic("endpoint")
    create_topics(kafka_bootstrap, [topic])
    lines = [b'{"a": 1}', b"not json at all", b'  {"spaced": true}  ', b'{"b": "\\u0063lient32"}']
    f = tmp_path / "in.ndjson"
    f.write_bytes(b"\n".join(lines[:2]) + b"\n\n" + b"\n".join(lines[2:]) + b"\n")
    res = subprocess.run(
        [sys.executable, "-m", "detector.cli.main", "replay", "--topic", topic, "--rate", "50", str(f)],
        env={"DETECTOR_BOOTSTRAP_SERVERS": kafka_bootstrap, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "replayed 4 records" in res.stderr and topic in res.stderr
    reader = Reader(kafka_bootstrap, topic)
    try:
        got = reader.wait_for(lambda m: len(m) >= 4, 30, "the replayed records")
        assert sorted(m.value for m in got) == sorted(lines)  # bytes untouched, blank line skipped
    finally:
        reader.close()


def test_replay_without_source_detects_each_records_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    f = tmp_path / "mixed.ndjson"
    f.write_bytes(b'{"foo": 1}\nnot json\n')
    res = subprocess.run(
        [sys.executable, "-m", "detector.cli.main", "replay", str(f)],
        env={"DETECTOR_BOOTSTRAP_SERVERS": kafka_bootstrap, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # nothing could be routed: each line is reported with its reason, none is dropped silently
    assert res.returncode == 0, res.stderr
    assert "replayed 0 records" in res.stderr
    assert f"not sent: {f}:1: no known source detected" in res.stderr
    assert f"not sent: {f}:2: not JSON" in res.stderr
