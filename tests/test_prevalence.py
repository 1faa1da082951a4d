"""Fleet prevalence and first-seen (detector/prevalence.py): pure state functions, the engine's candidates,
and `detector scan` over tests/fixtures/prevalence/fleet.ndjson."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detector.engine import Engine
from detector.prevalence import (
    Executables,
    Recency,
    candidate_query,
    enrichment,
    observe,
    reason_suffix,
)
from detector.rules.model import load_rules

FLEET = Path(__file__).parent / "fixtures" / "prevalence" / "fleet.ndjson"
DAY = 86400


def test_candidate_query_drops_only_the_path_clause() -> None:
    rule = load_rules()[0]
    cand = candidate_query(rule.compiled)
    assert "process.executable" not in cand.fields and "process.parent.executable" not in cand.fields
    assert {"process.name", "process.pe.original_file_name", "process.parent.name", "host.os.type"} <= cand.fields
    base = {"event": {"category": ["process"], "type": ["start"]}, "host": {"os": {"type": "windows"}}}
    pf = {**base, "process": {"name": "client32.exe", "executable": r"C:\Program Files\NSM\client32.exe"}}
    assert cand.matches(pf) and not rule.compiled.matches(pf)
    assert not cand.matches({**base, "process": {"name": "notepad.exe", "executable": r"C:\Users\a\notepad.exe"}})
    assert not cand.matches({**pf, "host": {"os": {"type": "linux"}}})


def test_observe_tracks_hosts_first_and_last_seen() -> None:
    row = observe(None, "a", 100.0, horizon=30 * DAY, max_hosts=10)
    row = observe(row, "b", 200.0, horizon=30 * DAY, max_hosts=10)
    row = observe(row, "a", 50.0, horizon=30 * DAY, max_hosts=10)  # late, older event
    assert row["h"] == {"a": [50, 100], "b": [200, 200]}
    assert (row["f"], row["l"], row["n"]) == (50, 200, 3)
    enr = enrichment(row, "path:x", "b", 200.0)
    assert enr["hosts"] == 2 and enr["first_on_host"] is True
    assert enr["first_seen"]["fleet"] == "1970-01-01T00:00:50.000Z"
    assert reason_suffix(enr) == "first seen on this host; 1 of 2 hosts"
    assert enrichment(row, "path:x", "a", 100.0)["first_on_host"] is False


def test_observe_is_idempotent_but_for_the_count() -> None:
    row = observe(None, "a", 100.0, horizon=DAY, max_hosts=10)
    again = observe(row, "a", 100.0, horizon=DAY, max_hosts=10)
    assert again["h"] == row["h"] and again["f"] == row["f"] and again["n"] == 2


def test_horizon_expires_hosts() -> None:
    row = observe(None, "old", 0.0, horizon=DAY, max_hosts=10)
    row = observe(row, "new", 2 * DAY, horizon=DAY, max_hosts=10)
    assert list(row["h"]) == ["new"] and row["f"] == 2 * DAY
    # an execution older than the horizon before the latest is not recorded as a host
    row = observe(row, "ancient", 0.0, horizon=DAY, max_hosts=10)
    assert "ancient" not in row["h"]


def test_host_cap_counts_the_rest() -> None:
    row = None
    for i in range(5):
        row = observe(row, f"h{i}", float(i), horizon=DAY, max_hosts=3)
    assert row is not None and len(row["h"]) == 3 and row["x"] == 2
    enr = enrichment(row, "k", "h4", 4.0)
    assert enr["hosts_exact"] is False and enr["first_on_host"] is None
    assert reason_suffix(enr) == "not tracked on this host; 1 of 3+ hosts"
    assert reason_suffix({**enrichment(row, "k", "h0", 0.0), "hosts": 1842, "hosts_exact": True}).endswith(
        "; 1 of 1,842 hosts"
    )


def test_recency_bounds_rows_and_expires_them() -> None:
    r = Recency(limit=2, horizon=100)
    assert r.touch("a", 0) == [] and r.touch("b", 1) == []
    assert r.touch("a", 2) == []  # a is now the most recent
    assert r.touch("c", 3) == ["b"]
    assert r.touch("d", 500) == ["a", "c"]  # a over the size, then c not seen for the horizon
    assert len(r) == 1 and "d" in r


def test_executables_store_is_bounded() -> None:
    store = Executables(max_executables=100, horizon=10 * DAY)
    engine = Engine(load_rules())
    for line in FLEET.read_bytes().splitlines():
        for cand in engine.process(line).candidates:
            store.observe(cand, 0.0)
    assert len(store.rows) == 4  # Program Files, ProgramData (two spellings are one), two children
    for i in range(1000):
        store.observe(type(cand)(f"path:{i}", "h", float(i)), float(i))
    assert len(store.rows) == 100 and store.evicted == 904


def test_engine_reports_candidates_with_their_alerts() -> None:
    engine = Engine(load_rules())
    outs = [engine.process(line) for line in FLEET.read_bytes().splitlines()]
    assert [len(o.candidates) for o in outs] == [1] * 9
    assert [len(o.candidates[0].alerts) for o in outs] == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert outs[0].candidates[0].key == r"path:c:\program files (x86)\netsupport\netsupport manager\client32.exe"
    assert outs[3].candidates[0].key == outs[2].candidates[0].key  # case-folded path
    assert outs[0].candidates[0].host == "id-wks-it-001"
    assert engine.prefilter.literals == (b"client32",)  # candidates add no needle


def test_scan_enriches_alerts_in_file_order() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "detector.cli.main", "scan", "--no-progress", str(FLEET)],
        capture_output=True,
        check=True,
    )
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    got = [(a["host"]["name"], a["kibana.alert.reason"].rsplit("Path; ", 1)[1]) for a in alerts]
    assert got == [
        ("wks-fin-001", "first seen on this host; 1 of 1 hosts."),
        ("WKS-FIN-002", "first seen on this host; 1 of 2 hosts."),
        ("wks-fin-003", "first seen on this host; 1 of 3 hosts."),
        ("wks-fin-001", "seen on this host since 2026-03-02; 1 of 3 hosts."),
        ("wks-hr-042", "first seen on this host; 1 of 4 hosts."),
        ("wks-hr-042", "first seen on this host; 1 of 1 hosts."),
        ("wks-hr-043", "first seen on this host; 1 of 1 hosts."),
    ]
    new_host = alerts[4]["detector.enrichment.prevalence"]
    assert new_host["first_on_host"] is True and new_host["hosts"] == 4 and new_host["executions"] == 5
    assert new_host["first_seen"] == {"fleet": "2026-03-02T10:00:00.000Z", "host": "2026-03-04T12:00:00.000Z"}
    again = alerts[3]["detector.enrichment.prevalence"]
    assert again["first_on_host"] is False and again["first_seen"]["host"] == "2026-03-02T10:00:00.000Z"


def test_stream_messages_key_observations_by_rule_so_an_alert_takes_one_hop() -> None:
    # Every matches-topic message of a record is keyed by a rule id: the agent owning the rule's partition holds
    # the rule's rows, enriches the alert and caps it at once. Each loaded rule gets every candidate (bare when
    # it raised nothing on it), so each rule's rows count the same executions.
    from detector.stream import prevalence as fleet
    from detector.stream.publish import match_partition

    engine = Engine(load_rules())
    rule_id = engine.rules[0].rule_id
    bare, alerted = (engine.process(FLEET.read_bytes().splitlines()[i]) for i in (0, 2))
    other = "another-rule"
    msgs = list(fleet.prevalence_messages(bare, 1.0, [rule_id, other]))
    assert [k for k, _ in msgs] == [rule_id.encode(), other.encode()]
    decoded = [fleet.decode(v) for _, v in msgs]
    assert all(o is not None and o.alert is None for o in decoded)
    assert [o.row_key for o in decoded if o] == [
        fleet.row_key(rule_id, bare.candidates[0].key),
        fleet.row_key(other, bare.candidates[0].key),
    ]
    msgs = list(fleet.prevalence_messages(alerted, 2.0, [rule_id, other]))
    assert [k for k, _ in msgs] == [rule_id.encode(), other.encode()]
    first = fleet.decode(msgs[0][1])
    assert first is not None and first.alert is not None and first.rule_id == rule_id and first.consumed_at == 2.0
    assert first.alert["kibana.alert.uuid"] == alerted.alerts[0]["kibana.alert.uuid"]
    second = fleet.decode(msgs[1][1])
    assert second is not None and second.alert is None  # the other rule counts the execution, raises nothing
    assert fleet.row_rule(first.row_key) == rule_id
    # the row lives on the partition the ingest's producer gives the rule's key: the rule's own
    assert {match_partition(fleet.row_rule(o.row_key), 4) for o in (first,)} == {match_partition(rule_id, 4)}


def test_an_observation_without_its_rule_is_not_one() -> None:
    from detector.stream import prevalence as fleet

    assert fleet.decode(b'{"type":"observe","key":"k","host":"h","ts":1,"alert":null}') is None
    obs = fleet.decode(b'{"type":"observe","rule_id":"r","key":"k","host":"h","ts":1,"alert":null}')
    assert obs is not None and obs.row_key == fleet.row_key("r", "k")
