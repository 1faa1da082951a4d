"""Crash and restart, the short form of bench/faults.py (same code): SIGKILLs and a broker restart mid-stream.

It starts its own broker on private ports (19295/19296, not the shared one, nor the long form's 19292/19293), so
restarting it disturbs no other test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import Plan, run

pytestmark = pytest.mark.kafka


def test_sigkills_and_a_broker_restart_lose_nothing(tmp_path: Path) -> None:
    plan = Plan(
        records=20_000,
        kills=2,
        broker_restarts=1,
        seed=31,
        netsupport_rate=0.004,  # ~80 positives
        malformed_rate=0.003,  # ~60 malformed
        duration=45.0,
        max_gap=3.0,
        cap=10,
        cap_interval="60s",
        cap_positives=30,
        port=19295,
        controller_port=19296,
        drain_timeout=120.0,
    )
    report = run(plan, say=print, workdir=tmp_path)
    print("\n".join(report.lines()))
    assert report.failures == []
    assert report.kills == 2 and report.broker_restarts == 1
    assert report.alerts_expected > 20 and report.alerts_found == report.alerts_expected
    assert report.deadletters_expected > 10 and report.deadletters_found == report.deadletters_expected
    assert report.cap_distinct_published <= 10 < report.cap_positives
    assert report.cap_suppression["alerts_emitted"] + report.cap_suppression["alerts_suppressed"] >= 30
