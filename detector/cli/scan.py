"""`detector scan` (hunt and backfill over files) and `detector normalize` (show the ECS events).

The scan reads NDJSON a chunk at a time (detector/inputs.py `iter_blocks`): the prefilter looks once
over each megabyte (detector/engine.py `Engine.select`), lines are counted with `find`, and only the lines
holding a match or not framed like a JSON object are cut out and given to `Engine.process`. Every other line
is one `process` would skip unparsed, so the output and the summary are those of the plain per-line loop
(`FAST_PATH = False`, also used with `--no-prefilter`); tests/test_scan_fast.py proves it differentially.

`--jobs N` scans in N processes: each file is a task, and an uncompressed NDJSON file is cut at line
boundaries into several (inputs.ndjson_spans). A task returns, in order, the outcomes worth keeping (alerts,
rejections, malformed values, candidates) and counts for the rest; the parent applies them in input order,
so suppression, fleet prevalence, alert order and the summary are those of `--jobs 1`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from detector.cli.common import (
    EXIT_DAMAGED,
    EXIT_OK,
    EXIT_STATUS_HELP,
    INPUT_HELP,
    OutputFile,
    UsageError,
    add_rule_option,
    add_source_option,
    add_suppression_options,
    apply_source_options,
    rules_from_args,
    say,
    stdout_binary,
)
from detector.engine import DEFAULT_MAX_RECORD_BYTES, TOO_LARGE, Engine, Outcome
from detector.inputs import (
    Block,
    InputError,
    Line,
    OnOversized,
    check_readable,
    display_name,
    iter_blocks,
    iter_records,
    iter_span,
    ndjson_spans,
)
from detector.prevalence import DEFAULT_HORIZON_S, ScanPrevalence
from detector.rules.exceptions import ExceptionLists, ExceptionsError, load_exceptions
from detector.rules.model import duration_seconds
from detector.stream.suppress import DOCS_COUNT, InMemory

if TYPE_CHECKING:
    from tqdm import tqdm

MAX_EXAMPLES = 5  # line references shown per rejection reason
# The buffer-at-a-time path; False gives the plain per-line loop (the reference the fast path is tested against).
FAST_PATH = True


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="run the rules over files (NDJSON, .gz, JSON arrays, - for stdin); alerts as NDJSON on stdout",
        description=(
            "Hunt and backfill: run the rules over raw vendor records in files. Alerts go to stdout as NDJSON "
            "(Elastic Security alert documents); a summary goes to stderr. Bad records are counted and "
            "reported with their line numbers; they never stop the run, and neither does a damaged file."
        ),
        epilog=INPUT_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input file: NDJSON, gzipped NDJSON, JSON array, or -")
    add_source_option(p)
    add_rule_option(p)
    add_suppression_options(p)
    _add_engine_options(p)
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON to PATH")
    p.add_argument(
        "--exceptions",
        action="append",
        default=[],
        metavar="FILE",
        help="rule exceptions as Kibana exports them (NDJSON: the list, its items, the export details; repeatable): "
        "an alert an item matches is not written, and is counted per list and item in the summary",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar even when stderr is a terminal")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="scan in N processes: files in parallel, and a large uncompressed NDJSON file cut at line "
        "boundaries; output and summary are those of --jobs 1 (default 1; with - among the files, 1)",
    )
    p.add_argument(
        "--prevalence-horizon",
        type=duration_seconds,
        default=DEFAULT_HORIZON_S,
        metavar="DURATION",
        help="fleet prevalence forgets executions older than this before an executable's latest (default 30d)",
    )
    p.set_defaults(func=run_scan)


def register_normalize(sub: Any) -> None:
    p = sub.add_parser(
        "normalize",
        help="print the ECS events each record normalises to, as NDJSON",
        description="Normalise raw vendor records to ECS and print the events as NDJSON (no rule is applied).",
        epilog=INPUT_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input file: NDJSON, gzipped NDJSON, JSON array, or -")
    add_source_option(p)
    p.add_argument(
        "--max-record-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_RECORD_BYTES,
        metavar="N",
        help="reject records larger than N bytes (default 1 MiB)",
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
        type=_positive_int,
        default=DEFAULT_MAX_RECORD_BYTES,
        metavar="N",
        help="reject records larger than N bytes (default 1 MiB); larger ones are skipped without being read "
        "into memory",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def too_large_detail(size: int, limit: int) -> str:
    """The engine's own wording for a record over the limit, for those the reader skips before the engine."""
    return f"record is {size} bytes, over the {limit}-byte limit"


