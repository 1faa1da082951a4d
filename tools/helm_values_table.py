"""The values table of the Helm chart's README, written from values.yaml's "# --" comments.

A comment block starting with "# --" documents the key on the line below it (its continuation lines start with
"#"); the default is the key's value in values.yaml. Every value must be documented by itself or by a parent.

    python -m tools.helm_values_table            # print the table
    python -m tools.helm_values_table --check    # exit 1 when a value has no description
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "netsupport-detector"
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(?:\s|$)")


def documented(values_yaml: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key preceded by a "# --" comment, in file order."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    doc: list[str] | None = None
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            doc = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#"):
            if doc is not None:
                doc.append(stripped.removeprefix("#").strip())
            continue
        if not stripped:
            doc = None
            continue
        m = _KEY.match(line)
        if m is None:  # a list item or a continuation: not a key
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if doc is not None:
            out.append((".".join(k for _, k in stack), " ".join(doc)))
            doc = None
    return out


def _get(values: Any, path: str) -> Any:
    for part in path.split("."):
        values = values[part]
    return values


def _leaves(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [leaf for k, v in values.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix.removesuffix(".")]


def undocumented(values_yaml: str) -> list[str]:
    keys = {k for k, _ in documented(values_yaml)}
    values = yaml.safe_load(values_yaml)
    missing = []
    for leaf in _leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:n]) in keys for n in range(1, len(parts) + 1)):
            missing.append(leaf)
    return missing


def table(values_yaml: str) -> str:
    values = yaml.safe_load(values_yaml)
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for key, text in documented(values_yaml):
        default = json.dumps(_get(values, key), separators=(", ", ": "))
        escaped = text.replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {escaped} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = (CHART / "values.yaml").read_text()
    if "--check" in args:
        missing = undocumented(text)
        for key in missing:
            print(f"values.yaml: {key} has no '# --' description (on itself or a parent)", file=sys.stderr)
        return 1 if missing else 0
    print(table(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
