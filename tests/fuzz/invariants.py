"""What must hold for every raw record the core is given, however hostile.

`Checker.check(raw)` runs one record through `Engine.process` under every source pinning (none,
then each source name), with the prefilter on and off (and a third time where needed, see
`_same_verdicts`), and returns the violations found:

a. `no_raise`        nothing raises out of `Engine.process`; an exception the engine catches itself and
                     turns into an `internal_error` rejection counts too (it is still a crash, just contained).
b. `prefilter_equal` the prefilter changes speed, never verdicts: the same alert uuids with it on and off,
                     and a record it skips has no alert when parsed.
c. `one_outcome`     the record ends as exactly one of: prefiltered; rejected with a reason from
                     `detector.engine.REASONS`; normalised (a known source, the pinned one if pinned)
                     with zero or more alerts.
d. `alert_valid`     every alert serialises with `orjson.dumps` (as `detector scan` and the worker do) and
                     the serialised alert validates against schemas/alert.schema.json.
e. `deterministic`   the same bytes twice give the same verdict and the same alert uuids.
f. `es_accepts`      a record Elasticsearch would parse (a JSON object in UTF-8 with or without a BOM,
                     unpaired surrogate escapes allowed, numbers of any size that are finite as doubles,
                     no duplicate keys, nested at most 1000 levels) is not refused as `not_json`,
                     `not_utf8` or `too_deep`: it was valid input.
g. `bounded_cost`    no record costs `Engine.process` more than 10 ms + 250 ns per byte of CPU (about 270 ms
                     for the largest record the engine takes, near 100 times what orjson.loads spends on it):
                     a hostile record must not buy orders of magnitude more CPU than a plain one. Set well
                     above the engine's honest worst so that a verdict never depends on the machine.

Each violation is a `Failure` whose `signature` names the bug rather than the input, so the fuzzer keeps
one corpus file per bug and not one per random record that hits it.
"""

from __future__ import annotations

import cProfile
import gc
import json
import math
import pstats
import re
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed; only Draft202012Validator is used
import orjson

from detector import engine as engine_module
from detector.engine import Engine, Outcome
from detector.rules.model import Rule, load_rules
from detector.sources import SOURCES

__all__ = ["AUTO", "INVARIANTS", "Checker", "Failure", "es_accepts"]

INVARIANTS: dict[str, str] = {
    "no_raise": "(a) nothing raises out of Engine.process",
    "prefilter_equal": "(b) prefilter on and off give identical alerts",
    "one_outcome": "(c) exactly one of prefiltered / rejected with a known reason / normalised",
    "alert_valid": "(d) every alert serialises with orjson and validates against alert.schema.json",
    "deterministic": "(e) the same input twice gives the same verdict and alert uuids",
    "es_accepts": "(f) input Elasticsearch accepts is not refused as not_json / not_utf8 / too_deep",
    "bounded_cost": "(g) Engine.process costs at most 10 ms + 250 ns per byte of CPU",
}
AUTO = "auto"  # how a pin of None (detect the source) is written in signatures and reports

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json"
_BOM = b"\xef\xbb\xbf"
_ES_DEPTH = 1000  # Jackson's default nesting limit in recent Elasticsearch; below orjson's 1024
_DETECTOR_DIR = f"{Path(engine_module.__file__).resolve().parent}/"
# The engine's last-resort reason for its own exceptions, if it has one, and how it names the exception.
_INTERNAL = getattr(engine_module, "INTERNAL", "internal_error")
_CAUGHT = re.compile(r"\(([A-Za-z_][A-Za-z0-9_.]*): ")
# CPU seconds Engine.process may spend on a record of n bytes. Thread CPU time, so a loaded machine
# does not count; a first run over budget is measured twice more (a GC pause, a cold regex cache).
COST_FLOOR = 0.010
COST_PER_BYTE = 250e-9


@dataclass(frozen=True, slots=True)
class Failure:
    invariant: str  # a key of INVARIANTS
    kind: str  # the exception type, or a short name for the violation
    where: str  # what locates the bug: a code location, a schema path, the source that normalised it
    pin: str  # the source pinning it showed under (AUTO for detection)
    detail: str  # for people

    @property
    def signature(self) -> str:
        return f"{self.invariant}|{self.kind}|{self.where}"

    def __str__(self) -> str:
        return f"{self.invariant} [{self.kind} @ {self.where}] (source={self.pin}): {self.detail}"


