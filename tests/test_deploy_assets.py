"""Checks of deploy/: Prometheus config and rules (promtool), YAML syntax, the Grafana dashboard's
metric names and datasource, and the compose settings. The Helm chart (deploy/helm) is checked by tests/test_helm.py.

promtool comes from Debian's `prometheus` package (.ci/run installs it). PyYAML must be a dev
dependency for the YAML checks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is missing: add pyyaml to the dev dependencies in pyproject.toml")
    return yaml


def _load(path: Path) -> Any:
    return _yaml().safe_load(path.read_text())


# --- promtool ------------------------------------------------------------------------------------


def _promtool(*args: str) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install Debian's prometheus package (apt-get install prometheus)")
    res = subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"promtool {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"


@pytest.mark.prometheus
def test_promtool_check_config() -> None:
    # Also checks the rule files it references (paths relative to the config file).
    _promtool("check", "config", str(PROM / "prometheus.yml"))


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    _promtool("check", "rules", str(PROM / "detector.rules.yml"))


@pytest.mark.prometheus
def test_promtool_rule_unit_tests() -> None:
    _promtool("test", "rules", str(PROM / "detector.rules.test.yml"))


def test_every_alert_has_a_promtool_unit_test_where_it_fires() -> None:
    alerts = {r["alert"] for g in _load(PROM / "detector.rules.yml")["groups"] for r in g["rules"] if "alert" in r}
    firing = {
        t["alertname"]
        for case in _load(PROM / "detector.rules.test.yml")["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert alerts and alerts <= firing, f"alerts never shown firing in a unit test: {sorted(alerts - firing)}"


# --- YAML ----------------------------------------------------------------------------------------

# Helm templates are Go templates, not YAML (tests/test_helm.py renders them).
YAML_FILES = sorted(
    p for p in [*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")] if "templates" not in p.relative_to(DEPLOY).parts
)


def test_deploy_has_yaml_files() -> None:
    assert len(YAML_FILES) >= 10, YAML_FILES


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in _yaml().safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"


# --- metric names --------------------------------------------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def known_metrics() -> set[str]:
    """Series names the worker exposes (from detector/metrics.py) plus the recording rules' names."""
    source = (REPO / "detector" / "metrics.py").read_text()
    names: set[str] = set()
    for kind, name in re.findall(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", source):
        if kind == "Counter":
            names.add(name.removesuffix("_total") + "_total")  # prometheus-client appends _total
        elif kind in ("Histogram", "Summary"):
            names.update(name + s for s in ("_sum", "_count") + (("_bucket",) if kind == "Histogram" else ()))
        else:
            names.add(name)
    assert names, "no metric found in detector/metrics.py"
    for group in _load(PROM / "detector.rules.yml")["groups"]:
        names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a tokenizer, not a parser: enough for our expressions)."""
    expr = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges, subqueries, [$__rate_interval]
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[m.end() :].lstrip()
        if rest.startswith("(") or m.group() in _KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(m.group())
    return names


def test_metric_name_extraction() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job="x", le=~"1|2"}[5m]))) > 1e3 '
        "/ on (job) group_left sum without (instance) (b_total offset 5m) or absent(up) and c:d:e"
    ) == {"a_bucket", "b_total", "up", "c:d:e"}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "netsupport-detector.json").read_text())
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels", [])))  # panels of collapsed rows
    return out


def test_dashboard_uses_only_exposed_metrics() -> None:
    known = known_metrics() | {"up"}  # `up`: the readiness panels compare ready workers with scraped ones
    exprs = [t["expr"] for p in _panels(_dashboard()["panels"]) for t in p.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= known, f"unknown metric(s) {sorted(names - known)} in {expr!r}"


def test_rules_use_only_exposed_metrics() -> None:
    known = known_metrics() | {"up"}  # `up` is Prometheus' own per-target series
    for group in _load(PROM / "detector.rules.yml")["groups"]:
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names and names <= known, f"{rule}: unknown {sorted(names - known)}"


def test_dashboard_datasource_is_the_variable_defaulting_to_the_provisioned_one() -> None:
    (ds,) = _load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    dash = _dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    var = variables["datasource"]
    assert (var["type"], var["query"]) == ("datasource", "prometheus")
    assert var["current"]["value"] == ds["uid"]  # the provisioned one is preselected
    uid = "${datasource}"
    queried = [p for p in _panels(dash["panels"]) if p.get("targets")]
    assert queried
    for panel in queried:
        assert panel.get("datasource", {}).get("uid") == uid, f"panel {panel['title']!r}"
        for target in panel["targets"]:
            assert target.get("datasource", {"uid": uid}).get("uid") == uid, f"panel {panel['title']!r}"
    for var in dash["templating"]["list"]:
        if "datasource" in var:
            assert var["datasource"].get("uid") == uid, f"variable {var['name']!r}"
    # The provider loads the folder compose mounts the dashboards into.
    (provider,) = _load(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    compose = _load(DEPLOY / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


# --- docker compose ------------------------------------------------------------------------------


def test_compose_paths_and_scrape_target() -> None:
    compose = _load(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    build = services["detector"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: mount source {source} missing"
    port = services["detector"]["environment"]["DETECTOR_HTTP_PORT"]
    (job,) = _load(PROM / "prometheus.yml")["scrape_configs"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"detector:{port}"]
    assert job["job_name"] == "netsupport-detector"  # the rules select this job


# --- settings --------------------------------------------------------------------------------------


def test_env_settings_exist() -> None:
    """Every DETECTOR_* variable the compose file sets is a setting the worker reads (the chart: test_helm.py)."""
    # Read from the source, like the metric names: these checks need no importable worker.
    source = (REPO / "detector" / "stream" / "config.py").read_text()
    # Each setting is a WorkerConfig field declared as `name: type = setting(...)`.
    envs = {"DETECTOR_" + name.upper() for name in re.findall(r"^    (\w+): [^=\n]+= setting\(", source, re.M)}
    assert "DETECTOR_BOOTSTRAP_SERVERS" in envs
    compose_env = _load(DEPLOY / "docker-compose.yml")["services"]["detector"]["environment"]
    assert set(compose_env) <= envs, f"compose: unknown settings {sorted(set(compose_env) - envs)}"