@dataclass
class Summary:
    records: int = 0
    prefiltered: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)  # one line per input that broke off part-way
    # Malformed values dropped from records that were still evaluated (Elastic's ignore_malformed), by field.
    ignored: Counter[str] = field(default_factory=Counter)
    ignored_records: int = 0
    ignored_examples: dict[str, list[str]] = field(default_factory=dict)
    # Alerts dropped by a rule exception, by (list_id, item_id).
    excluded: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Alert suppression: alerts counted into a group (by rule name), and updated group alerts written.
    suppressed: Counter[str] = field(default_factory=Counter)
    alert_updates: int = 0
    # Records their source recognised that yielded no event, by reason (detector/sources/no_event.py).
    no_event: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def reject(self, reason: str, where: str) -> None:
        self.rejected[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(where)

    def count(self, out: Outcome, name: str, number: int, pinned: str | None) -> bool:
        """Count one record's outcome; True when it was evaluated (its alerts or events are to be written)."""
        self.records += 1
        if out.prefiltered:
            self.prefiltered += 1
            if pinned:
                self.by_source[pinned] += 1
            return False
        if out.rejection is not None:
            self.reject(out.rejection.reason, f"{name}:{number}: {out.rejection.detail}")
            return False
        self.by_source[out.source or "?"] += 1
        if out.no_event is not None:
            self.no_event[out.no_event] += 1
        if out.ignored:
            self.dropped(out.ignored, f"{name}:{number}")
        return True

    def skipped(self, n: int, pinned: str | None) -> None:
        """Count n records the prefilter skips (what `count` does for n prefiltered outcomes)."""
        if n:
            self.records += n
            self.prefiltered += n
            if pinned:
                self.by_source[pinned] += n

    def dropped(self, ignored: list[tuple[str, str]], where: str) -> None:
        self.ignored_records += 1
        for label, why in ignored:
            self.ignored[label] += 1
            ex = self.ignored_examples.setdefault(label, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append(f"{where}: {why}")

    def oversized(self, name: str, limit: int) -> OnOversized:
        """Counts a record the reader skipped for its size, as the engine would have rejected it."""

        def report(number: int, size: int) -> None:
            self.records += 1
            self.reject(TOO_LARGE, f"{name}:{number}: {too_large_detail(size, limit)}")

        return report

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "prefiltered": self.prefiltered,
            "by_source": dict(self.by_source),
            "alerts": sum(self.alerts_by_rule.values()),
            "alerts_by_rule": dict(self.alerts_by_rule),
            "suppressed": sum(self.suppressed.values()),
            "suppressed_by_rule": dict(self.suppressed),
            "alert_updates": self.alert_updates,
            "excluded": sum(self.excluded.values()),
            "excluded_by_item": [
                {"list_id": list_id, "item_id": item_id, "alerts": n}
                for (list_id, item_id), n in sorted(self.excluded.items())
            ],
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "rejected_examples": self.examples,
            "damaged_inputs": self.damaged,
            "malformed_values_dropped": sum(self.ignored.values()),
            "malformed_values_by_field": dict(self.ignored),
            "malformed_values_examples": self.ignored_examples,
            "records_with_malformed_values": self.ignored_records,
            "recognised_without_event": sum(self.no_event.values()),
            "recognised_without_event_by_reason": dict(self.no_event),
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
            if self.suppressed:
                lines.append(
                    f"  suppressed into an alert's group: {sum(self.suppressed.values()):,} "
                    f"({self.alert_updates:,} updated alert documents written, same ids)"
                )
                for name, n in sorted(self.suppressed.items()):
                    lines.append(f"    {name}: {n:,}")
            if self.excluded:
                lines.append(f"  excluded by rule exceptions (not written): {sum(self.excluded.values()):,}")
                for (list_id, item_id), n in sorted(self.excluded.items()):
                    lines.append(f"    {list_id} / {item_id}: {n:,}")
        if self.no_event:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(self.no_event.items()))
            lines.append(f"  recognised without an event: {sum(self.no_event.values()):,} ({reasons})")
        lines.append(f"  rejected: {sum(self.rejected.values()):,}")
        for reason, n in sorted(self.rejected.items()):
            shown = self.examples.get(reason, [])
            more = f" and {n - len(shown)} more" if n > len(shown) else ""
            lines.append(f"    {reason}: {n:,} ({'; '.join(shown)}{more})")
        if self.ignored:
            lines.append(
                f"  malformed values dropped, records still evaluated: {sum(self.ignored.values()):,} "
                f"in {self.ignored_records:,} records"
            )
            for label, n in sorted(self.ignored.items()):
                shown = self.ignored_examples.get(label, [])
                more = f" and {n - len(shown)} more" if n > len(shown) else ""
                lines.append(f"    {label}: {n:,} ({'; '.join(shown)}{more})")
        if self.damaged:
            lines.append(f"  damaged inputs: {len(self.damaged)} (read up to the damage; the other files in full)")
            lines.extend(f"    {line}" for line in self.damaged)
        return "\n".join(lines)


def _progress_bar(files: list[str], disabled: bool) -> tqdm[Any] | None:
    if disabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # here: its imports cost a scan without a terminal about 0.1 s of start-up

    total = sum(Path(f).stat().st_size for f in files if f != "-") or None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc="scan")


