"""JSON schemas for kubeconform, written offline from sources the Go module proxy serves.

- Kubernetes: the OpenAPI v2 spec in module k8s.io/kubernetes (api/openapi-spec/swagger.json).
- Custom resources: CustomResourceDefinition YAML files (prometheus-operator's example/prometheus-operator-crd,
  KEDA's config/crd/bases), each served version's openAPIV3Schema.

Every schema is standalone (all $refs inlined) and strict (additionalProperties false wherever the source lists
the properties, except under x-kubernetes-preserve-unknown-fields), as yannh/kubernetes-json-schema's
"-standalone-strict" flavour. Files are named as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`:
kind in lower case, then `-<first label of the group>` unless the group is core, then `-<version>`
(deployment-apps-v1.json, service-v1.json, podmonitor-monitoring-v1.json, scaledobject-keda-v1alpha1.json).

    python -m tools.k8s_schemas OUT_DIR --swagger swagger.json --crd a.yaml --crd b.yaml ...
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]

# Kinds a chart may render from the Kubernetes API; others are not written (a full set is ~100 MB inlined).
K8S_GROUPS = {"", "apps", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io", "batch"}


def file_name(kind: str, group: str, version: str) -> str:
    suffix = f"-{group.split('.')[0]}" if group else ""
    return f"{kind.lower()}{suffix}-{version}.json"


def _int_or_string() -> Schema:
    return {"oneOf": [{"type": "string"}, {"type": "integer"}]}


def _strict(schema: Any, preserve: bool = False) -> Any:
    """Close every object that lists its properties; x-kubernetes-* markers become JSON schema."""
    if isinstance(schema, list):
        return [_strict(s, preserve) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        rest = {k: v for k, v in schema.items() if k in ("description",)}
        return {**rest, **_int_or_string()}
    keep = preserve or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    out: Schema = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _strict(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in ("allOf", "anyOf", "oneOf"):
            out[key] = _strict(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out and not keep:
        out["additionalProperties"] = False
    return out


# --- Kubernetes (OpenAPI v2) ---------------------------------------------------------------------


def _inline(node: Any, definitions: dict[str, Schema], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(n, definitions, stack) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        name = ref.removeprefix("#/definitions/")
        if name in stack:  # recursive (JSONSchemaProps): leave it open
            return {"description": f"recursive {name}"}
        target = _definition(name, definitions)
        return _inline(target, definitions, (*stack, name))
    return {k: _inline(v, definitions, stack) for k, v in node.items()}


def _definition(name: str, definitions: dict[str, Schema]) -> Schema:
    target = copy.deepcopy(definitions[name])
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
        return {"description": target.get("description", ""), **_int_or_string()}
    if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
        return {"description": target.get("description", ""), "oneOf": [{"type": "string"}, {"type": "number"}]}
    return target


def kubernetes_schemas(swagger: Path) -> dict[str, Schema]:
    definitions: dict[str, Schema] = json.loads(swagger.read_text())["definitions"]
    out: dict[str, Schema] = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            if group not in K8S_GROUPS or name.startswith("io.k8s.apimachinery"):
                continue
            schema = _strict(_inline(copy.deepcopy(definition), definitions, (name,)))
            api_version = f"{group}/{version}" if group else version
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [api_version]}
            props["kind"] = {"type": "string", "enum": [kind]}
            schema["$schema"] = "http://json-schema.org/schema#"
            out[file_name(kind, group, version)] = schema
    return out


# --- CustomResourceDefinitions -------------------------------------------------------------------

_OBJECT_META = {"type": "object"}  # checked by the API server, not by the CRD's schema


def crd_schemas(path: Path) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            raw = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            props = raw.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
            props["kind"] = {"type": "string", "enum": [kind]}
            props["metadata"] = _OBJECT_META
            schema = _strict(raw)
            schema["$schema"] = "http://json-schema.org/schema#"
            out[file_name(kind, group, version["name"])] = schema
    if not out:
        raise SystemExit(f"{path}: no CustomResourceDefinition")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--swagger", type=Path, required=True, help="Kubernetes' api/openapi-spec/swagger.json")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="a CRD YAML file (repeatable)")
    args = parser.parse_args(argv)
    schemas = kubernetes_schemas(args.swagger)
    for crd in args.crd:
        schemas.update(crd_schemas(crd))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (args.out / name).write_text(json.dumps(schema, separators=(",", ":")))
    print(f"wrote {len(schemas)} schemas to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
