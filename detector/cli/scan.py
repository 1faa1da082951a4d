"""`detector scan` (hunt and backfill over files) and `detector normalize` (show the ECS events)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from detector.cli.common import add_rule_option, add_source_option, rules_from_args
from detector.engine import DEFAULT_MAX_RECORD_BYTES, Engine
from detector.inputs import check_readable, display_name, iter_records

MAX_EXAMPLES = 5  # line references shown per rejection reason


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="run the rules over files (NDJSON, .gz, JSON arrays, - for stdin); alerts as NDJSON on stdout",
        description=(
            "Hunt and backfill: run the rules over raw vendor records in files. Alerts go to stdout as NDJSON "
            "(Elastic Security alert documents); a summary goes to stderr. Bad records are counted and "
            "reported with their line numbers; they never stop the run. Exit status 0 when the run completed."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input file: NDJSON, gzipped NDJSON, JSON array, or -")
    add_source_option(p)
    add_rule_option(p)
    _add_engine_options(p)
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON to PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even when stderr is a terminal")
    p.set_defaults(func=run_scan)


def register_normalize(sub: Any) -> None:
    p = sub.add_parser(
        "normalize",
        help="print the ECS events each record normalises to, as NDJSON",
        description="Normalise raw vendor records to ECS and print the events as NDJSON (no rule is applied).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input file: NDJSON, gzipped NDJSON, JSON array, or -")
    add_source_option(p)
    p.add_argument(
        "--max-record-bytes", type=int, default=DEFAULT_MAX_RECORD_BYTES, help="reject larger records (default 1 MiB)"
    )
    p.set_defaults(func=run_normalize)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-prefilter",
        action="store_true",
        help="parse and validate every record instead of skipping, unparsed, those that cannot match "
        "(slower; gives per-source counts and rejections for every record)",
    )
    p.add_argument(
        "--max-record-bytes",
        type=int,
        default=DEFAULT_MAX_RECORD_BYTES,
        metavar="N",
        help="reject records larger than N bytes (default 1 MiB)",
    )


@dataclass
class Summary:
    records: int = 0
    prefiltered: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def reject(self, reason: str, where: str) -> None:
        self.rejected[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(where)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "prefiltered": self.prefiltered,
            "by_source": dict(self.by_source),
            "alerts": sum(self.alerts_by_rule.values()),
            "alerts_by_rule": dict(self.alerts_by_rule),
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "rejected_examples": self.examples,
            "seconds": round(self.seconds, 3),
        }

    def render(self, pinned_source: str | None, verb: str = "scanned", alerts: bool = True) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{verb} {self.records:,} records in {self.seconds:.2f} s ({rate:,.0f} records/s)"]
        if self.prefiltered:
            lines.append(f"  skipped by the prefilter (cannot match, not parsed): {self.prefiltered:,}")
        label = "by source" if pinned_source or not self.prefiltered else "by source (parsed records)"
        by_source = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_source.items())) or "-"
        lines.append(f"  {label}: {by_source}")
        if alerts:
            lines.append(f"  alerts: {sum(self.alerts_by_rule.values()):,}")
            for name, n in sorted(self.alerts_by_rule.items()):
                lines.append(f"    {name}: {n:,}")
        lines.append(f"  rejected: {sum(self.rejected.values()):,}")
        for reason, n in sorted(self.rejected.items()):
            shown = self.examples.get(reason, [])
            more = f" and {n - len(shown)} more" if n > len(shown) else ""
            lines.append(f"    {reason}: {n:,} ({'; '.join(shown)}{more})")
        return "\n".join(lines)


def _progress_bar(files: list[str], disabled: bool) -> tqdm[Any] | None:
    if disabled or not sys.stderr.isatty():
        return None
    total = sum(Path(f).stat().st_size for f in files if f != "-") or None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc="scan")


def run_scan(args: argparse.Namespace) -> int:
    check_readable(args.files)
    rules = rules_from_args(args)
    engine = Engine(rules, use_prefilter=not args.no_prefilter, max_record_bytes=args.max_record_bytes)
    names = {r.rule_id: r.name for r in rules}
    summary = Summary()
    write = sys.stdout.buffer.write
    bar = _progress_bar(args.files, args.no_progress)
    started = time.perf_counter()
    process = engine.process
    source = args.source
    try:
        for path in args.files:
            name = display_name(path)
            for lineno, data in iter_records(path, None if bar is None else bar.update):
                summary.records += 1
                out = process(data, source)
                if out.prefiltered:
                    summary.prefiltered += 1
                    if source:
                        summary.by_source[source] += 1
                    continue
                if out.rejection is not None:
                    summary.reject(out.rejection.reason, f"{name}:{lineno}: {out.rejection.detail}")
                    continue
                summary.by_source[out.source or "?"] += 1
                for alert in out.alerts:
                    summary.alerts_by_rule[names[alert["kibana.alert.rule.rule_id"]]] += 1
                    write(orjson.dumps(alert) + b"\n")
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - started
        sys.stdout.flush()
    print(summary.render(source), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_bytes(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    return 0


def run_normalize(args: argparse.Namespace) -> int:
    check_readable(args.files)
    # Normalising needs no rule, but the engine's parse/reject path is the one way records are read.
    from detector.rules.model import load_rules

    engine = Engine(load_rules(), use_prefilter=False, max_record_bytes=args.max_record_bytes)
    summary = Summary()
    write = sys.stdout.buffer.write
    started = time.perf_counter()
    for path in args.files:
        name = display_name(path)
        for lineno, data in iter_records(path):
            summary.records += 1
            out = engine.process(data, args.source, keep_events=True)
            if out.rejection is not None:
                summary.reject(out.rejection.reason, f"{name}:{lineno}: {out.rejection.detail}")
                continue
            summary.by_source[out.source or "?"] += 1
            for event in out.events:
                write(orjson.dumps(event) + b"\n")
    summary.seconds = time.perf_counter() - started
    sys.stdout.flush()
    print(summary.render(args.source, verb="normalised", alerts=False), file=sys.stderr)
    return 0
