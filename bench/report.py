"""BENCHMARKS.md and its plots from bench/results/*.json (`make bench-report`).

    .venv/bin/python -m bench.report [--results bench/results] [--out BENCHMARKS.md]

Reads what the benches last wrote (stream_throughput.json, stream_latency.json, stream_memory.json,
alert_storm.json, and scan.json when bench/scan_throughput.py has written it), draws PNGs next to them with
matplotlib, and writes the report: figures, the machine and commit each was measured on, the exact commands,
the targets marked met / not met, and a comparison with Elastic's scheduled rule, the eql package, a plain
Faust agent and Confluent's published Sigma-on-Kafka-Streams figures. A missing result is reported as
missing, not invented.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson

from bench._kafka import REPO, RESULTS
from detector.stream.ingest import CONSUMER_FETCH

# Elastic's rule as shipped (detector/rules/builtin/netsupport_manager_unusual_path.toml): interval 5m, from now-9m.
ELASTIC_INTERVAL_S = 300
ELASTIC_LOOKBACK_S = 540
CONFLUENT_URL = (
    "https://github.com/confluentinc/confluent-sigma/blob/3437cee248b12670c7892152d31a43ed25d746c7/"
    "sigma-streams/test/results/README.md"
)
CONFLUENT_2022_URL = (
    "https://github.com/confluentinc/confluent-sigma/blob/0304ac5f6053af795d5a90bb575cc9769760793a/"
    "confluent-sigma/sigma-streams/test/results/wlaforest-test-perf-1-results-3-22-22.md"
)


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    doc["_path"] = str(path)
    return doc


def mark(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


# -- scan.json (written by bench/scan_throughput.py, another owner): read tolerantly --------------------------
_RATE_KEYS = ("records_per_s", "records_per_second", "rate", "records/s")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _rate_name(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in ("scan", "orjson", "eql", "loop")) and not any(
        w in k for w in ("ratio", " / ", "vs", "target", "seconds", "count", "records_")
    )


def scan_rates(doc: Any) -> dict[str, float]:
    """name -> records/s found in scan.json, whatever its exact layout ({name: rate}, {name: {rate...}}, lists)."""
    found: dict[str, float] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "machine":
                    continue
                if isinstance(v, dict):
                    rate = next((v[r] for r in _RATE_KEYS if _is_number(v.get(r))), None)
                    if rate is not None:
                        found[str(v.get("name", k))] = float(rate)
                    else:
                        walk(v)
                elif _is_number(v) and _rate_name(str(k)):
                    found[str(k)] = float(v)
                elif isinstance(v, list):
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    rate = next((item[r] for r in _RATE_KEYS if _is_number(item.get(r))), None)
                    if rate is not None:
                        found[item["name"]] = float(rate)
                        continue
                walk(item)

    walk(doc)
    return found


def _pick(rates: dict[str, float], *words: str, avoid: tuple[str, ...] = ()) -> tuple[str, float] | None:
    for name, rate in rates.items():
        low = name.lower()
        if all(w in low for w in words) and not any(a in low for a in avoid):
            return name, rate
    return None


# -- plots ---------------------------------------------------------------------------------------------------
def plot_throughput(doc: dict[str, Any], out: Path) -> None:
    rows = doc["consumers"]
    names = [rows[k]["name"] for k in rows]
    rates = [rows[k]["records_per_s"] for k in rows]
    cpu = [rows[k]["cpu_us_per_record"] for k in rows]
    colors = {"bare": "#888888", "worker": "#1f77b4", "faust": "#d62728"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    bars = a.bar(names, rates, color=[colors.get(k, "#555555") for k in rows])
    for bar, k in zip(bars, rows, strict=True):
        a.annotate(
            f"{rows[k]['records_per_s']:,.0f}/s\n{rows[k]['ratio_to_bare']:.2f}x bare",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    if "bare" in rows:
        a.axhline(rows["bare"]["records_per_s"] * 0.5, color="black", ls="--", lw=1, label="target: 0.5 x bare")
        a.legend(fontsize=8, loc="upper right")
    a.set_ylabel("records/s (one consumer; the worker is two processes)")
    a.set_title("Draining pre-loaded topics: throughput")
    a.set_ylim(0, max(rates) * 1.25)
    a.tick_params(axis="x", labelsize=8)
    bars = b.bar(names, cpu, color=[colors.get(k, "#555555") for k in rows])
    for bar, v in zip(bars, cpu, strict=True):
        b.annotate(f"{v:.1f} µs", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    b.set_yscale("log")
    b.set_ylabel("CPU µs per record (log)")
    b.set_title("CPU cost per record")
    b.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_latency(doc: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in doc["rates"]:
        lat = sorted(r["latencies_ms"])
        if not lat:
            continue
        ys = [(i + 1) / len(lat) for i in range(len(lat))]
        ax.step(
            lat,
            ys,
            where="post",
            label=f"{r['target_rate']:,.0f}/s offered ({r['achieved_rate']:,.0f}/s achieved), n={len(lat)}",
        )
    ax.axvline(50, color="grey", ls=":", lw=1)
    ax.axvline(100, color="grey", ls="--", lw=1)
    ax.text(50, 0.45, " 50 ms", fontsize=8, color="grey")
    ax.text(100, 0.55, " 100 ms", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("produce -> alert latency, ms (log)")
    ax.set_ylabel("fraction of alerts")
    ax.set_title("Produce-to-alert latency CDF per input rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_rss(docs: list[dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    top = 270.0
    for i, doc in enumerate(docs):
        ts = [x[0] for x in doc["samples"]]
        mb = [x[1] for x in doc["samples"]]
        top = max(top, max(mb) * 1.15)
        label = f"{doc['offered_rate']:,.0f}/s offered, {doc['achieved_rate']:,.0f}/s achieved"
        label += "" if doc["kept_up"] else " (worker fell behind)"
        (line,) = ax.plot(ts, mb, lw=1, label=label)
        if i == 0:
            ax.axvline(doc["warmup_seconds"], color="grey", ls=":", lw=1, label="end of warm-up")
            ax.axhline(doc["rss_mb"]["warmup"] * 1.1, color="orange", ls="--", lw=1, label="warm-up RSS + 10%")
        ax.axvline(doc["run_seconds"], color=line.get_color(), ls="--", lw=0.8)
    ax.axhline(250, color="red", ls="--", lw=1, label="target: < 250 MB")
    ax.set_ylim(0, top)
    ax.set_xlabel("seconds (dashed: end of input)")
    ax.set_ylabel("worker RSS, MB")
    ax.set_title("Worker RSS during a steady paced run")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_scan(rates: dict[str, float], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(rates)
    bars = ax.barh(names, [rates[n] for n in names], color="#1f77b4")
    for bar, n in zip(bars, names, strict=True):
        ax.annotate(f" {rates[n]:,.0f}/s", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center")
    ax.set_xscale("log")
    ax.set_xlabel("records/s (log)")
    ax.set_title("detector scan vs a bare orjson loop vs the eql package")
    ax.set_xlim(min(rates.values()) / 2, max(rates.values()) * 8)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# -- the report ----------------------------------------------------------------------------------------------
def last_commit_of(path: Path) -> str:
    """The commit that last changed `path` in this checkout (short hash), or '' if none or not a checkout."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", str(path)], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def split_table(rates: list[dict[str, Any]], *halves: tuple[str, str]) -> Iterator[str]:
    """A table of p50 / p99 per rate for the parts a latency is split into: (column title, the row's key)."""
    yield "| offered/s | " + " | ".join(f"{title} p50 / p99 ms" for title, _ in halves) + " |"
    yield "|---:|" + "---:|" * len(halves)
    for r in rates:
        cells = [f"{r[key]['p50']:.1f} / {r[key]['p99']:.1f}" for _, key in halves]
        yield f"| {fmt(r['target_rate'])} | " + " | ".join(cells) + " |"
    yield ""


