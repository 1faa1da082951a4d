"""Render the Grafana dashboard's panels from a Prometheus to a PNG, with matplotlib (no Grafana needed).

Each panel's queries run through Prometheus' HTTP API (/api/v1/query_range; /api/v1/query for tables) with the
dashboard's variables substituted as Grafana would ($namespace, $job, $source, $__rate_interval, $__range, ...),
and are drawn where the panel's gridPos puts them: timeseries as lines, stats as their last value, tables as
text. tests/integration/test_prometheus.py renders it from a real worker's data; docs/dashboard.png is one.

    python -m tools.render_dashboard --prometheus http://127.0.0.1:9090 --namespace prod --minutes 30 \
        --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "netsupport-detector.json"
GRID_COLUMNS = 24


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested ones included, in order."""
    out: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for p in items:
            out.append(p)
            walk(p.get("panels", []))

    walk(list(dashboard["panels"]))
    return out


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with $name and ${name} replaced from `variables` (keys without the $; __rate_interval etc. too)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def api(prometheus: str, path: str, params: Mapping[str, str | float], timeout: float = 30.0) -> Any:
    url = f"{prometheus.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]


def query(prometheus: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | float] = {"query": expr}
    if at is not None:
        params["time"] = at
    result: list[dict[str, Any]] = api(prometheus, "/api/v1/query", params)["result"]
    return result


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    data = api(prometheus, "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
    result: list[dict[str, Any]] = data["result"]
    return result


def legend(fmt: str | None, labels: Mapping[str, str]) -> str:
    if not fmt or fmt == "__auto":
        inner = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
        return inner or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def _number(v: float, unit: str | None) -> str:
    if math.isnan(v):
        return "NaN"
    if unit == "s":
        return f"{v:.3g} s" if v < 120 else f"{v / 60:.3g} min"
    if abs(v) >= 1000:
        return f"{v / 1000:.3g}k"
    return f"{v:.3g}"


def render(
    prometheus: str,
    variables: Mapping[str, str],
    out: Path,
    start: float,
    end: float,
    step: float,
    dashboard: Mapping[str, Any] | None = None,
) -> Path:
    """Draw every panel of `dashboard` (default: the repository's) from `prometheus` into `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dash = load() if dashboard is None else dashboard
    items = panels(dash)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in items)
    unit_h = 0.42  # inches per grid row
    top_in, bottom_in = 0.6, 0.2  # the title above, a margin below
    height = rows * unit_h + top_in + bottom_in
    fig = plt.figure(figsize=(22, height))
    fig.suptitle(
        f"{dash['title']} — {', '.join(f'{k}={v}' for k, v in variables.items() if not k.startswith('__'))}",
        fontsize=14,
        y=1 - 0.2 / height,
    )

    def box(g: Mapping[str, int], pad: float = 0.004) -> tuple[float, float, float, float]:
        """The axes of a panel in figure fractions, leaving room for its title above and ticks below."""
        x0 = g["x"] / GRID_COLUMNS + pad * 6
        w = g["w"] / GRID_COLUMNS - pad * 8
        bottom_in_fig = height - top_in - (g["y"] + g["h"]) * unit_h
        return x0, (bottom_in_fig + 0.45) / height, w, (g["h"] * unit_h - 0.8) / height

    for p in items:
        g = p["gridPos"]
        if p["type"] == "row":
            y_text = 1 - (top_in + (g["y"] + 0.8) * unit_h) / height
            fig.text(0.005, y_text, p["title"], fontsize=13, fontweight="bold")
            continue
        ax = fig.add_axes(box(g))
        ax.set_title(p["title"], fontsize=9, loc="left")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        targets = p.get("targets", [])
        if p["type"] == "table":
            ax.axis("off")
            lines = []
            for t in targets:
                for r in query(prometheus, substitute(t["expr"], variables), end):
                    lines.append("  ".join(f"{k}={v}" for k, v in sorted(r["metric"].items())))
            ax.text(0, 0.9, "\n".join(lines[:8]) or "no data", fontsize=8, va="top", family="monospace")
            continue
        series = []
        for t in targets:
            for r in query_range(prometheus, substitute(t["expr"], variables), start, end, step):
                xs = [float(v[0]) - end for v in r["values"]]
                ys = [float(v[1]) for v in r["values"]]
                series.append((legend(t.get("legendFormat"), r["metric"]), xs, ys))
        if p["type"] == "stat":
            ax.axis("off")
            text = " / ".join(_number(s[2][-1], unit) for s in series if s[2]) or "no data"
            ax.text(0.5, 0.35, text, fontsize=20, ha="center", va="center", color="#1f6f43")
            if len(series) > 1:
                ax.text(0.5, 0.02, " / ".join(s[0] for s in series), fontsize=7, ha="center", color="gray")
            continue
        for name, xs, ys in series[:12]:
            ax.plot(xs, ys, label=name[:48], linewidth=1.2)
        if not series:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.tick_params(labelsize=7)
        ax.set_xlabel("seconds before the end", fontsize=7)
        if unit:
            ax.set_ylabel(unit, fontsize=7)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=6, loc="upper left", ncol=2 if len(series) > 4 else 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--namespace", default=".*")
    ap.add_argument("--job", default="netsupport-detector")
    ap.add_argument("--source", default=".*")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    ap.add_argument("--out", type=Path, default=Path("dashboard.png"))
    args = ap.parse_args(argv)
    end = time.time()
    start = end - args.minutes * 60
    variables = {
        "namespace": args.namespace,
        "job": args.job,
        "source": args.source,
        "__rate_interval": args.rate_interval,
        "__range": f"{int(args.minutes * 60)}s",
        "__interval": f"{max(int(args.minutes * 60 / 300), 1)}s",
    }
    render(args.prometheus, variables, args.out, start, end, max((end - start) / 300, 1.0))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
