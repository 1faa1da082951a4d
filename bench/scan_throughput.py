"""`detector scan` throughput beside a bare orjson loop and the `eql` package, on the same lines, same run.

    .venv/bin/python -m bench.scan_throughput [--records 200000] [--repeat 3]

The corpus is a generated realistic mix: all eight sources, record sizes like the vendors' (1-3 KB),
about 0.1% NetSupport. Figures are the best of --repeat runs; compare the ratios, which are measured
minutes apart on the same machine, rather than the absolute numbers of a shared, noisy box.

- scan (CLI):   `detector scan FILE > /dev/null` as a subprocess, end to end (interpreter start included)
- scan (loop):  the same work in-process: iter_records + Engine.process
- orjson loop:  `for line in file: orjson.loads(line)`, nothing else
- eql pipeline: the scan a user would build on the eql package: per line orjson.loads, our normaliser,
                then eql 1.0.1's PythonEngine evaluating the same query (the target compares with this)
- eql alone:    eql's evaluation over the pre-normalised events (parsing and normalising not timed)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eql
import orjson

from detector.engine import Engine
from detector.inputs import iter_records
from detector.rules.model import load_rules
from detector.sources import normalize
from tools.synth import generate


def best(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--eql-records", type=int, default=50_000, help="lines given to eql (it is slow)")
    args = ap.parse_args()
    rules = load_rules()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.ndjson"
        n_alerts_expected = 0
        with path.open("wb") as f:
            for g in generate(args.records, seed=args.seed, netsupport_rate=0.001):
                f.write(g.raw + b"\n")
                n_alerts_expected += bool(g.expect_alert)
        size = path.stat().st_size
        print(
            f"corpus: {args.records:,} records, {size / 1e6:.0f} MB (mean {size / args.records:,.0f} B), "
            f"{n_alerts_expected} NetSupport positives",
            flush=True,
        )

        cli = [sys.executable, "-m", "detector.cli.main", "scan", "--no-progress", str(path)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

        def run_cli() -> None:
            subprocess.run(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)

        engine = Engine(rules)

        def run_loop() -> None:
            process = engine.process
            for _, data in iter_records(str(path)):
                process(data)

        def run_orjson() -> None:
            loads = orjson.loads
            with path.open("rb") as fh:
                for line in fh:
                    loads(line)

        t_orjson = best(args.repeat, run_orjson)
        t_loop = best(args.repeat, run_loop)
        t_cli = best(args.repeat, run_cli)

        with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
            query = eql.parse_query(rules[0].query)
        lines = [data for _, data in iter_records(str(path))][: args.eql_records]

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

        t_eql_pipeline = best(args.repeat, eql_pipeline)
        t_eql_alone = best(args.repeat, eql_alone)

    rate = {
        "detector scan (CLI, end to end)": args.records / t_cli,
        "detector scan (in-process loop)": args.records / t_loop,
        "bare orjson.loads loop": args.records / t_orjson,
        "eql pipeline (parse+normalise+eql)": len(lines) / t_eql_pipeline,
        "eql alone (evaluation only)": len(lines) / t_eql_alone,
    }
    print(f"\n{'':34}{'records/s':>14}")
    for name, r in rate.items():
        print(f"{name:34}{r:>14,.0f}")
    cli_rate = rate["detector scan (CLI, end to end)"]
    vs_orjson = cli_rate / rate["bare orjson.loads loop"]
    vs_eql = cli_rate / rate["eql pipeline (parse+normalise+eql)"]
    print(f"\nscan / orjson = {vs_orjson:.2f}  (target >= 1.0: {'met' if vs_orjson >= 1.0 else 'NOT met'})")
    print(f"scan / eql pipeline = {vs_eql:.1f}  (target >= 5: {'met' if vs_eql >= 5 else 'NOT met'})")
    alone = cli_rate / rate["eql alone (evaluation only)"]
    print(f"scan / eql alone    = {alone:.1f}  (eql given pre-normalised events for free)")


if __name__ == "__main__":
    main()
