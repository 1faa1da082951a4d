"""`detector scan` throughput beside a bare orjson loop, `grep -ci client32` and the `eql` package, same file, same run.

    .venv/bin/python -m bench.scan_throughput [--records 200000] [--window 10] [--out bench/results/scan.json]

The corpus is a generated realistic mix (tools/synth.py generate): all eight sources, record sizes like the
vendors' (1.5-5 KB), about 0.1% NetSupport. Every figure is a timed window of at least --window seconds: the
measurement is repeated until its runs add up to the window, and records/s is records x runs / seconds. The
measurements take turns (one run of each per round) so that a noisy, shared machine slows them alike; compare
the ratios, not the absolute numbers.

- detector scan:          `detector scan FILE > /dev/null` as a subprocess, end to end (interpreter start included)
- detector scan --jobs 2: the same with two processes (the file is cut at line boundaries)
- detector scan start-up: the same command on a one-line file: the interpreter, the imports, loading the rules
                          and the source mappings, compiling the prefilter (a fixed cost per invocation; the
                          "excluding start-up" figures subtract its mean from the mean scan run)
- orjson loop:            `for line in file: orjson.loads(line)`, nothing else (in-process)
- grep -ci client32:      the byte-scan limit: reads every byte once for the needle, parses nothing (subprocess)
- eql pipeline:           the scan a user would build on the eql package: per line orjson.loads, our normaliser,
                          then eql 1.0.1's PythonEngine evaluating the same query (on the first --eql-records lines)
- eql alone:              eql's evaluation over the pre-normalised events (parsing and normalising not timed)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import eql
import orjson

from bench._kafka import machine_facts
from detector.inputs import iter_records
from detector.rules.model import load_rules
from detector.sources import normalize
from tools.synth import generate

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    """CPU seconds used so far by this process and its waited-for children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def windows(measures: dict[str, tuple[int, Callable[[], Any]]], window: float) -> dict[str, dict[str, float]]:
    """Run each measure in turn until each has run for at least `window` seconds; records/s of each.

    Also the records per CPU second (this process and its children): on a shared machine the wall-clock rate
    depends on the neighbours, the CPU rate much less (it does not show --jobs' parallelism, the wall rate does).
    """
    spent = dict.fromkeys(measures, 0.0)
    cpu = dict.fromkeys(measures, 0.0)
    runs = dict.fromkeys(measures, 0)
    while min(spent.values()) < window:
        for name, (_, fn) in measures.items():
            if spent[name] >= window:
                continue
            c, t = _cpu(), time.perf_counter()
            fn()
            spent[name] += time.perf_counter() - t
            cpu[name] += _cpu() - c
            runs[name] += 1
    return {
        name: {
            "records_per_s": records * runs[name] / spent[name],
            "records_per_cpu_s": records * runs[name] / cpu[name],
            "runs": runs[name],
            "seconds": spent[name],
            "cpu_seconds": cpu[name],
            "records_per_run": records,
        }
        for name, (records, _) in measures.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window", type=float, default=10.0, help="seconds of timed runs per figure (default 10)")
    ap.add_argument("--eql-records", type=int, default=20_000, help="lines given to eql (it is slow)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scan.json"), help="JSON results ('' for none)")
    args = ap.parse_args()
    rules = load_rules()
    facts = machine_facts()  # at the start: its load average is the one before the run

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.ndjson"
        positives = 0
        with path.open("wb") as f:
            for g in generate(args.records, seed=args.seed, netsupport_rate=0.001):
                f.write(g.raw + b"\n")
                positives += bool(g.expect_alert)
        size = path.stat().st_size
        print(
            f"corpus: {args.records:,} records, {size / 1e6:.0f} MB (mean {size / args.records:,.0f} B), "
            f"{positives} NetSupport positives; windows of {args.window:g} s",
            flush=True,
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        scan = [sys.executable, "-m", "detector.cli.main", "scan", "--no-progress", str(path)]
        alerts = subprocess.run(scan, capture_output=True, check=True, env=env).stdout.count(b"\n")
        grep_count = int(subprocess.run(["grep", "-ci", "client32", str(path)], capture_output=True).stdout)
        one_line = Path(tmp) / "one.ndjson"
        one_line.write_bytes(path.open("rb").readline())
        startup_cmd = [*scan[:-1], str(one_line)]

        def run_startup() -> None:
            subprocess.run(startup_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)

        def cli(extra: list[str]) -> Callable[[], None]:
            def run() -> None:
                subprocess.run(scan + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)

            return run

        def run_grep() -> None:
            # Into a pipe: GNU grep stops at the first match when its output is /dev/null.
            subprocess.run(["grep", "-ci", "client32", str(path)], capture_output=True, check=False)

        def run_orjson() -> None:
            loads = orjson.loads
            with path.open("rb") as fh:
                for line in fh:
                    loads(line)

        with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
            query = eql.parse_query(rules[0].query)
        lines = []
        for _, data in iter_records(str(path)):
            lines.append(data)
            if len(lines) == args.eql_records:
                break

        def to_eql(ev: dict[str, Any]) -> eql.Event:
            category = ev.get("event", {}).get("category") or ["unknown"]
            return eql.Event(category[0] if isinstance(category, list) else category, 0, ev)

        def eql_pipeline() -> None:
            e = eql.PythonEngine()
            e.add_query(query)
            e.stream_events(to_eql(ev) for line in lines for ev in normalize(orjson.loads(line))[1])

        events = [to_eql(ev) for line in lines for ev in normalize(orjson.loads(line))[1]]

        def eql_alone() -> None:
            e = eql.PythonEngine()
            e.add_query(query)
            e.stream_events(events)

        n = args.records
        results = windows(
            {
                "detector scan": (n, cli([])),
                "detector scan --jobs 2": (n, cli(["--jobs", "2"])),
                "detector scan start-up": (1, run_startup),
                "bare orjson.loads loop": (n, run_orjson),
                "grep -ci client32": (n, run_grep),
                "eql pipeline (parse+normalise+eql)": (len(lines), eql_pipeline),
                "eql alone (evaluation only)": (len(lines), eql_alone),
            },
            args.window,
        )

    # The scan's fixed cost per invocation, taken out: what the scan sustains over a file large enough to hide it.
    # (Kept apart from `results`, whose entries are all rates.)
    up = results.pop("detector scan start-up")
    startup = {"seconds_per_run": up["seconds"] / up["runs"], "runs": up["runs"], "seconds": up["seconds"]}
    startup_s = startup["seconds_per_run"]
    excluding = {
        f"{name} excluding start-up": {
            "records_per_s": results[name]["records_per_run"]
            / (results[name]["seconds"] / results[name]["runs"] - startup_s)
        }
        for name in ("detector scan", "detector scan --jobs 2")
    }
    rate = {name: r["records_per_s"] for name, r in results.items()}
    print(f"\n{'':36}{'records/s':>12}{'runs':>6}{'seconds':>9}{'records/CPU s':>15}")
    for name, r in results.items():
        print(
            f"{name:36}{r['records_per_s']:>12,.0f}{r['runs']:>6}{r['seconds']:>9.1f}{r['records_per_cpu_s']:>15,.0f}"
        )
    for name, r in excluding.items():
        print(f"{name:36}{r['records_per_s']:>12,.0f}")
    print(f"{'detector scan start-up':36}{startup_s * 1000:>9.0f} ms{startup['runs']:>6}{startup['seconds']:>9.1f}")
    one, two = rate["detector scan"], rate["detector scan --jobs 2"]
    steady = excluding["detector scan excluding start-up"]["records_per_s"]
    ratios = {
        "scan / orjson loop": one / rate["bare orjson.loads loop"],
        "scan excluding start-up / orjson loop": steady / rate["bare orjson.loads loop"],
        "scan / grep -ci": one / rate["grep -ci client32"],
        "scan --jobs 2 / orjson loop": two / rate["bare orjson.loads loop"],
        "scan --jobs 2 / scan": two / one,
        "scan / eql pipeline": one / rate["eql pipeline (parse+normalise+eql)"],
        "scan / eql alone": one / rate["eql alone (evaluation only)"],
    }
    cpu = {name: r["records_per_cpu_s"] for name, r in results.items()}
    cpu_ratios = {
        "scan / orjson loop": cpu["detector scan"] / cpu["bare orjson.loads loop"],
        "scan / grep -ci": cpu["detector scan"] / cpu["grep -ci client32"],
    }
    print(f"\n{'ratios':36}{'wall':>12}{'CPU':>21}")
    for name, value in ratios.items():
        by_cpu = f"{cpu_ratios[name]:>21.2f}" if name in cpu_ratios else ""
        print(f"{name:36}{value:>12.2f}{by_cpu}")
    print(f"\nalerts written by the scan: {alerts} (generated positives {positives}; grep -ci lines: {grep_count})")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": "python -m bench.scan_throughput " + " ".join(sys.argv[1:]),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {**facts, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
            "corpus": {"records": args.records, "bytes": size, "seed": args.seed, "positives": positives},
            "window_s": args.window,
            "alerts": alerts,
            "results": results,
            "startup": startup,
            "excluding_startup": excluding,
            "ratios": ratios,
            "ratios_by_cpu_time": cpu_ratios,
        }
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"written: {out}")


if __name__ == "__main__":
    main()