def _template(message: str) -> str:
    """A message with its input-specific parts (numbers, quoted values, positions) blanked out."""
    text = re.sub(r":? line \d+ column \d+ \(char \d+\)", "", message)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"\d+", "#", text)[:120]


def _raise_site(exc: BaseException) -> str:
    """The innermost frame inside the detector package: where the bug is, stable across inputs."""
    site = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(_DETECTOR_DIR):
            site = f"detector/{frame.filename[len(_DETECTOR_DIR) :]}:{frame.name}"
    return site


def _unserialisable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first leaf of an alert orjson cannot write, for the failure's detail."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unserialisable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(value, list):
        for item in value:
            found = _unserialisable(item, f"{path}[]")
            if found:
                return found
        return None
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        return path, f"{_describe(value)}: {exc}"
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hot_spot(engine: Engine, raw: bytes, pin: str | None) -> str:
    """The detector function that spends most of a slow call's time: the slow path, by name.

    Profiled only once a record is over budget, so the signature tells one slow path from another
    (pinnings and verdicts vary, the function does not) at no cost to the records that are not.
    Time in builtins (a regex, a split) and comprehensions counts for the named function calling them.
    """
    profile = cProfile.Profile()
    profile.runcall(engine.process, raw, pin)
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def named(key: tuple[str, int, str]) -> bool:
        return key[0].startswith(_DETECTOR_DIR) and not key[2].startswith("<")

    credit: dict[tuple[str, int, str], float] = {}
    for key, (_, _, own, _, callers) in stats.items():
        if named(key):
            credit[key] = credit.get(key, 0.0) + own
            continue
        for caller, (_, _, via, _) in callers.items():
            if caller[0].startswith(_DETECTOR_DIR) and not named(caller):
                caller = next(iter(stats[caller][4]), caller)  # a comprehension: the function it lives in
            if named(caller):
                credit[caller] = credit.get(caller, 0.0) + via
    if not credit:
        return "Engine.process"
    file, _, name = max(credit, key=lambda k: credit[k])
    return f"detector/{file[len(_DETECTOR_DIR) :]}:{name}"


# ------------------------------------------------------------------------------- the reference parser


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Refused("duplicate key")  # Elasticsearch's strict duplicate detection (on by default)
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("number overflows a double")
    return value


def _constant(text: str) -> float:
    raise _Refused(f"{text} is not JSON")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def es_accepts(raw: bytes, max_bytes: int) -> bool:
    """Would Elasticsearch (Jackson) take these bytes as a JSON object document?

    Jackson skips a UTF-8 BOM, decodes `\\ud800` escapes without pairing them, and reads numbers of any
    size; it refuses invalid UTF-8, NaN/Infinity, duplicate keys (strict detection) and non-finite floats.
    """
    if len(raw) > max_bytes:
        return False
    body = raw[3:] if raw.startswith(_BOM) else raw
    limit = sys.getrecursionlimit()
    # json.loads recurses per nesting level: the reference must not refuse at a depth Python's stack
    # happens to allow here, or it would excuse the engine for the same weakness. Restored at once.
    sys.setrecursionlimit(max(limit, 4 * _ES_DEPTH))
    try:
        text = body.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite, parse_constant=_constant)
    except (ValueError, RecursionError):
        return False
    finally:
        sys.setrecursionlimit(limit)
    return isinstance(doc, dict) and _depth(doc) <= _ES_DEPTH


# ------------------------------------------------------------------------------------------ the checker


def _verdict(out: Outcome) -> tuple[Any, ...]:
    reason = out.rejection.reason if out.rejection else None
    return (out.prefiltered, reason, out.source, tuple(a.get("kibana.alert.uuid") for a in out.alerts))


