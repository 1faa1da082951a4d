"""The Helm chart deploy/helm/netsupport-detector: helm lint, helm template (default values, ci/full-values.yaml and
a ServiceMonitor + HPA variant), every rendered object validated offline by kubeconform against the Kubernetes 1.30,
prometheus-operator and KEDA schemas, checkov with no failed check (the chart's skips each carry a reason), and
what the chart promises: secrets as files, rules from values rolling the pods, one scrape path, the grace period,
the partition bound on replicas.

helm, kubeconform, the schemas and checkov are installed, pinned, under .cache/k8s-tools by `make k8s-tools`
(tools/k8s-tools.sh; .ci/run calls it). Without them these tests fail in CI (CI set) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.helm_values_table import table, undocumented

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "netsupport-detector"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
TOOLS = REPO / ".cache" / "k8s-tools"
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
NAMESPACE = "detection"
KUBE_VERSION = "1.30.0"  # helm built by `go install` defaults to 1.20 (no release ldflags)

# Rendered variants: name -> extra helm arguments.
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "full": ["-f", str(FULL_VALUES)],
    "servicemonitor-hpa": [
        "--set", "metrics.monitor.enabled=true", "--set", "metrics.monitor.kind=ServiceMonitor",
        "--set", "autoscaling.hpa.enabled=true", "--set", "networkPolicy.enabled=true",
        "--set", "kafka.securityProtocol=SASL_PLAINTEXT", "--set", "kafka.sasl.mechanism=PLAIN",
        "--set", "kafka.sasl.existingSecret=kafka-password", "--set", "autoscaling.keda.enabled=false",
    ],
}  # fmt: skip


def _tool(relative: str) -> Path:
    path = TOOLS / relative
    if not path.exists():
        message = f"{path} is missing: run `make k8s-tools` (tools/k8s-tools.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=600)
    if ok:
        assert res.returncode == 0, f"{' '.join(map(str, args))}:\n{res.stdout}\n{res.stderr}"
    return res


def helm(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(_tool("bin/helm"), *args, ok=ok)


def template(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return helm("template", "detector", CHART, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *args, ok=ok)


def docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("helm")
    paths = {}
    for name, args in VARIANTS.items():
        (out / name).mkdir()
        path = out / name / "manifests.yaml"
        path.write_text(template(*args).stdout)
        paths[name] = path
    return paths


def objects(rendered: dict[str, Path], variant: str) -> dict[str, dict[str, Any]]:
    """kind -> object; kind/name for the other objects of a kind that repeats (e.g. ConfigMap/<name>-rules)."""
    found = docs(rendered[variant].read_text())
    (main,) = [d["metadata"]["name"] for d in found if d["kind"] == "Deployment"]
    kinds = [d["kind"] for d in found]
    out: dict[str, dict[str, Any]] = {}
    for doc in found:
        alone = kinds.count(doc["kind"]) == 1 or doc["metadata"]["name"] == main
        out[doc["kind"] if alone else f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def pod(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = objs["Deployment"]["spec"]["template"]
    return template


def container(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = pod(objs)["spec"]["containers"]
    return dict(c)


def settings(objs: dict[str, dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = objs["ConfigMap"]["data"]
    return data


# --- the tools ---------------------------------------------------------------------------------------------------


def test_helm_lint() -> None:
    helm("lint", "--strict", CHART)
    helm("lint", "--strict", CHART, "-f", FULL_VALUES)


EXPECTED_KINDS = {
    "default": {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"},
    "full": {
        "ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "PodMonitor",
        "PrometheusRule", "ScaledObject", "TriggerAuthentication", "NetworkPolicy",
    },
    "servicemonitor-hpa": {
        "ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor",
        "HorizontalPodAutoscaler", "NetworkPolicy",
    },
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_template_renders(rendered: dict[str, Path], variant: str) -> None:
    kinds = {d["kind"] for d in docs(rendered[variant].read_text())}
    assert kinds == EXPECTED_KINDS[variant]
    for doc in docs(rendered[variant].read_text()):
        assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kubeconform_validates_every_object_offline(rendered: dict[str, Path], variant: str) -> None:
    kubeconform = _tool("bin/kubeconform")
    schemas = _tool("schemas")
    location = str(schemas / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    # No -ignore-missing-schemas and no default (remote) location: an object without a local schema is an error.
    res = _run(kubeconform, "-strict", "-summary", "-output", "json", "-schema-location", location,
               rendered[variant], ok=False)  # fmt: skip
    report = json.loads(res.stdout)
    problems = [r for r in report.get("resources", []) if r["status"] != "statusValid"]
    assert res.returncode == 0 and not problems, json.dumps(problems or report, indent=1)
    summary = report["summary"]
    assert summary["valid"] == len(docs(rendered[variant].read_text())) and summary["skipped"] == 0, summary


def test_kubeconform_rejects_what_the_api_server_would() -> None:
    """The schemas are strict: an unknown field and a wrong type are caught (guards against permissive schemas)."""
    kubeconform = _tool("bin/kubeconform")
    location = str(_tool("schemas") / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    bad = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
         "spec": {"replicas": "two", "selector": {}, "template": {}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"},
         "spec": {"selector": {}, "podMetricsEndpoints": [{"prot": "http"}]}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
         "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicaCount": "many", "triggers": []}},
    ]  # fmt: skip
    for doc in bad:
        args = [str(kubeconform), "-strict", "-schema-location", location, "-"]
        res = subprocess.run(args, input=yaml.safe_dump(doc), capture_output=True, text=True, timeout=60)
        assert res.returncode != 0, f"{doc['kind']} accepted: {res.stdout}"


def _checkov(directory: Path) -> dict[str, Any]:
    checkov = _tool("checkov/bin/checkov")
    # Not --quiet: it would drop the passed and skipped checks from the report.
    res = _run(checkov, "--directory", directory, "--framework", "kubernetes", "--output", "json", "--compact",
               "--skip-download", ok=False)  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    report = json.loads(res.stdout or "{}")
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    return dict(report)


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkov_reports_no_failed_check(rendered: dict[str, Path], variant: str) -> None:
    report = _checkov(rendered[variant].parent)
    results = report.get("results", {})
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in results.get("failed_checks", [])]
    assert not failed, "checkov failed checks (fix them, or skip with a reason in the object's annotations):\n" + (
        "\n".join(map(str, failed))
    )
    assert report["summary"]["passed"] > 20, report["summary"]
    skipped = {
        c["check_id"]: (c.get("check_result") or {}).get("suppress_comment", "") for c in results["skipped_checks"]
    }
    for check_id, reason in skipped.items():
        assert len(reason) > 20, f"{check_id} skipped without a reason"
    # The justified skips (deployment.yaml's annotations); the conditional ones pass when their option is on.
    conditional = {"default": {"CKV_K8S_43", "CKV2_K8S_6"}, "servicemonitor-hpa": {"CKV_K8S_43"}, "full": set()}
    assert set(skipped) == {"CKV_K8S_11", "CKV_K8S_15"} | conditional[variant]
    passed = {c["check_id"] for c in results["passed_checks"]}
    assert {"CKV_K8S_43", "CKV2_K8S_6"} - conditional[variant] <= passed


# --- what the chart promises -------------------------------------------------------------------------------------


def _shutdown_budget_s() -> int:
    """How long the worker waits for its ingest thread on SIGTERM (detector/stream/app.py)."""
    source = (REPO / "detector" / "stream" / "app.py").read_text()
    (budget,) = re.findall(r"run_in_executor\(None, ingest\.join, (\d+)\)", source)
    return int(budget)


@pytest.mark.parametrize("variant", VARIANTS)
def test_security_context_service_account_and_grace_period(rendered: dict[str, Path], variant: str) -> None:
    objs = objects(rendered, variant)
    spec = pod(objs)["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert spec["terminationGracePeriodSeconds"] >= _shutdown_budget_s() + 15
    spread = {(t["topologyKey"], t["maxSkew"]) for t in spec["topologySpreadConstraints"]}
    assert spread == {("topology.kubernetes.io/zone", 1), ("kubernetes.io/hostname", 1)}
    assert objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_service_and_settings_agree(rendered: dict[str, Path], variant: str) -> None:
    objs = objects(rendered, variant)
    c = container(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    service_ports = {ports[p["targetPort"]] for p in objs["Service"]["spec"]["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        assert c[probe]["httpGet"]["path"] == path and ports[c[probe]["httpGet"]["port"]] in service_ports
    env = settings(objs)
    assert int(env["DETECTOR_HTTP_PORT"]) in service_ports and env["DETECTOR_HTTP_HOST"] == "0.0.0.0"
    assert [e["configMapRef"]["name"] for e in c["envFrom"]] == [objs["ConfigMap"]["metadata"]["name"]]
    labels = pod(objs)["metadata"]["labels"].items()
    assert objs["Service"]["spec"]["selector"].items() <= labels
    assert objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels
    # Every DETECTOR_* variable is a setting the worker reads (WorkerConfig fields, read from the source).
    source = (REPO / "detector" / "stream" / "config.py").read_text()
    known = {"DETECTOR_" + n.upper() for n in re.findall(r"^    (\w+): [^=\n]+= setting\(", source, re.M)}
    assert set(env) <= known, sorted(set(env) - known)
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in env), "a secret in the ConfigMap"


def test_one_scrape_path(rendered: dict[str, Path]) -> None:
    default, full = objects(rendered, "default"), objects(rendered, "full")
    annotations = pod(default)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and "PodMonitor" not in default
    assert annotations["prometheus.io/port"] == settings(default)["DETECTOR_HTTP_PORT"]
    assert not any(k.startswith("prometheus.io/") for k in pod(full)["metadata"]["annotations"])
    (endpoint,) = full["PodMonitor"]["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    # deploy/prometheus/detector.rules.yml selects job="netsupport-detector".
    assert {"targetLabel": "job", "replacement": "netsupport-detector"} in endpoint["relabelings"]
    sm = objects(rendered, "servicemonitor-hpa")
    assert not any(k.startswith("prometheus.io/") for k in pod(sm)["metadata"]["annotations"])
    assert sm["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "http"


def test_prometheus_rule_and_dashboard_are_the_monitoring_owners_files(rendered: dict[str, Path]) -> None:
    full = objects(rendered, "full")
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "detector.rules.yml").read_text())
    assert full["PrometheusRule"]["spec"] == rules
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "netsupport-detector.json").read_text())
    assert json.loads(full["ConfigMap/detector-netsupport-detector-dashboard"]["data"]["netsupport-detector.json"]) == (
        dashboard
    )


def test_chart_files_are_the_owners_files() -> None:
    """.Files.Get reads only inside the chart: files/ holds symlinks to the monitoring owner's files (no fork)."""
    pairs = {
        CHART / "files" / "detector.rules.yml": REPO / "deploy" / "prometheus" / "detector.rules.yml",
        CHART / "files" / "netsupport-detector.json": REPO
        / "deploy"
        / "grafana"
        / "dashboards"
        / ("netsupport-detector.json"),
    }
    for link, original in pairs.items():
        assert link.is_symlink() and link.resolve() == original.resolve(), f"ln -sfr {original} {link}"


