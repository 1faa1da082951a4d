"""deploy/prometheus/detector.rules.yml: every alert groups by namespace and job, has a runbook section, is
shown quiet and firing in the promtool unit tests; tools/prom_rules.py shortens its windows for real tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.prom_rules import shorten

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "deploy" / "prometheus"
RUNBOOK = REPO / "docs" / "runbook.md"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROM / "detector.rules.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def _aggregations(expr: str) -> list[str]:
    """The label lists of every `by (...)` in an expression."""
    return re.findall(r"\bby \(([^)]*)\)", expr)


def test_the_alerts_cover_a_silent_pipeline() -> None:
    names = {a["alert"] for a in _alerts()}
    assert {
        "DetectorDown",
        "DetectorAbsent",
        "DetectorNotReady",
        "DetectorSourceSilent",
        "DetectorAlertPublishingStalled",
        "DetectorConsumerLagGrowing",
        "DetectorDeadLettersRising",
        "DetectorAlertsSuppressed",
    } <= names


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_aggregation_keeps_namespace_and_job(alert: dict[str, Any]) -> None:
    expr = alert["expr"]
    by = _aggregations(expr)
    assert by, f"{alert['alert']}: no `by (...)` aggregation"
    for labels in by:
        names = {n.strip() for n in labels.split(",")}
        assert {"namespace", "job"} <= names, f"{alert['alert']}: by ({labels})"
    assert "without" not in expr
    # Every selector of a detector series is pinned to the job.
    for selector in re.findall(r"\b((?:detector_\w+|up))(\{[^}]*\})?", expr):
        assert 'job="netsupport-detector"' in selector[1], f"{alert['alert']}: {selector[0]} unpinned"


def _anchors(markdown: str) -> set[str]:
    out = set()
    for title in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_alert_has_a_runbook_section(alert: dict[str, Any]) -> None:
    url = alert["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "docs/runbook.md" and anchor == alert["alert"].lower(), url
    text = RUNBOOK.read_text()
    assert anchor in _anchors(text), f"no section {anchor} in docs/runbook.md"
    section = text.split(f"## {alert['alert']}\n", 1)[1].split("\n## ", 1)[0]
    for part in ("**Means**", "**Check", "**Fix"):
        assert part in section, f"{alert['alert']}: runbook section lacks {part}"
    for key in ("summary", "description"):
        assert alert["annotations"].get(key), f"{alert['alert']}: no {key}"


def test_every_alert_is_shown_quiet_and_firing_in_the_unit_tests() -> None:
    tests = yaml.safe_load((PROM / "detector.rules.test.yml").read_text())["tests"]
    cases = [t for case in tests for t in case.get("alert_rule_test", [])]
    for alert in _alerts():
        name = alert["alert"]
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in cases), f"{name} never fires"
        assert any(c["alertname"] == name and not c.get("exp_alerts") for c in cases), f"{name} never quiet"


def test_shorten_scales_every_window_and_nothing_else() -> None:
    text = (PROM / "detector.rules.yml").read_text()
    short = shorten(text, 15, 60)
    assert not re.search(r"\[\d+m|for: \d+m|\d+ \* 60", short)
    assert "[20s]" in short and "for: 40s" in short and "for: 8s" in short and "> 15\n" in short
    # The rest is untouched: same rules, names, labels and annotations.
    a, b = yaml.safe_load(text), yaml.safe_load(short)
    for ga, gb in zip(a["groups"], b["groups"], strict=True):
        for ra, rb in zip(ga["rules"], gb["rules"], strict=True):
            assert {k: v for k, v in ra.items() if k not in ("expr", "for")} == {
                k: v for k, v in rb.items() if k not in ("expr", "for")
            }
    assert shorten("x[10m:1m] for: 2m\n  for: 3m\n > 2 * 60", 15) == "x[40s:4s] for: 2m\n  for: 12s\n > 8"
    with pytest.raises(ValueError):
        shorten("rate(x[1h])", 15)
    with pytest.raises(ValueError):
        shorten("rate(x[1m])", 7)


@pytest.mark.prometheus
def test_the_shortened_rules_are_valid(tmp_path: Path) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install Debian's prometheus package (apt-get install prometheus)")
    path = tmp_path / "short.rules.yml"
    path.write_text(shorten((PROM / "detector.rules.yml").read_text(), 15, 60))
    res = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for alert in _alerts():
        assert f"`{alert['alert']}`" in readme, alert["alert"]
