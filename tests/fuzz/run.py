"""Fuzz the detection core: many hostile records through every invariant of tests/fuzz/invariants.py.

    .venv/bin/python -m tests.fuzz.run --inputs 1000000 --seed 1 [--jobs 2]

First replays the corpus (tests/fuzz/corpus/) and says which findings are still open; with `--sweep N`
gives every path of N positives per source every value type in turn; then generates `--inputs` records
(mutated synth records, byte-level damage, random JSON, noise; deterministic for a seed whatever
`--jobs`), checks each, prints progress, writes each new finding minimised into the corpus, and ends
with a summary. Exit status 1 when any input (fuzzed or from the corpus) fails.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.fuzz.findings import CORPUS_DIR, corpus_files, load_index, minimise, read_input, save_finding, write_input
from tests.fuzz.generators import GENERATORS, TYPE_SWAPS, paths, seeds, sweep, sweep_seeds
from tests.fuzz.invariants import INVARIANTS, Checker, Failure

CHUNK = 500  # inputs per unit of work: big enough to amortise a process hop, small enough for progress


@dataclass
class ChunkResult:
    inputs: int = 0
    failing_inputs: int = 0
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (invariant, kind) -> inputs
    by_signature: Counter[str] = field(default_factory=Counter)
    by_generator: Counter[str] = field(default_factory=Counter)
    # per signature the smallest failing input: (raw, failure, "seed S input N (generator)")
    examples: dict[str, tuple[bytes, Failure, str]] = field(default_factory=dict)

    def merge(self, other: ChunkResult) -> None:
        self.inputs += other.inputs
        self.failing_inputs += other.failing_inputs
        self.by_kind.update(other.by_kind)
        self.by_signature.update(other.by_signature)
        self.by_generator.update(other.by_generator)


_checker: Checker | None = None


def _init_checker() -> None:
    global _checker
    _checker = Checker()
    seeds()  # built once per process, not once per chunk


def _init_worker() -> None:
    # Workers leave stopping to the parent, which terminates them once it has printed its summary.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_checker()


@dataclass(frozen=True)
class RandomTask:
    seed: int
    chunk: int
    count: int
    mix: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SweepTask:
    seed_index: int  # into generators.seeds(), the same in every process
    start: int  # paths [start, stop) of that seed
    stop: int


def _fuzz_chunk(task: RandomTask | SweepTask) -> ChunkResult:
    checker = _checker or Checker()
    result = ChunkResult()
    if isinstance(task, SweepTask):
        for label, raw in sweep(task.seed_index, start=task.start, stop=task.stop):
            _record(result, checker, raw, "sweep", f"sweep: {label}")
        return result
    # A string seed is hashed (sha512) by random.Random, so chunk streams are independent and the
    # same for any number of jobs.
    rng = random.Random(f"{task.seed}/{task.chunk}")
    names = [name for name, _ in task.mix]
    weights = [w for _, w in task.mix]
    for k in range(task.count):
        name = rng.choices(names, weights)[0]
        raw = GENERATORS[name][1](rng)
        _record(result, checker, raw, name, f"seed {task.seed} input {task.chunk * CHUNK + k} ({name})")
    return result


def _record(result: ChunkResult, checker: Checker, raw: bytes, generator: str, origin: str) -> None:
    failures = checker.check(raw)
    result.inputs += 1
    result.by_generator[generator] += 1
    if not failures:
        return
    result.failing_inputs += 1
    result.by_kind.update({(f.invariant, f.kind) for f in failures})
    for failure in failures:
        result.by_signature[failure.signature] += 1
        known = result.examples.get(failure.signature)
        if known is None or len(raw) < len(known[0]):
            result.examples[failure.signature] = (raw, failure, origin)


def _tasks(
    seed: int, inputs: int, mix: Sequence[tuple[str, float]], sweep_per_source: int
) -> Iterator[RandomTask | SweepTask]:
    # The sweep first: it is the systematic part, and short. Each task covers about CHUNK inputs.
    step = max(1, CHUNK // len(TYPE_SWAPS))
    for index in sweep_seeds(sweep_per_source) if sweep_per_source else ():
        n_paths = len(paths(seeds()[index].doc))
        for start in range(0, n_paths, step):
            yield SweepTask(index, start, min(start + step, n_paths))
    for chunk in range((inputs + CHUNK - 1) // CHUNK):
        yield RandomTask(seed, chunk, min(CHUNK, inputs - chunk * CHUNK), tuple(mix))


def _parse_mix(text: str | None) -> list[tuple[str, float]]:
    if not text:
        return [(name, weight) for name, (weight, _) in GENERATORS.items()]
    mix = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in GENERATORS:
            raise SystemExit(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
        mix.append((name, float(weight or 1)))
    return mix


def replay_corpus(checker: Checker, directory: Path) -> tuple[set[str], int]:
    """Print each corpus file's status; return the signatures still open and the failing file count."""
    index = load_index(directory)
    open_signatures: set[str] = set()
    failing = 0
    files = corpus_files(directory)
    if files:
        print(f"corpus: {len(files)} file(s) in {directory}")
    for path in files:
        failures = checker.check(read_input(path))
        entry = index.get(path.name)
        expected = entry.signature if entry else None
        if failures:
            failing += 1
        if expected and any(f.signature == expected for f in failures):
            open_signatures.add(expected)
            status = "OPEN "
        elif failures:
            status = "OTHER"  # fixed as recorded, yet failing another way now
        else:
            status = "fixed"
        print(f"  {status} {path.name}")
        for f in failures:
            if f.signature != expected:
                print(f"        now: {f}")
    return open_signatures, failing