def _damaged_note(summary: Summary) -> str:
    n = len(summary.damaged)
    return f"detector: error: {n} input file{'s were' if n > 1 else ' was'} damaged (see the summary); exit status 1"


def exceptions_from_args(args: argparse.Namespace) -> ExceptionLists | None:
    if not args.exceptions:
        return None
    try:
        return load_exceptions(args.exceptions)
    except ExceptionsError as exc:
        raise UsageError(f"--exceptions {exc}") from None


def run_scan(args: argparse.Namespace) -> int:
    apply_source_options(args)
    check_readable(args.files)
    summary_file = OutputFile(args.summary_json, "--summary-json") if args.summary_json else None
    try:
        code, summary = _scan(args)
    except BaseException:
        if summary_file is not None:
            summary_file.discard()
        raise
    if summary_file is not None:
        summary_file.replace(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    if summary.damaged:
        say(_damaged_note(summary))
    return code


def _scan(args: argparse.Namespace) -> tuple[int, Summary]:
    out_stream = stdout_binary()
    rules = rules_from_args(args)
    limit = args.max_record_bytes
    engine = Engine(
        rules, use_prefilter=not args.no_prefilter, max_record_bytes=limit, exceptions=exceptions_from_args(args)
    )
    names = {r.rule_id: r.name for r in rules}
    summary = Summary()
    write = out_stream.write
    bar = _progress_bar(args.files, args.no_progress)
    started = time.perf_counter()
    process = engine.process
    count = summary.count
    source = args.source
    prevalence = ScanPrevalence(horizon=args.prevalence_horizon)
    grouping = InMemory(rules) if any(r.alert_suppression for r in rules) else None
    blocks = FAST_PATH and engine.use_prefilter and engine.prefilter.hits is not None

    def emit(out: Outcome, name: str, lineno: int) -> None:
        if not count(out, name, lineno, source):
            return
        for hit in out.excluded:
            summary.excluded[hit] += 1
        if out.candidates:
            prevalence.apply(out.candidates)  # as read: an alert sees the executions before it
        for alert in out.alerts:
            if grouping is not None:
                _write_grouped(grouping, alert, summary, names, write)
                continue
            summary.alerts_by_rule[names[alert["kibana.alert.rule.rule_id"]]] += 1
            write(orjson.dumps(alert) + b"\n")

    # A worker process starts with stdin on /dev/null (multiprocessing does that): `-` is read here, in one process.
    jobs = args.jobs if "-" not in args.files else 1
    try:
        if jobs > 1:
            _scan_jobs(args, engine, blocks, summary, emit, bar)
        for path in args.files if jobs == 1 else ():
            name = display_name(path)
            progress = None if bar is None else bar.update
            oversized = summary.oversized(name, limit)
            try:
                if blocks:
                    items = iter_blocks(path, progress, max_record_bytes=limit, on_oversized=oversized)
                    for lineno, out in _outcomes(engine, items, source, summary.skipped):
                        emit(out, name, lineno)
                else:
                    for lineno, data in iter_records(path, progress, max_record_bytes=limit, on_oversized=oversized):
                        emit(process(data, source), name, lineno)
            except InputError as exc:
                # The records before the damage are scanned and counted; the next file is still read.
                summary.damaged.append(str(exc))
        if grouping is not None:
            for doc in grouping.flush():  # the windows still open at the end of the input
                summary.alert_updates += 1
                write(orjson.dumps(doc) + b"\n")
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - started
        out_stream.flush()
    say(summary.render(source))
    return (EXIT_DAMAGED if summary.damaged else EXIT_OK), summary


def _outcomes(
    engine: Engine, items: Iterator[Line | Block], source: str | None, skipped: Callable[[int, str | None], None]
) -> Iterator[tuple[int, Outcome]]:
    """(line number, outcome) of each record `process` does not skip unparsed; `skipped(n, source)` is told of
    the others, a block at a time."""
    process = engine.process
    select = engine.select
    for item in items:
        if item.__class__ is Block:
            block = item
            data = block.data
            block.lines, records, parse = select(data, block.start, block.end)
            skipped(records - len(parse), source)
            first = block.first
            for i, s, e in parse:
                yield first + i, process(data[s:e], source)
        else:
            lineno, raw = cast(Line, item)
            yield lineno, process(raw, source)


# --- --jobs: tasks in worker processes, applied in input order by the parent ------------------------------------

# (path, byte range or None for the whole file): one task.
_Task = tuple[str, tuple[int, int] | None]
# What a task gives back: in order, (line number, outcome) or (line number, size) of a record over the size
# limit, for every record that writes something or gives an example line to the summary; the summary of all the
# others (counts only: they come after this task's own examples, so none of them can be shown); the lines read
# (for the numbering of the next range of the same file), the bytes covered and the damage. Only counts cross
# the process boundary for the bulk of the records, so a task's memory is bounded like the scan's.
_Done = tuple[list[tuple[int, Outcome | int]], Summary, int, int, str | None]

_WORKER: tuple[Engine, bool, str | None, int] | None = None  # set in the parent just before the pool forks


def _run_task(task: _Task) -> _Done:
    assert _WORKER is not None
    engine, blocks, source, limit = _WORKER
    path, span = task
    name = display_name(path)
    kept: list[tuple[int, Outcome | int]] = []
    folded = Summary()
    shown: Counter[str] = Counter()  # examples this task keeps, by rejection reason
    shown_values: Counter[str] = Counter()  # and by malformed-value label
    read = [0]
    report = folded.oversized(name, limit)

    def oversized(number: int, size: int) -> None:
        if shown[TOO_LARGE] < MAX_EXAMPLES:
            shown[TOO_LARGE] += 1
            kept.append((number, size))
        else:
            report(number, size)

    def keep(out: Outcome) -> bool:
        if out.alerts or out.excluded or out.candidates:
            return True
        if out.rejection is not None:
            reason = out.rejection.reason
            if shown[reason] >= MAX_EXAMPLES:
                return False
            shown[reason] += 1
            return True
        if out.ignored and any(shown_values[label] < MAX_EXAMPLES for label, _ in out.ignored):
            shown_values.update(label for label, _ in out.ignored)
            return True
        return False

    damage = None
    try:
        if span is not None:
            items: Iterator[Any] = iter_span(
                path, *span, max_record_bytes=limit, on_oversized=oversized, lines=lambda n: read.__setitem__(0, n)
            )
        elif blocks:
            items = iter_blocks(path, max_record_bytes=limit, on_oversized=oversized)
        else:
            items = iter_records(path, max_record_bytes=limit, on_oversized=oversized)
        pairs = _outcomes(engine, items, source, folded.skipped) if blocks or span else _each(engine, items, source)
        for lineno, out in pairs:
            if not out.prefiltered and keep(out):
                kept.append((lineno, out))
            else:
                folded.count(out, name, lineno, source)
    except InputError as exc:
        damage = str(exc)
    folded.examples.clear()
    folded.ignored_examples.clear()
    size = span[1] - span[0] if span is not None else _size(path)
    return kept, folded, read[0], size, damage


def _merge_counts(summary: Summary, folded: Summary) -> None:
    """Add a task's folded records to the summary (their examples, if any, come after the task's kept ones)."""
    summary.records += folded.records
    summary.prefiltered += folded.prefiltered
    summary.by_source.update(folded.by_source)
    summary.rejected.update(folded.rejected)
    summary.ignored.update(folded.ignored)
    summary.ignored_records += folded.ignored_records
    summary.no_event.update(folded.no_event)


def _each(engine: Engine, items: Iterator[Line], source: str | None) -> Iterator[tuple[int, Outcome]]:
    process = engine.process
    for lineno, data in items:
        yield lineno, process(data, source)


def _size(path: str) -> int:
    try:
        return 0 if path == "-" else Path(path).stat().st_size
    except OSError:
        return 0


def _tasks(files: list[str], jobs: int, limit: int, split: bool) -> list[tuple[_Task, bool]]:
    """Every file a task, a large uncompressed NDJSON file several; with whether the task ends its file."""
    tasks: list[tuple[_Task, bool]] = []
    for path in files:
        spans = ndjson_spans(path, 4 * jobs, limit) if split else None
        if not spans:
            tasks.append(((path, None), True))
            continue
        for k, span in enumerate(spans):
            tasks.append(((path, span), k == len(spans) - 1))
    return tasks


def _scan_jobs(
    args: argparse.Namespace,
    engine: Engine,
    blocks: bool,
    summary: Summary,
    emit: Callable[[Outcome, str, int], None],
    bar: tqdm[Any] | None,
) -> None:
    global _WORKER
    import multiprocessing  # here: its imports cost a one-process scan about 0.1 s of start-up

    limit = args.max_record_bytes
    source = args.source
    # Only the fast path numbers a range's lines from its own start; the per-line reference reads whole files.
    tasks = _tasks(args.files, args.jobs, limit, split=blocks)
    _WORKER = (engine, blocks, source, limit)
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(args.jobs) as pool:
            offset = 0  # lines of the file's earlier ranges
            skip_rest = False  # the file broke off in an earlier range: the serial scan reads no further
            for (task, last), done in zip(tasks, pool.imap(_run_task, [t for t, _ in tasks]), strict=True):
                path = task[0]
                name = display_name(path)
                kept, folded, lines, size, damage = done
                if bar is not None:
                    bar.update(size)
                if not skip_rest:
                    _merge_counts(summary, folded)
                    report = summary.oversized(name, limit)
                    for lineno, out in kept:
                        if isinstance(out, int):
                            report(offset + lineno, out)
                        else:
                            emit(out, name, offset + lineno)
                    if damage is not None:
                        summary.damaged.append(damage)
                        skip_rest = True
                offset += lines
                if last:
                    offset = 0
                    skip_rest = False
    finally:
        _WORKER = None


def _write_grouped(
    grouping: InMemory, alert: dict[str, Any], summary: Summary, names: dict[str, str], write: Any
) -> None:
    """Alert suppression in a scan: windows by event time as the alerts are encountered (files in order,
    records in order); an updated alert document (same id) is written when its window closes."""
    name = names[alert["kibana.alert.rule.rule_id"]]
    docs = grouping.feed(alert, time.time())
    if not docs:
        summary.suppressed[name] += 1
    for doc in docs:
        if doc.get(DOCS_COUNT):
            summary.alert_updates += 1
        else:
            summary.alerts_by_rule[name] += 1
        write(orjson.dumps(doc) + b"\n")


def run_normalize(args: argparse.Namespace) -> int:
    apply_source_options(args)
    check_readable(args.files)
    out_stream = stdout_binary()
    # Normalising needs no rule, but the engine's parse/reject path is the one way records are read.
    from detector.rules.model import load_rules

    limit = args.max_record_bytes
    engine = Engine(load_rules(), use_prefilter=False, max_record_bytes=limit)
    summary = Summary()
    write = out_stream.write
    started = time.perf_counter()
    for path in args.files:
        name = display_name(path)
        try:
            for lineno, data in iter_records(path, max_record_bytes=limit, on_oversized=summary.oversized(name, limit)):
                out = engine.process(data, args.source, keep_events=True)
                if not summary.count(out, name, lineno, args.source):
                    continue
                for event in out.events:
                    write(orjson.dumps(event) + b"\n")
        except InputError as exc:
            summary.damaged.append(str(exc))
    summary.seconds = time.perf_counter() - started
    out_stream.flush()
    say(summary.render(args.source, verb="normalised", alerts=False))
    if summary.damaged:
        say(_damaged_note(summary))
        return EXIT_DAMAGED
    return EXIT_OK
