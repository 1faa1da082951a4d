"""The Grafana dashboard: current schema, the $datasource/$namespace/$job/$source variables, every query filtered
by them, and panels for freshness, the agent's backlog and readiness. tests/integration/test_prometheus.py runs
every query against a real Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "netsupport-detector.json"

# Series with a `source` label: $source must filter them (the others have none to filter on).
WITH_SOURCE = {
    "detector_records_consumed_total",
    "detector_records_prefiltered_total",
    "detector_records_normalized_total",
    "detector_records_rejected_total",
    "detector_records_without_event_total",
    "detector_malformed_values_total",
    "detector_records_validated_total",
    "detector_topic_last_consumed_timestamp_seconds",
    "detector_topic_newest_record_timestamp_seconds",
    "source:detector_records_consumed:rate5m",
}
# A series selector: a metric name not followed by "(" (a function), with its label matchers if any.
SELECTOR = re.compile(r"(?<![\w:\"])([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?(?![\w(])(?!\s*\()")
_NOT_SERIES = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for p in dashboard()["panels"] if items is None else items:
        out.append(p)
        out.extend(panels(p.get("panels", [])))
    return out


def targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matchers) of every series selector in a PromQL expression."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges: [$__rate_interval], [5m]
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    found = []
    for m in SELECTOR.finditer(expr):
        name = m.group(1)
        if name in _NOT_SERIES or re.fullmatch(r"[\d.e+-]+|Inf|NaN", name):
            continue
        found.append((name, m.group(2) or ""))
    return found


def test_selector_extraction() -> None:
    assert selectors('time() - max by (topic) (a{x="1"}) / sum(rate(b_total[$__rate_interval])) > 0.5') == [
        ("a", '{x="1"}'),
        ("b_total", ""),
    ]


def test_schema_and_variables() -> None:
    dash = dashboard()
    assert dash["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "job", "source"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for name in ("namespace", "job", "source"):
        var = variables[name]
        assert var["type"] == "query" and var["datasource"]["uid"] == "${datasource}", name
        assert f", {name})" in var["query"]["query"], name
    # Variables chain: job within the namespace, source within both.
    assert '$namespace"' in variables["job"]["query"]["query"]
    assert '$job"' in variables["source"]["query"]["query"]
    for name in ("namespace", "source"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


def test_every_query_is_filtered_by_the_variables() -> None:
    all_targets = targets()
    assert len(all_targets) >= 30
    for title, expr in all_targets:
        found = selectors(expr)
        assert found, f"{title}: no series in {expr!r}"
        for name, matchers in found:
            assert 'namespace=~"$namespace"' in matchers, f"{title}: {name} not filtered by $namespace"
            assert 'job=~"$job"' in matchers, f"{title}: {name} not filtered by $job"
            if name in WITH_SOURCE:
                assert 'source=~"$source"' in matchers, f"{title}: {name} not filtered by $source"


def test_panels_for_freshness_backlog_and_readiness() -> None:
    exprs = " ".join(e for _, e in targets())
    for metric in (
        "detector_topic_last_consumed_timestamp_seconds",
        "detector_topic_newest_record_timestamp_seconds",
        "detector_matches_produced_total",
        "detector_ready",
    ):
        assert metric in exprs, metric


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    ids = set()
    for p in dashboard()["panels"]:  # top level: collapsed rows' panels have their own layout
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        assert p["id"] not in ids
        ids.add(p["id"])