def reminimise(checker: Checker, directory: Path, budget: int) -> None:
    """Shrink again each corpus file that still fails as recorded (after the minimiser improved)."""
    for name, entry in sorted(load_index(directory).items()):
        path = directory / name
        raw = read_input(path)
        failure = next((f for f in checker.check(raw) if f.signature == entry.signature), None)
        if failure is None:
            continue
        small = minimise(raw, failure, checker, budget)
        if len(small) < len(raw):
            write_input(path, small)
            print(f"  {name}: {len(raw):,} -> {len(small):,} bytes")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="records to generate (default 100,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--mix", help="generator weights, e.g. structured=0.5,bytes=0.3,json=0.15,noise=0.05")
    parser.add_argument(
        "--sweep",
        type=int,
        default=0,
        metavar="N",
        help="first give every path of N positives per source every value type in turn (about 12,000 inputs per N)",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="corpus directory (default tests/fuzz/corpus)")
    parser.add_argument("--no-write", action="store_true", help="report new findings without writing them")
    parser.add_argument("--minimise-budget", type=int, default=800, help="re-checks spent shrinking one finding")
    parser.add_argument("--progress", type=float, default=15.0, help="seconds between progress lines")
    parser.add_argument("--time-limit", type=float, help="stop after this many seconds (summary as usual)")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON")
    parser.add_argument("--reminimise", action="store_true", help="shrink the open corpus files again, then fuzz")
    parser.add_argument("--core", default="", help="what core is under test (e.g. a commit), kept with new findings")
    args = parser.parse_args(argv)
    mix = _parse_mix(args.mix)

    # A job started with `nohup ... &` ignores SIGINT; SIGTERM then stops it with its summary.
    signal.signal(signal.SIGTERM, _stop)
    checker = Checker()
    seeds()
    if args.reminimise:
        reminimise(checker, args.corpus, args.minimise_budget)
    open_signatures, corpus_failing = replay_corpus(checker, args.corpus)
    if args.sweep:
        swept = sum(len(paths(seeds()[i].doc)) for i in sweep_seeds(args.sweep)) * len(TYPE_SWAPS)
        print(f"sweep: {swept:,} inputs (every path of {args.sweep} positive(s) per source x {len(TYPE_SWAPS)} types)")
    print(
        f"fuzzing {args.inputs:,} inputs, seed {args.seed}, {args.jobs} job(s), mix "
        + ", ".join(f"{n}={w:g}" for n, w in mix)
    )
    sys.stdout.flush()

    total = ChunkResult()
    new_files: list[str] = []
    seen: set[str] = set(open_signatures)
    started = last = time.monotonic()
    interrupted = ""
    pool = multiprocessing.Pool(args.jobs, initializer=_init_worker) if args.jobs > 1 else None
    if pool is None:
        _init_checker()
    results = (
        pool.imap(_fuzz_chunk, _tasks(args.seed, args.inputs, mix, args.sweep))
        if pool
        else map(_fuzz_chunk, _tasks(args.seed, args.inputs, mix, args.sweep))
    )
    try:
        for result in results:
            total.merge(result)
            for signature, (raw, failure, origin) in sorted(result.examples.items()):
                if signature in seen:
                    continue
                seen.add(signature)
                small = minimise(raw, failure, checker, args.minimise_budget)
                print(
                    f"NEW  {failure}\n     {origin}; {len(raw):,} bytes, minimised to {len(small):,}: {small[:200]!r}"
                )
                if not args.no_write:
                    found_by = f"{origin} on core {args.core}" if args.core else origin
                    path = save_finding(small, failure, found_by, len(raw), args.corpus)
                    new_files.append(path.name)
                    print(f"     -> {path}")
            now = time.monotonic()
            if now - last >= args.progress:
                last = now
                print(
                    f"[{now - started:7.0f} s] {total.inputs:,} inputs ({total.inputs / (now - started):,.0f}/s), "
                    f"{total.failing_inputs:,} failing, {len(total.by_signature)} distinct failure(s)"
                )
                sys.stdout.flush()
            if args.time_limit and now - started >= args.time_limit:
                interrupted = f"time limit of {args.time_limit:g} s reached"
                break
    except KeyboardInterrupt:
        interrupted = "interrupted"
    finally:
        if pool:
            pool.terminate()
    elapsed = time.monotonic() - started

    print(f"\nsummary{' (' + interrupted + ')' if interrupted else ''}")
    print(f"  inputs tried: {total.inputs:,} in {elapsed:,.1f} s ({total.inputs / max(elapsed, 1e-9):,.0f} inputs/s)")
    print("  by generator: " + ", ".join(f"{n} {c:,}" for n, c in total.by_generator.most_common()))
    print(f"  failing inputs: {total.failing_inputs:,}")
    for (invariant, kind), count in sorted(total.by_kind.items()):
        print(f"    {INVARIANTS[invariant]} / {kind}: {count:,}")
    print(f"  distinct failures (signatures): {len(total.by_signature)}")
    for signature, count in total.by_signature.most_common():
        print(f"    {count:>8,}  {signature}")
    print(f"  corpus: {len(open_signatures)} finding(s) still open, {corpus_failing} file(s) failing")
    print(f"  new findings written: {len(new_files)}" + "".join(f"\n    {n}" for n in new_files))
    if args.summary_json:
        summary = {
            "inputs": total.inputs,
            "seconds": round(elapsed, 1),
            "inputs_per_second": round(total.inputs / max(elapsed, 1e-9)),
            "seed": args.seed,
            "jobs": args.jobs,
            "interrupted": interrupted or None,
            "failing_inputs": total.failing_inputs,
            "by_invariant_and_kind": {f"{i}|{k}": c for (i, k), c in sorted(total.by_kind.items())},
            "by_signature": dict(total.by_signature.most_common()),
            "by_generator": dict(total.by_generator),
            "corpus_open": sorted(open_signatures),
            "new_files": new_files,
        }
        args.summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return 1 if total.failing_inputs or corpus_failing else 0


if __name__ == "__main__":
    sys.exit(main())