class Checker:
    """Engines with the prefilter on and off over the same rules, and the alert schema."""

    def __init__(self, rules: Sequence[Rule] | None = None) -> None:
        self.rules = tuple(rules) if rules is not None else tuple(load_rules())
        self.on = Engine(self.rules, use_prefilter=True)
        self.off = Engine(self.rules, use_prefilter=False)
        self.pins: tuple[str | None, ...] = (None, *SOURCES)
        self.validator = jsonschema.Draft202012Validator(
            json.loads(SCHEMA_PATH.read_text()), format_checker=jsonschema.FormatChecker()
        )
        # Python's recursion limit counts the caller's frames too, so a record nested near the limit
        # can pass under the fuzzer and fail under pytest. Checking on a thread of our own gives
        # every caller the same, shallow stack, as the worker's ingest thread and the CLI have.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-check")
        self._cost_factor = 1.0

    @staticmethod
    def pin_name(pin: str | None) -> str:
        return AUTO if pin is None else pin

    def check(self, raw: bytes, pins: Iterable[str | None] | None = None, cost_factor: float = 1.0) -> list[Failure]:
        """Every invariant violated by `raw`, one Failure per signature (`cost_factor` scales the CPU budget)."""
        pinned = None if pins is None else tuple(pins)
        return self._thread.submit(self._check, raw, pinned, cost_factor).result()

    def _check(self, raw: bytes, pins: tuple[str | None, ...] | None, cost_factor: float = 1.0) -> list[Failure]:
        self._cost_factor = cost_factor
        found: dict[str, Failure] = {}
        validated: set[str] = set()
        es_ok: bool | None = None
        # Read per check, not at import: the engine may define new reasons while a long run goes on.
        reasons = frozenset(engine_module.REASONS)
        for pin in self.pins if pins is None else pins:
            name = self.pin_name(pin)
            on = self._run(self.on, raw, pin, found)
            off = self._run(self.off, raw, pin, found)
            for out in (on, off):
                if out is not None:
                    self._one_outcome(out, pin, reasons, found)
            if on is not None and off is not None:
                self._same_verdicts(raw, pin, on, off, found)
            for out in (on, off):
                if out is not None:
                    self._alerts_valid(out, name, validated, found)
            if (
                off is not None
                and off.rejection is not None
                and off.rejection.reason in ("not_json", "not_utf8", "too_deep")
            ):
                if es_ok is None:
                    es_ok = es_accepts(raw, self.off.max_record_bytes)
                if es_ok:
                    detail = f"{off.rejection.reason}: {off.rejection.detail}"
                    where = f"{off.rejection.reason}: {_template(off.rejection.detail)}"
                    self._add(found, Failure("es_accepts", "refused", where, name, detail[:300]))
        return list(found.values())

    @staticmethod
    def _add(found: dict[str, Failure], failure: Failure) -> None:
        found.setdefault(failure.signature, failure)

    def _run(self, engine: Engine, raw: bytes, pin: str | None, found: dict[str, Failure]) -> Outcome | None:
        budget = (COST_FLOOR + COST_PER_BYTE * len(raw)) * self._cost_factor
        # The cyclic garbage collector is paused while a record is timed: a full collection walks the whole
        # process heap (in a test session, millions of objects: 88 ms became 441 ms), which measures the
        # process, not the record. Whatever a record allocates is still counted, and collected right after.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            started = time.thread_time()
            out = engine.process(raw, pin)
            cost = time.thread_time() - started
            for _ in range(2 if cost > budget else 0):
                started = time.thread_time()
                engine.process(raw, pin)
                cost = min(cost, time.thread_time() - started)
        except Exception as exc:  # the invariant under test: anything at all escaping is a finding
            self._add(
                found,
                Failure("no_raise", type(exc).__name__, _raise_site(exc), self.pin_name(pin), str(exc)[:300]),
            )
            return None
        finally:
            if gc_was_enabled:
                gc.enable()
        if cost > budget:
            verdict = f"rejected as {out.rejection.reason}" if out.rejection else out.source or "prefiltered"
            detail = f"{cost * 1000:.0f} ms CPU for {len(raw):,} bytes (budget {budget * 1000:.0f} ms), {verdict}"
            where = _hot_spot(engine, raw, pin)
            self._add(found, Failure("bounded_cost", "slow", where, self.pin_name(pin), detail))
        return out

    def _one_outcome(self, out: Outcome, pin: str | None, reasons: frozenset[str], found: dict[str, Failure]) -> None:
        name = self.pin_name(pin)
        if out.rejection is not None and out.rejection.reason == _INTERNAL:
            caught = _CAUGHT.search(out.rejection.detail)
            kind = caught.group(1) if caught else "internal_error"
            where = f"caught as {_INTERNAL}: {_template(out.rejection.detail)}"
            self._add(found, Failure("no_raise", kind, where, name, out.rejection.detail[:300]))
        problems: list[str] = []
        if out.prefiltered:
            if out.rejection is not None or out.alerts or out.events:
                problems.append("prefiltered and also rejected or with alerts/events")
        elif out.rejection is not None:
            if out.rejection.reason not in reasons:
                problems.append(f"unknown rejection reason {out.rejection.reason!r}")
            if not isinstance(out.rejection.detail, str) or not out.rejection.detail:
                problems.append("rejection without a detail")
            if out.alerts:
                problems.append("rejected yet with alerts")
        else:
            if out.source not in SOURCES:
                problems.append(f"normalised with unknown source {out.source!r}")
            elif pin is not None and out.source != pin:
                problems.append(f"pinned to {pin} but normalised as {out.source}")
            if not all(isinstance(a, dict) for a in out.alerts):
                problems.append("an alert that is not a dict")
        for problem in problems:
            self._add(found, Failure("one_outcome", "violation", _template(problem), name, problem))

    def _same_verdicts(self, raw: bytes, pin: str | None, on: Outcome, off: Outcome, found: dict[str, Failure]) -> None:
        """(b) and (e), with as few extra runs as the attribution of a difference needs."""
        name = self.pin_name(pin)
        if on.prefiltered:
            if off.alerts:
                detail = f"skipped by the prefilter, yet {len(off.alerts)} alert(s) when parsed ({off.source})"
                self._add(found, Failure("prefilter_equal", "missed_alert", off.source or name, name, detail))
            # The parsed run has not been repeated yet. A record its pinned source does not claim is
            # refused before any normaliser runs, so repeating it would check nothing but the cost.
            if off.rejection is not None and off.rejection.reason == "unknown_source":
                return
            self._repeat(self.off, raw, pin, off, found)
            return
        # Not skipped: both engines took the same path, so the two runs are already "the same bytes
        # twice". Only when they differ does a third run tell a nondeterministic core from a prefilter bug.
        if _verdict(on) == _verdict(off):
            return
        if self._repeat(self.on, raw, pin, on, found):
            detail = f"prefilter on: {_verdict(on)}; off: {_verdict(off)}"
            self._add(found, Failure("prefilter_equal", "verdicts_differ", off.source or name, name, detail))

    def _repeat(self, engine: Engine, raw: bytes, pin: str | None, first: Outcome, found: dict[str, Failure]) -> bool:
        """Run again; False (and a failure) when the verdict changed."""
        again = self._run(engine, raw, pin, found)
        if again is None or _verdict(again) == _verdict(first):
            return again is not None
        name = self.pin_name(pin)
        detail = f"{_verdict(first)} then {_verdict(again)}"
        self._add(found, Failure("deterministic", "verdict_differs", first.source or name, name, detail))
        return False

    def _alerts_valid(self, out: Outcome, name: str, validated: set[str], found: dict[str, Failure]) -> None:
        source = out.source or name
        for alert in out.alerts:
            uid = str(alert.get("kibana.alert.uuid"))
            if uid in validated:
                continue  # the same alert under another pinning or engine: one validation is enough
            validated.add(uid)
            try:
                data = orjson.dumps(alert)
            except (orjson.JSONEncodeError, TypeError) as exc:
                path, what = _unserialisable(alert) or ("?", str(exc))
                where = f"{source}: {_template(str(exc))}"
                self._add(found, Failure("alert_valid", type(exc).__name__, where, name, f"{path} = {what}"))
                continue
            for error in self.validator.iter_errors(orjson.loads(data)):
                schema_path = "/".join(str(p) for p in error.absolute_schema_path)
                detail = f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message[:200]}"
                self._add(found, Failure("alert_valid", "SchemaError", f"{source}: {schema_path}", name, detail))
