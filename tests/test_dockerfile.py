"""deploy/Dockerfile, read as text (no Docker here): multi-stage, base pinned by digest, the lock installed with
--require-hashes, tini as PID 1, OCI labels, non-root, and the built-in rule where the Helm chart expects it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from detector.rules.model import DEFAULT_RULE_FILE

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "netsupport-detector" / "values.yaml").read_text())


def _instructions() -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_multi_stage_from_a_base_pinned_by_digest() -> None:
    (base,) = re.findall(r"^ARG BASE=(\S+)$", DOCKERFILE, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    froms = [i for i in _instructions() if i.startswith("FROM ")]
    assert froms == ["FROM ${BASE} AS build", "FROM ${BASE}"]


def test_dependencies_from_the_lock_with_hashes_then_the_project_alone() -> None:
    runs = " ".join(i for i in _instructions() if i.startswith("RUN "))
    assert "pip install --require-hashes -r requirements.lock" in runs
    assert "pip install --no-deps ." in runs
    assert "COPY --from=build /opt/venv /opt/venv" in _instructions()


def test_tini_is_pid_1_and_the_worker_its_child() -> None:
    instructions = _instructions()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "detector"]' in instructions
    assert 'CMD ["worker"]' in instructions
    # Debian's package, pinned to bookworm's version.
    assert re.search(r"apt-get install -y --no-install-recommends tini=\S+", DOCKERFILE)


def test_oci_labels_non_root_and_health() -> None:
    labels = set(re.findall(r"org\.opencontainers\.image\.([a-z.]+)=", DOCKERFILE))
    assert {"title", "description", "version", "revision", "created", "source", "licenses", "base.name"} <= labels
    assert "USER 10001:10001" in _instructions()
    assert any(i.startswith("HEALTHCHECK ") and "/healthz" in i for i in _instructions())
    # The chart's securityContext runs as the image's user.
    assert VALUES["podSecurityContext"]["runAsUser"] == 10001


def test_the_built_in_rule_is_where_the_chart_looks() -> None:
    builtin = VALUES["rules"]["builtinPath"]
    directory, name = builtin.rsplit("/", 1)
    assert name == DEFAULT_RULE_FILE.name
    assert f"COPY --from=build /opt/rules {directory}" in _instructions()
    assert f"/opt/rules/{name}" in DOCKERFILE