def machine_line(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    commit = str(m.get("git_commit") or doc.get("git_commit") or doc.get("commit") or "")[:10]
    cores = m.get("cores", m.get("cpus", "?"))
    load = m.get("load_average_at_start", m.get("loadavg_before", []))
    when = m.get("date") or doc.get("when") or "?"
    if m.get("tree") == "export":
        dirty = " (run from a `git archive` export of that commit)"
    elif m.get("git_dirty_detector"):
        dirty = " (+ uncommitted changes under detector/)"
    else:
        dirty = ""
    if commit:
        which = f"commit `{commit}`{dirty}"
    else:
        last = last_commit_of(Path(doc.get("_path", "")))
        which = "commit not recorded" + (f" (the file was committed in `{last}`)" if last else "")
    parts = [f"{when}, {which}", f"{cores} cores"]
    if "cpu_model" in m:
        parts[-1] += f" ({m['cpu_model']}), {m.get('memory_gb', '?')} GB"
    parts.append(f"Python {m.get('python', '?')}")
    if load:
        parts.append("load average at start " + ", ".join(f"{float(x):.2f}" for x in load))
    broker = doc.get("broker_at_start")
    if isinstance(broker, dict) and "partitions" in broker:
        # A broker holding thousands of stale partitions lengthened the latency tails (bench/_kafka.py)
        parts.append(f"broker at start: {broker.get('topics', '?')} topics, {broker['partitions']} partitions")
    return "; ".join(parts)


def sections(
    out_dir: Path,
    rel: str,
    tput: dict[str, Any] | None,
    lat: dict[str, Any] | None,
    mem: dict[str, Any] | None,
    scan: dict[str, Any] | None,
    extra_mem: list[dict[str, Any]],
    storm: dict[str, Any] | None = None,
) -> Iterator[str]:
    yield "# Benchmarks\n"
    yield (
        "Generated by `make bench-report` (`python -m bench.report`) from `bench/results/*.json`; do not edit by "
        "hand. The machine is a shared 2-core VM that other jobs load at the same time: absolute figures move "
        "from run to run, so every comparison below is a ratio of figures measured in the same run.\n"
    )
    yield "## Measured on\n"
    yield "| bench | when, commit, machine |\n|---|---|"
    for name, doc in (
        ("stream throughput", tput),
        ("stream latency", lat),
        ("stream memory", mem),
        ("alert storm", storm),
        ("scan", scan),
    ):
        yield f"| {name} | {machine_line(doc) if doc else 'no result yet'} |"
    yield ""
    yield "## How to reproduce\n"
    yield "```sh"
    yield "make kafka-up                 # or your own broker: export BENCH_BOOTSTRAP=127.0.0.1:19592"
    yield "make bench                    # scan: bench/results/scan.json"
    yield "make bench-stream             # stream_throughput, stream_latency, alert_storm: bench/results/*.json"
    yield "make bench-memory             # 10 minutes at 50,000 records/s (MINUTES=1 for a trial, RATE=20000)"
    yield "make bench-report             # this file and the plots"
    yield "```\n"
    yield "Exact commands of the figures below:\n"
    for doc in (tput, lat, mem, *extra_mem, storm, scan):
        if doc and doc.get("command"):
            yield f"- `{doc['command']}`"
    yield ""

    # targets
    yield "## Targets\n"
    yield "| target | measured | status |\n|---|---|---|"
    if tput:
        w = tput["consumers"]["worker"]
        yield (
            f"| worker >= 0.5 x the bare confluent-kafka consumer | {w['ratio_to_bare']:.2f} x "
            f"({fmt(w['records_per_s'])} vs {fmt(tput['consumers']['bare']['records_per_s'])} records/s) "
            f"| {mark(w['ratio_to_bare'] >= 0.5)} |"
        )
    else:
        yield "| worker >= 0.5 x the bare confluent-kafka consumer | - | not measured |"
    rates = scan_rates(scan) if scan else {}
    scan_pick = _pick(rates, "scan", "cli") or _pick(rates, "scan", "end") or _pick(rates, "scan")
    orjson_pick = _pick(rates, "orjson")
    explicit = scan.get("ratios", {}).get("scan / orjson loop") if scan else None
    steady = scan.get("ratios", {}).get("scan excluding start-up / orjson loop") if scan else None
    if scan_pick and orjson_pick:
        vs_orjson = float(explicit) if isinstance(explicit, int | float) else scan_pick[1] / orjson_pick[1]
        start = scan.get("startup", {}).get("seconds_per_run") if scan else None
        steady_text = (
            f"; excluding its {start * 1000:.0f} ms start-up {steady:.2f} x"
            if isinstance(steady, int | float) and isinstance(start, int | float)
            else ""
        )
        yield (
            f"| scan >= 3 x a bare orjson loop | end to end {vs_orjson:.2f} x ({fmt(scan_pick[1])} vs "
            f"{fmt(orjson_pick[1])} records/s){steady_text} | {mark(vs_orjson >= 3)} end to end |"
        )
    else:
        yield "| scan >= 3 x a bare orjson loop | no scan.json yet | not measured |"
    by_rate = {r["target_rate"]: r for r in lat["rates"]} if lat else {}
    for target, limit in ((5000.0, 50.0), (50000.0, 100.0)):
        row = by_rate.get(target)
        if row is None:
            yield f"| p99 <= {limit:.0f} ms at {target:,.0f}/s, no alert lost | - | not measured |"
            continue
        p99 = row["latency_ms"]["p99"]
        achieved = row["achieved_rate"]
        short = achieved < 0.95 * target
        note = f" (only {fmt(achieved)}/s achieved)" if short else ""
        ok = p99 <= limit and row["alerts_lost"] == 0 and not short
        yield (
            f"| p99 <= {limit:.0f} ms at {target:,.0f}/s, no alert lost | p99 {p99:.1f} ms{note}, "
            f"{row['alerts_lost']} of {row['positives']} lost | {mark(ok)} |"
        )
    if mem:
        g, mx = mem["growth"], mem["rss_mb"]["max"]
        at = f" ({mem['run_seconds'] / 60:.0f} min at {fmt(mem['achieved_rate'])}/s)"
        yield f"| worker RSS growth < 10% over the steady run | {g:.1%}{at} | {mark(g < 0.10)} |"
        yield f"| worker RSS < 250 MB | max {mx:.0f} MB{at} | {mark(mx < 250)} |"
    else:
        yield "| worker RSS growth < 10%, < 250 MB | - | not measured |"
    yield ""

    # throughput
    yield "## Stream throughput: worker vs bare consumer vs plain Faust\n"
    if tput:
        c = tput["corpus"]
        yield (
            f"{fmt(c['records'])} records ({c['bytes'] / c['records']:,.0f} B mean, {c['positives']} NetSupport "
            f"positives; tools/synth.py's mix of 8 sources) pre-loaded on {c['topics']} topics x "
            f"{c['partitions_per_topic']} partitions, uncompressed. Each consumer reads them with a fresh consumer "
            "group, one after the other in the same run, timed from its first record to its last; CPU is the "
            "process's user+system time over the same span (all its threads; for the worker, both its processes). "
            "The bare loop uses the worker's read-ahead settings (`CONSUMER_FETCH` in detector/stream/ingest.py), "
            "with a queue of at least 32 MiB.\n"
        )
        yield "| consumer | records | s | records/s | / bare | CPU s | CPU µs/record | records per CPU-s / bare |"
        yield "|---|---:|---:|---:|---:|---:|---:|---:|"
        for r in tput["consumers"].values():
            yield (
                f"| {r['name']} | {fmt(r['records'])} | {r['seconds']:.1f} | {fmt(r['records_per_s'])} | "
                f"{r['ratio_to_bare']:.2f} | {r['cpu_seconds']:.1f} | {r['cpu_us_per_record']:.1f} | "
                f"{r['ratio_to_bare_per_cpu_s']:.2f} |"
            )
        cons = tput["consumers"]
        yield ""
        if all("cores" in cons.get(k, {}) for k in ("bare", "worker")):
            w, b = cons["worker"]["cores"], cons["bare"]["cores"]
            app, ingest = w["faust_app"], w.get("ingest", 0.0)
            yield (
                "Who used the two cores while each drained (CPU-seconds per second, from /proc): the bare loop "
                f"{b['consumer']:.2f} with the machine {b['machine_busy']:.2f} busy; the worker's ingest process "
                f"{ingest:.2f} and its Faust app {app:.2f} (publishing {fmt(cons['worker']['alerts_matched'])} "
                f"alerts), with the machine {w['machine_busy']:.2f} busy (the rest, "
                f"{w['machine_busy'] - app - ingest:.2f}, is in effect the broker).\n"
            )
        if len(tput.get("rounds", [])) > 1:
            per = "; ".join(
                f"{fmt(r['bare']['records_per_s'])} / {fmt(r['worker']['records_per_s'])}" for r in tput["rounds"]
            )
            yield (
                f"Bare loop and worker alternated for {len(tput['rounds'])} rounds, each keeping its best "
                f"(records/s, bare / worker, per round: {per}).\n"
            )
        if "bare" in cons and cons["bare"].get("passes", 1) > 1:
            yield (
                f"The bare loop drains the topics in a few seconds, so it passed over them {cons['bare']['passes']} "
                "times (a new group each time) to be timed for at least 10 s.\n"
            )
        if "faust" in cons:
            ratio = cons["worker"]["records_per_s"] / cons["faust"]["records_per_s"]
            cpu_ratio = cons["faust"]["cpu_us_per_record"] / cons["worker"]["cpu_us_per_record"]
            yield (
                f"The plain Faust agent (`bench/plain_faust.py`: a Faust stream over the same topics, Engine.process "
                f"per record, dead letters and matches sent with Faust) was timed over its first "
                f"{fmt(cons['faust']['records'])} records. The worker is **{ratio:.1f}x** faster and spends "
                f"{cpu_ratio:.1f}x less CPU per record: the number behind the choice of a batched confluent-kafka "
                "ingest loop over a Faust agent per raw record.\n"
            )
        plot_throughput(tput, out_dir / "stream_throughput.png")
        yield f"![throughput]({rel}/stream_throughput.png)\n"
    else:
        yield "No result yet (`make bench-stream`).\n"

    # latency
    yield "## Stream latency: produce -> alert\n"
    if lat:
        yield (
            f"One worker; a paced producer ({lat['producer']}) writes the generator's mix to the eight topics at "
            f"each rate for {lat['seconds_per_rate']:g} s; some records are NetSupport positives whose command "
            "line carries their produce time; a reader in its own process takes the alerts off the alerts topic. "
            "The latency includes the producer's linger, the broker, the worker's batch, the matches topic, the "
            "Faust agent (prevalence, cap) and the alerts topic. Lost = positives whose alert never came (30 s "
            "grace after the window).\n"
        )
        yield (
            "| offered/s | achieved/s | window s | alerts | lost | dup | p50 ms | p95 ms | p99 ms | max ms | "
            "worker CPU |"
        )
        yield "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for r in lat["rates"]:
            q = r["latency_ms"]
            yield (
                f"| {fmt(r['target_rate'])} | {fmt(r['achieved_rate'])} | {r['window_s']:.1f} | "
                f"{r['alerts_received']}/{r['positives']} | {r['alerts_lost']} | {r['duplicates']} | "
                f"{q['p50']:.1f} | {q['p95']:.1f} | {q['p99']:.1f} | {q['max']:.1f} | {r['worker_cpu_share']:.0%} |"
            )
        yield ""
        if all("produce_to_evaluation_ms" in r for r in lat["rates"]):
            yield (
                "Where the time goes: each alert's `@timestamp` is when the ingest evaluated its record (ms "
                "precision), which splits the latency into produce -> evaluated (producer linger, broker, the "
                "ingest's fetch and batch) and evaluated -> alert read (the match produced, the matches topic, the "
                "Faust agent: prevalence row, enrichment and cap in one step, the alert sent and acknowledged, the "
                "alerts topic, the reader).\n"
            )
            yield from split_table(
                lat["rates"],
                ("produce -> evaluated", "produce_to_evaluation_ms"),
                ("evaluated -> alert read", "evaluation_to_alert_ms"),
            )
        if all("produce_to_broker_ack_ms" in r for r in lat["rates"]):
            yield (
                "Split at the broker's acknowledgement of each positive (librdkafka's delivery latency, its own "
                "clock): before it, the load generator and the broker, which share the two cores with the worker; "
                "after it, the worker's pipeline and the reader. The record is readable from its append, a little "
                "before the acknowledgement reaches the producer, so the second column slightly understates "
                "the worker's share.\n"
            )
            yield from split_table(
                lat["rates"],
                ("produce -> acknowledged", "produce_to_broker_ack_ms"),
                ("acknowledged -> alert read", "broker_ack_to_alert_ms"),
            )
        if all("machine_cores" in r for r in lat["rates"]):
            yield (
                "Who used the two cores in each window (CPU-seconds per second, from /proc): the worker's processes, "
                "the paced producer (the bench's own process: lz4 and the librdkafka client), the alert reader, and "
                "the rest: the broker and whatever else ran on the shared machine; stolen is time the hypervisor "
                "gave to other guests.\n"
            )
            yield "| offered/s | busy | worker | producer | reader | the rest | stolen |"
            yield "|---:|---:|---:|---:|---:|---:|---:|"
            for r in lat["rates"]:
                c = r["machine_cores"]
                shares = " | ".join(f"{c[k]:.2f}" for k in ("busy", "worker", "producer", "reader", "rest", "stolen"))
                yield f"| {fmt(r['target_rate'])} | {shares} |"
            yield ""
        if all(r.get("hops_ms") for r in lat["rates"]):
            names = list(lat["rates"][0]["hops_ms"])
            yield (
                "The part after evaluation, hop by hop, from the Kafka timestamps (CreateTime, ms) of the message "
                "the ingest produced on the matches topic and of the alert the agent published:\n"
            )
            yield "| offered/s | " + " | ".join(f"{n} p50 / p99 ms" for n in names) + " |"
            yield "|---:|" + "---:|" * len(names)
            for r in lat["rates"]:
                cells = [f"{r['hops_ms'][n]['p50']:.1f} / {r['hops_ms'][n]['p99']:.1f}" for n in names]
                yield f"| {fmt(r['target_rate'])} | " + " | ".join(cells) + " |"
            yield ""
        for r in lat["rates"]:
            if r["achieved_rate"] >= 0.95 * r["target_rate"] and r["latency_ms"]["p50"] > 1000:
                yield (
                    f"At {fmt(r['target_rate'])}/s offered ({fmt(r['achieved_rate'])}/s achieved) the worker, given "
                    "what the producer and the broker left of the two shared cores, did not keep up within the "
                    "window: its lag grew, and these latencies are mostly that queue (see produce -> evaluated).\n"
                )
        short = [r for r in lat["rates"] if r["achieved_rate"] < 0.95 * r["target_rate"]]
        for r in short:
            yield (
                f"At {fmt(r['target_rate'])}/s offered the producer (one Python process on the same 2 cores) "
                f"achieved {fmt(r['achieved_rate'])}/s: that rate is not sustainable on this machine with the "
                "producer, broker and worker sharing two cores; the row is what was achieved, not the target."
                + (
                    " The worker, given what the producer and broker left of the two cores, did not keep up even "
                    "with the achieved rate: its lag grew through the window, and these latencies are mostly that "
                    "queue (see the produce -> evaluated column)."
                    if r["latency_ms"]["p50"] > 1000
                    else ""
                )
                + "\n"
            )
        plot_latency(lat, out_dir / "stream_latency_cdf.png")
        yield f"![latency CDF]({rel}/stream_latency_cdf.png)\n"
    else:
        yield "No result yet (`make bench-stream`).\n"

    # memory
    yield "## Worker memory over a steady run\n"
    if mem:
        runs = [mem, *extra_mem]
        yield (
            f"The targets are judged on the first row: {mem['run_seconds'] / 60:.0f} minute(s) at "
            f"{fmt(mem['offered_rate'])} records/s offered"
            + (
                " (50,000/s is the target rate, reached here)."
                if mem["offered_rate"] >= 50000 and mem["kept_up"]
                else ", not the 50,000/s of the target: this machine does not sustain 50,000/s with the producer, the "
                "broker and the worker on its two shared cores (see the other rows)."
            )
            + (f" {mem['note']}" if mem.get("note") else "")
            + " The paced producer writes the generator's mix (0.1% positives); the worker's VmRSS is read every "
            f"second; warm-up = the first {mem['warmup_seconds']:.0f} s; growth = final vs warm-up RSS. Lag = "
            "records produced - consumed, sampled every 5 s; kept up = lag never above 5 s of input.\n"
        )
        yield (
            "| minutes | offered/s | achieved/s | worker consumed/s | kept up | max lag | RSS at ready | warm-up RSS "
            "| final RSS | max RSS | growth |"
        )
        yield "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
        for m in runs:
            rss = m["rss_mb"]
            yield (
                f"| {m['run_seconds'] / 60:.1f} | {fmt(m['offered_rate'])} | {fmt(m['achieved_rate'])} | "
                f"{fmt(m['worker_consumed_rate'])} | {'yes' if m['kept_up'] else 'no'} | "
                f"{fmt(m.get('max_lag_records', 0))} | {rss['at_ready']:.0f} MB | {rss['warmup']:.0f} MB | "
                f"{rss['final']:.0f} MB | {rss['max']:.0f} MB | {m['growth']:.1%} |"
            )
        yield ""
        queue_mib = CONSUMER_FETCH["queued.max.messages.kbytes"] // 1024
        fetch_mib = CONSUMER_FETCH["fetch.max.bytes"] // (1024 * 1024)
        yield (
            "The RSS is the worker's processes together: the Faust app, the ingest process and multiprocessing's "
            f"resource tracker (about 12 MB). The ingest consumer reads ahead at most {queue_mib} MiB "
            f"(`queued.max.messages.kbytes`, fetches of at most {fetch_mib} MiB; detector/stream/ingest.py), so a lag "
            "spike costs about that much more, once: glibc keeps the freed buffers, and RSS stays at the high-water "
            "mark (a step, then flat). With the 256 MiB this project used before, RSS rose in steps at each spike.\n"
        )
        if any(m["rss_mb"]["max"] >= 250 for m in runs):
            yield "Some run went over 250 MB: see its row and the plot.\n"
        plot_rss(runs, out_dir / "stream_memory_rss.png")
        yield f"![RSS]({rel}/stream_memory_rss.png)\n"
    else:
        yield "No result yet (`make bench-memory`).\n"

    yield "## Alert storm: alerts/s one worker publishes\n"
    if storm:
        b = storm["best"]
        per = "; ".join(f"{fmt(r['alerts_per_s'])}/s at {r['cpu_ms_per_alert']:.2f} ms" for r in storm["rounds"])
        yield (
            f"The matches topic pre-loaded with {fmt(b['matches_messages'])} messages as the ingest loop writes them "
            f"(one alert each, {fmt(b['mean_message_bytes'])} B mean), then one worker, cap off, timed from its "
            "first alert to the last: the Faust agent's pace, which sets a worker's in a storm (a tool pushed to the "
            f"whole fleet at once). Best of {len(storm['rounds'])} rounds: **{fmt(b['alerts_per_s'])} alerts/s**, "
            f"{b['cpu_ms_per_alert']:.2f} ms of the Faust app's CPU per alert ({b['faust_app_cores']:.2f} cores; "
            f"rounds: {per}).\n"
        )
    else:
        yield "No result yet (`python -m bench.alert_storm`).\n"

    # scan
    yield "## Scan (files): detector scan vs orjson vs the eql package\n"
    if scan and rates:
        per_cpu = {
            str(k): v.get("records_per_cpu_s")
            for k, v in (scan.get("results") or {}).items()
            if isinstance(v, dict) and _is_number(v.get("records_per_cpu_s"))
        }
        yield "| | records/s | records per CPU-s |\n|---|---:|---:|"
        for name, rate in rates.items():
            cpu = per_cpu.get(name)
            yield f"| {name} | {fmt(rate)} | {fmt(cpu) if cpu else '-'} |"
        yield ""
        ratios = {k: v for k, v in (scan.get("ratios") or {}).items() if _is_number(v)}
        if ratios:
            yield "Ratios (same run): " + "; ".join(f"{k} = {v:.3g}" for k, v in ratios.items()) + ".\n"
        plot_scan(rates, out_dir / "scan.png")
        yield f"![scan]({rel}/scan.png)\n"
    elif scan:
        yield "bench/results/scan.json is there but holds no records/s figure this report can read.\n"
    else:
        yield "No `bench/results/scan.json` yet (`make bench`, bench/scan_throughput.py).\n"

    yield from comparison(tput, lat, rates)


def comparison(tput: dict[str, Any] | None, lat: dict[str, Any] | None, rates: dict[str, float]) -> Iterator[str]:
    yield "## Compared with\n"
    p99s = {r["target_rate"]: r["latency_ms"]["p99"] for r in lat["rates"]} if lat else {}
    worst = max(p99s.values()) / 1000 if p99s else None
    yield (
        "**Elastic's scheduled rule.** The prebuilt rule runs every 5 minutes over a 9-minute look-back "
        f'(`interval = "5m"`, `from = "now-9m"`). An execution is found by the first run after its event is '
        f"searchable: on average ~{ELASTIC_INTERVAL_S / 120:g} min, at worst ~{ELASTIC_INTERVAL_S / 60:g} min, "
        "plus the ingest delay (shipper, pipeline, index refresh). The look-back's extra 4 minutes absorb "
        "late events up to that age; a later event is missed unless the run is widened."
        + (
            f" Here the worst p99 across the measured rates was {worst:.2f} s from produce to alert, "
            f"~{ELASTIC_INTERVAL_S / worst:,.0f}x under the scheduled rule's worst-case interval alone."
            if worst
            else ""
        )
        + "\n"
    )
    eql_pipe = _pick(rates, "eql", "pipeline") or _pick(rates, "eql", avoid=("alone",))
    scan_pick = _pick(rates, "scan", "cli") or _pick(rates, "scan")
    if eql_pipe and scan_pick:
        yield (
            f"**The eql package** (Elastic's Python EQL, the obvious Python baseline): the same query through "
            f"parse + normalise + eql 1.0.1's PythonEngine ran at {fmt(eql_pipe[1])} records/s against "
            f"detector scan's {fmt(scan_pick[1])} (from scan.json, {scan_pick[1] / eql_pipe[1]:.1f}x).\n"
        )
    else:
        yield "**The eql package**: no scan.json yet, so no figure here (see `make bench`).\n"
    if tput and "faust" in tput["consumers"]:
        f, w = tput["consumers"]["faust"], tput["consumers"]["worker"]
        yield (
            f"**A plain Faust agent** per raw record: {fmt(f['records_per_s'])} records/s, "
            f"{f['cpu_us_per_record']:.0f} µs CPU per record, against the worker's {fmt(w['records_per_s'])} "
            f"and {w['cpu_us_per_record']:.1f} µs (same topics, same run).\n"
        )
    else:
        yield "**A plain Faust agent**: not measured in the latest throughput run.\n"
    worker_line = ""
    if tput:
        w = tput["consumers"]["worker"]
        worker_line = (
            f" Our worker, for scale: {fmt(w['records_per_s'])} records/s from one worker (two processes), "
            f"{fmt(w['records_per_cpu_s'])} records per CPU-second, on "
            f"{tput['corpus']['bytes'] / tput['corpus']['records'] / 1000:.1f} KB multi-vendor records and a rule "
            "that normalises eight schemas."
        )
    yield (
        "**Confluent Sigma (sigma-streams, Kafka Streams).** Confluent's published results for release 1.3.0 "
        f"([sigma-streams/test/results/README.md]({CONFLUENT_URL})): Confluent Cloud basic cluster, the streams "
        "app on one m4.2xlarge (8 vCPU, 32 GB), zeek DNS data of 9 unique records (~37 B each by their bytes/s "
        "over records/s), 50 partitions, Snappy. One rule, single-field exact match, 50 threads: 447,868 "
        "records/s average at ~795% CPU (~56,000 records/s per busy core); one regex rule: 414,698 records/s; "
        "100 single-field rules: 42,009 records/s; their baseline kafka-consumer-perf-test (5 threads) 1.2M "
        "records/s, so the one-rule app reached ~0.37 of their consumer ceiling. An earlier run "
        f"([2022 results]({CONFLUENT_2022_URL})) gave 406k records/s consumed for the same one-rule case. "
        "They publish no produce-to-alert latency figure that we could find. Their records are ~70x smaller "
        "than ours and need no schema normalisation, and the hardware differs (8 vCPU, dedicated), so only "
        "the ratio to the consumer ceiling compares at all." + worker_line + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = ap.parse_args()
    results: Path = args.results
    tput, lat, mem, scan, storm = (
        load(results, n) for n in ("stream_throughput", "stream_latency", "stream_memory", "scan", "alert_storm")
    )
    out: Path = args.out
    try:
        rel = results.resolve().relative_to(out.resolve().parent).as_posix()
    except ValueError:
        rel = results.resolve().as_posix()
    extra_mem = [orjson.loads(p.read_bytes()) for p in sorted(results.glob("stream_memory_*.json"))]
    text = "\n".join(sections(results, rel, tput, lat, mem, scan, extra_mem, storm)).rstrip() + "\n"
    out.write_text(text)
    print(f"wrote {out} and plots under {results}")


if __name__ == "__main__":
    main()
