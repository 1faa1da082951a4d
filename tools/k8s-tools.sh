#!/usr/bin/env bash
# Tools the Helm chart's tests need (tests/test_helm.py), pinned, installed under .cache/k8s-tools/
# (gitignored) and reused by later runs:
#   bin/helm, bin/kubeconform   built with `go install` from the Go module proxy
#   schemas/                    Kubernetes 1.30 + prometheus-operator + KEDA JSON schemas (tools/k8s_schemas.py),
#                               from Go modules too: kubeconform then validates offline
#   checkov/                    a virtualenv with checkov from PyPI, hash-checked (tools/checkov.lock)
# Needs: go, python3 (3.11), the project venv (.venv, for PyYAML; make k8s-tools installs it), network to proxy.golang.org and PyPI on the first run only.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.19.5
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VERSION=v1.30.14            # k8s.io/kubernetes: api/openapi-spec/swagger.json
PROMETHEUS_OPERATOR_VERSION=v0.85.0    # example/prometheus-operator-crd/
KEDA_VERSION=v2.16.1                   # config/crd/bases/

ROOT=$PWD/.cache/k8s-tools
BIN=$ROOT/bin
export GOBIN=$BIN GOMODCACHE=$ROOT/gomod GOCACHE=$ROOT/gobuild GOFLAGS=-modcacherw GOTOOLCHAIN=local
mkdir -p "$BIN"

stamp() { [[ -f "$ROOT/$1.stamp" && "$(cat "$ROOT/$1.stamp")" == "$2" ]]; }
mark() { echo "$2" >"$ROOT/$1.stamp"; }

if ! stamp helm "$HELM_VERSION" || [[ ! -x $BIN/helm ]]; then
  echo "==> go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mark helm "$HELM_VERSION"
fi

if ! stamp kubeconform "$KUBECONFORM_VERSION" || [[ ! -x $BIN/kubeconform ]]; then
  echo "==> go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  mark kubeconform "$KUBECONFORM_VERSION"
fi

# The build cache only serves rebuilds of these pinned versions, which the stamps already skip: drop it (~750 MB).
if [[ -d $GOCACHE ]]; then go clean -cache; fi

SCHEMAS_ID="$KUBERNETES_VERSION $PROMETHEUS_OPERATOR_VERSION $KEDA_VERSION $(sha256sum tools/k8s_schemas.py | cut -c1-16)"
if ! stamp schemas "$SCHEMAS_ID"; then
  echo "==> JSON schemas: k8s.io/kubernetes@$KUBERNETES_VERSION, prometheus-operator@$PROMETHEUS_OPERATOR_VERSION, keda@$KEDA_VERSION"
  dir() { go mod download -json "$1" | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])'; }
  K8S=$(dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  PO=$(dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd
  KEDA=$(dir "github.com/kedacore/keda/v2@$KEDA_VERSION")/config/crd/bases
  rm -rf "$ROOT/schemas"
  PYTHONPATH=. "${K8S_PYTHON:-.venv/bin/python}" -m tools.k8s_schemas "$ROOT/schemas" --swagger "$K8S/api/openapi-spec/swagger.json" \
    --crd "$PO/monitoring.coreos.com_podmonitors.yaml" --crd "$PO/monitoring.coreos.com_servicemonitors.yaml" \
    --crd "$PO/monitoring.coreos.com_prometheusrules.yaml" \
    --crd "$KEDA/keda.sh_scaledobjects.yaml" --crd "$KEDA/keda.sh_triggerauthentications.yaml"
  mark schemas "$SCHEMAS_ID"
fi

CHECKOV_ID=$(sha256sum tools/checkov.lock | cut -c1-16)
if ! stamp checkov "$CHECKOV_ID" || [[ ! -x $ROOT/checkov/bin/checkov ]]; then
  echo "==> checkov (tools/checkov.lock) in $ROOT/checkov"
  rm -rf "$ROOT/checkov"
  python3 -m venv "$ROOT/checkov"
  "$ROOT/checkov/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r tools/checkov.lock
  mark checkov "$CHECKOV_ID"
fi

"$BIN/helm" version --short
"$BIN/kubeconform" -v
"$ROOT/checkov/bin/checkov" --version