def test_secrets_are_mounted_files(rendered: dict[str, Path]) -> None:
    full = objects(rendered, "full")
    env, c, spec = settings(full), container(full), pod(full)["spec"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for setting, volume, key in (
        ("DETECTOR_SASL_PASSWORD_FILE", "sasl", "sasl-password"),
        ("DETECTOR_SSL_CAFILE", "tls", "ca.crt"),
        ("DETECTOR_SSL_CERTFILE", "tls", "tls.crt"),
        ("DETECTOR_SSL_KEYFILE", "tls", "tls.key"),
        ("DETECTOR_SSL_KEY_PASSWORD_FILE", "tls", "key-password"),
    ):
        assert env[setting] == f"{mounts[volume]['mountPath']}/{key}", setting
        assert mounts[volume]["readOnly"] is True
        assert key in [i["key"] for i in volumes[volume]["secret"]["items"]]
        assert volumes[volume]["secret"]["defaultMode"] == 0o440
    assert env["DETECTOR_SECURITY_PROTOCOL"] == "SASL_SSL" and env["DETECTOR_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "env" not in c or not any("PASSWORD" in e["name"] for e in c["env"])
    # A password given as a plain setting is refused at render time.
    res = template("--set", "config.DETECTOR_SASL_PASSWORD=hunter2", ok=False)
    assert res.returncode != 0 and "secrets go in" in res.stderr


def test_rules_from_values_are_loaded_and_roll_the_pods(rendered: dict[str, Path], tmp_path: Path) -> None:
    from detector.rules.exceptions import load_exceptions
    from detector.rules.model import DEFAULT_RULE_FILE, load_rules

    full = objects(rendered, "full")
    env, spec = settings(full), pod(full)["spec"]
    values = yaml.safe_load(FULL_VALUES.read_text())
    rules_cm = full["ConfigMap/detector-netsupport-detector-rules"]
    paths = env["DETECTOR_RULES"].split(",")
    assert paths[0] == yaml.safe_load((CHART / "values.yaml").read_text())["rules"]["builtinPath"]
    assert values["rules"]["builtin"] is True
    assert Path(paths[0]).name == DEFAULT_RULE_FILE.name
    mount = next(m for m in container(full)["volumeMounts"] if m["name"] == "rules")
    volume = next(v for v in spec["volumes"] if v["name"] == "rules")
    assert volume["configMap"]["name"] == rules_cm["metadata"]["name"]
    assert paths[1:] == [f"{mount['mountPath']}/{name}" for name in sorted(rules_cm["data"])]
    # The files as the pod sees them load with the worker's loader (the built-in from the package).
    local = [DEFAULT_RULE_FILE]
    for name, content in rules_cm["data"].items():
        (tmp_path / name).write_text(content)
        local.append(tmp_path / name)
    assert len(load_rules(local)) == 2
    exc_cm = full["ConfigMap/detector-netsupport-detector-exceptions"]
    for name, content in exc_cm["data"].items():
        (tmp_path / name).write_text(content)
        load_exceptions([tmp_path / name])
    assert env["DETECTOR_EXCEPTIONS"] == ",".join(f"/etc/detector/exceptions/{n}" for n in sorted(exc_cm["data"]))

    # A changed rule or setting changes the pods' checksum (a rollout); a changed exception list does not.
    def checksum(*args: str) -> str:
        objs = docs(template("-f", str(FULL_VALUES), *args).stdout)
        (dep,) = [d for d in objs if d["kind"] == "Deployment"]
        value: str = dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    base = checksum()
    assert checksum("--set-string", "rules.files.notepad_user_folder\\.toml=changed") != base
    assert checksum("--set-string", "config.DETECTOR_LOG_LEVEL=debug") != base
    assert checksum("--set-string", "exceptions.files.netsupport_tuning\\.ndjson=changed") == base


def test_replicas_are_bounded_by_the_input_partitions() -> None:
    # The rolling update's extra pod (maxSurge 1) must have a partition too: replicas + 1 <= partitions.
    assert template("--set", "kafka.inputPartitions=3", "--set", "replicaCount=2").returncode == 0
    res = template("--set", "kafka.inputPartitions=2", "--set", "replicaCount=2", ok=False)
    assert res.returncode != 0 and "kafka.inputPartitions" in res.stderr
    res = template("-f", FULL_VALUES, "--set", "autoscaling.keda.maxReplicaCount=24", ok=False)
    assert res.returncode != 0 and "kafka.inputPartitions" in res.stderr
    res = template("--set", "autoscaling.hpa.enabled=true", "--set", "autoscaling.hpa.maxReplicas=12", ok=False)
    assert res.returncode != 0 and "kafka.inputPartitions" in res.stderr
    res = template("--set", "terminationGracePeriodSeconds=30", ok=False)
    assert res.returncode != 0 and "terminationGracePeriodSeconds" in res.stderr


def test_keda_scales_on_the_ingest_groups_lag(rendered: dict[str, Path]) -> None:
    full = objects(rendered, "full")
    so, env = full["ScaledObject"], settings(full)
    values = yaml.safe_load(FULL_VALUES.read_text())
    assert so["spec"]["scaleTargetRef"]["name"] == full["Deployment"]["metadata"]["name"]
    assert so["spec"]["maxReplicaCount"] + 1 <= values["kafka"]["inputPartitions"]
    assert "replicas" not in full["Deployment"]["spec"], "KEDA owns the replica count"
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert (
        meta["consumerGroup"] == env["DETECTOR_CONSUMER_GROUP"]
        and meta["bootstrapServers"] == (env["DETECTOR_BOOTSTRAP_SERVERS"])
    )
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
    auth = full["TriggerAuthentication"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == (values["kafka"]["sasl"]["existingSecret"], "sasl-password")
    assert refs["ca"] == (values["kafka"]["tls"]["existingSecret"], "ca.crt")


def test_network_policy_allows_scrapes_dns_and_kafka_only(rendered: dict[str, Path]) -> None:
    np = objects(rendered, "full")["NetworkPolicy"]["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = np["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}] and ingress["from"]
    ports = sorted(p["port"] for rule in np["egress"] for p in rule["ports"])
    assert ports == [53, 53, 9096]


# --- chart docs --------------------------------------------------------------------------------------------------


def test_every_value_is_documented_and_the_readme_table_is_generated() -> None:
    values = (CHART / "values.yaml").read_text()
    assert undocumented(values) == []
    assert table(values) in (CHART / "README.md").read_text(), "regenerate: python -m tools.helm_values_table"


def _readme_quick_start() -> Iterator[tuple[str, str]]:
    """(helm command, values YAML) of the top-level README's deploy quick start."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deploying with Helm") :]
    (values,) = re.findall(r"```yaml\n# my-values\.yaml\n(.*?)```", section, re.S)
    commands = re.findall(r"^helm (?:upgrade --install|install) .*$", section, re.M)
    for command in commands:
        yield command, values


def test_readme_quick_start_renders(tmp_path: Path) -> None:
    found = list(_readme_quick_start())
    assert found, "the README's deploy quick start has no helm install command"
    for command, values in found:
        (tmp_path / "my-values.yaml").write_text(values)
        args = command.split()
        assert "deploy/helm/netsupport-detector" in args and "my-values.yaml" in args, command
        i = args.index("deploy/helm/netsupport-detector")
        release = args[i - 1]
        extra = [a.replace("my-values.yaml", str(tmp_path / "my-values.yaml")) for a in args[i + 1 :]]
        extra = [a for a in extra if a not in ("--create-namespace", "--wait")]
        res = helm("template", release, CHART, "--kube-version", KUBE_VERSION, *extra)
        kinds = {d["kind"] for d in docs(res.stdout)}
        assert {"Deployment", "ConfigMap", "Service"} <= kinds


def test_notes_render(tmp_path: Path) -> None:
    """NOTES.txt is only rendered by a real install: render it as a template of a copy of the chart."""
    import shutil

    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "notes.yaml").write_text('notes: |\n  {{- tpl (.Files.Get "notes.txt") . | nindent 2 }}\n')
    for args in ([], ["-f", str(FULL_VALUES)]):
        res = helm("template", "detector", chart, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
                   "--show-only", "templates/notes.yaml", *args)  # fmt: skip
        (doc,) = docs(res.stdout)
        notes = doc["notes"]
        assert "rollout status deployment/detector-netsupport-detector" in notes
        assert ("PodMonitor" in notes) == bool(args) and ("prometheus.io" in notes) != bool(args)


def test_missing_tools_fail_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In CI a missing tool is a failure, not a skip (elsewhere a skip that says how to install it)."""
    import tests.test_helm as module

    monkeypatch.setattr(module, "TOOLS", tmp_path)
    monkeypatch.setattr(module, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="make k8s-tools"):
        module._tool("bin/helm")
    monkeypatch.setattr(module, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="make k8s-tools"):
        module._tool("bin/helm")
