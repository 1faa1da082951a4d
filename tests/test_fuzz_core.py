"""The core on hostile and messy input: property tests, hostile encodings, and the fuzz regression corpus.

Every raw record is held to the invariants of tests/fuzz/invariants.py (nothing raises out of
`Engine.process` under any source pinning; the prefilter never changes a verdict; one outcome per
record; every alert serialises and validates; verdicts are deterministic; what Elasticsearch accepts
is not refused as undecodable). Besides, each stage is tested on its own: source detection and the
normalisers, EQL evaluation, alert building.

`test_fuzz_regression_corpus[<file>]` replays the minimised findings of the long-running fuzzer
(`python -m tests.fuzz.run`, see tests/fuzz/corpus/index.json): a failure there is a finding still open
in the core, named by the file.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from detector.alerts.builder import build_alert, record_digest
from detector.engine import Engine, Outcome, Rejection
from detector.rules.prefilter import Prefilter
from detector.sources import SOURCES, NormalizeError, detect_source, normalize
from tests.fuzz import generators
from tests.fuzz.findings import CORPUS_DIR, corpus_files, load_index, read_input
from tests.fuzz.invariants import AUTO, Checker, es_accepts
from tests.fuzz.jsonenc import BOM, Lit, Pairs, encode, escaped_string

CHECKER = Checker()
RULE = CHECKER.rules[0]
SEEDS = generators.seeds()
POSITIVES = tuple(s for s in SEEDS if s.kind == "positive")
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
# Shrinking a random.Random's draws takes minutes and gives little: the fuzzer's minimiser does it better.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


def assert_invariants(raw: bytes) -> None:
    failures = CHECKER.check(raw)
    assert not failures, "\n".join(str(f) for f in failures) + f"\ninput ({len(raw)} bytes): {raw[:400]!r}"


# ------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.integers(),
    st.sampled_from(generators.HUGE_INTS),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(generators.FLOATS),
    st.sampled_from(generators.LITERALS).map(Lit),
    st.booleans(),
    st.none(),
    st.text(max_size=40),
    # hypothesis leaves out surrogates unless asked: unpaired ones are exactly what we want here
    st.text(st.characters(codec=None, categories=["Cs", "Ll", "Nd", "Po"]), min_size=1, max_size=6),
    st.sampled_from(generators.STRINGS),
    st.sampled_from(("A", "client32.exe\\", "\U0001f600")).flatmap(
        lambda unit: st.integers(1_000, 120_000).map(lambda n: unit * n)
    ),
    st.integers(10, 1100).map(lambda depth: Lit("[" * depth + "1" + "]" * depth)),
)
hostile = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(("a", "name", "pid", "", "0", "client32.exe")), inner, max_size=3),
    ),
    max_leaves=6,
)
OPS = ("replace", "replace", "replace", "delete", "wrap", "duplicate", "flatten")


@st.composite
def mutated_positive(draw: st.DrawFn) -> tuple[str, Any]:
    """(source, tree): a positive of some source with one to three fields given hostile values."""
    seed = draw(st.sampled_from(POSITIVES))
    doc: Any = orjson.loads(seed.raw)
    for _ in range(draw(st.integers(1, 3))):
        paths = generators.paths(doc) if isinstance(doc, dict) else []
        if not paths:
            break
        path = paths[draw(st.integers(0, len(paths) - 1))]
        doc = generators.mutate_tree(doc, path, draw(st.sampled_from(OPS)), draw(hostile))
    return seed.source, doc


@st.composite
def framed(draw: st.DrawFn, tree: Any) -> bytes:
    raw = encode(tree, ascii_only=draw(st.booleans()))
    return draw(st.sampled_from((b"", b"", b"", BOM, b" "))) + raw + draw(st.sampled_from((b"", b"", b"\n", b"\r\n")))


def _parsed_records() -> st.SearchStrategy[dict[str, Any]]:
    """Mutated positives as the engine would see them after orjson.loads (those that parse)."""

    def load(pair: tuple[str, Any]) -> Any:
        try:
            return orjson.loads(encode(pair[1]))
        except orjson.JSONDecodeError:
            return None

    return mutated_positive().map(load).filter(lambda doc: isinstance(doc, dict))


# ------------------------------------------------------------------------- the engine, end to end


@settings(max_examples=200, suppress_health_check=SLOW)
@given(st.data())
def test_engine_invariants_on_positives_with_wrong_types(data: st.DataObject) -> None:
    _, tree = data.draw(mutated_positive())
    assert_invariants(data.draw(framed(tree)))


@settings(max_examples=300, suppress_health_check=SLOW)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=300).map(lambda b: b"{" + b + b"client32" + b + b"}"),
        st.binary(max_size=64).map(lambda b: BOM + b"{" + b + b"}"),
    )
)
def test_engine_invariants_on_random_bytes(raw: bytes) -> None:
    assert_invariants(raw)


@settings(max_examples=200, suppress_health_check=SLOW, phases=NO_SHRINK)
@given(st.randoms(use_true_random=False))
def test_engine_invariants_on_damaged_bytes(rng: random.Random) -> None:
    """Bit flips, truncations, splices and inserted escapes in realistic records of every source."""
    assert_invariants(generators.byte_mutation(rng))


@settings(max_examples=40, suppress_health_check=SLOW, phases=NO_SHRINK)
@given(st.randoms(use_true_random=False))
def test_engine_invariants_on_random_json_over_vendor_keys(rng: random.Random) -> None:
    assert_invariants(generators.random_json(rng))


# Values beyond 64 bits, a double's edge, a bool, several values, an object: the types a normaliser most
# likely mistakes for another. The fuzzer's --sweep gives every path all of generators.TYPE_SWAPS.
SWEEP_SWAPS = (2**64, 1e308, True, ["orig"], {"a": "orig"})


@pytest.mark.parametrize("seed_index", generators.sweep_seeds(per_source=1), ids=lambda i: SEEDS[i].source)
def test_every_field_of_a_positive_with_the_wrong_type(seed_index: int) -> None:
    """Each path of a positive, in turn, holds each of SWEEP_SWAPS: one record per (path, value)."""
    failures: dict[str, str] = {}
    for label, raw in generators.sweep(seed_index, SWEEP_SWAPS):
        for failure in CHECKER.check(raw, pins=[None]):
            failures.setdefault(failure.signature, f"{label}: {failure}")
    assert not failures, "\n".join(failures.values())


# --------------------------------------------------------- hostile encodings of every source's positive


def _map_leaves(tree: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(tree, dict):
        return {k: _map_leaves(v, fn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_map_leaves(v, fn) for v in tree]
    return fn(tree)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and value.isdigit())


def _longest_string_padded(doc: dict[str, Any]) -> Any:
    longest = max((v for v in _strings(doc)), key=len)
    return _map_leaves(doc, lambda v: v + "A" * 200_000 if v == longest else v)


def _strings(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        return [s for v in tree.values() for s in _strings(v)]
    if isinstance(tree, list):
        return [s for v in tree for s in _strings(v)]
    return [tree] if isinstance(tree, str) else []


HOSTILE_ENCODINGS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "bom": lambda doc: BOM + orjson.dumps(doc),
    "every_number_beyond_64_bits": lambda doc: encode(_map_leaves(doc, lambda v: 2**64 if _numeric(v) else v)),
    "every_number_1e308": lambda doc: encode(_map_leaves(doc, lambda v: 1e308 if _numeric(v) else v)),
    "unpaired_surrogate_in_paths": lambda doc: encode(
        _map_leaves(doc, lambda v: v.replace("\\Users\\", "\\Users\\\ud800") if isinstance(v, str) else v)
    ),
    "nan_and_infinity": lambda doc: encode({**doc, "x.nan": Lit("NaN"), "x.inf": Lit("-Infinity")}),
    "duplicate_keys": lambda doc: encode(Pairs([*((k, "x") for k in doc), *doc.items()])),
    "nested_1000_deep": lambda doc: encode({**doc, "x.deep": Lit("[" * 1000 + "]" * 1000)}),
    "nested_1100_deep": lambda doc: encode({**doc, "x.deep": Lit("[" * 1100 + "]" * 1100)}),
    "huge_string": lambda doc: orjson.dumps(_longest_string_padded(doc)),
    "escaped_needle": lambda doc: encode(
        _map_leaves(doc, lambda v: escaped_string(v) if isinstance(v, str) and "client32" in v.lower() else v)
    ),
}


def _positive_in_users(source: str) -> dict[str, Any]:
    for seed in POSITIVES:
        if seed.source == source and b"\\\\Users\\\\" in seed.raw:
            return seed.doc
    return next(s.doc for s in POSITIVES if s.source == source)


@pytest.mark.parametrize("encoding", sorted(HOSTILE_ENCODINGS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_hostile_encoding_of_positive(source: str, encoding: str) -> None:
    assert_invariants(HOSTILE_ENCODINGS[encoding](_positive_in_users(source)))


def test_escaped_needle_still_alerts() -> None:
    """A record spelling client32 with \\u escapes alerts like the plain one (the prefilter sees through)."""
    for source in sorted(SOURCES):
        doc = _positive_in_users(source)
        plain = CHECKER.on.process(orjson.dumps(doc))
        escaped = CHECKER.on.process(HOSTILE_ENCODINGS["escaped_needle"](doc))
        assert len(plain.alerts) == len(escaped.alerts) == 1, source


# ----------------------------------------------------------------------------- each stage on its own


@settings(max_examples=200, suppress_health_check=SLOW)
@given(_parsed_records(), st.sampled_from((None, *sorted(SOURCES))))
def test_detection_and_normalisers_fail_only_with_normalize_error(record: dict[str, Any], pin: str | None) -> None:
    detected = detect_source(record)
    assert detected is None or detected in SOURCES
    try:
        name, events = normalize(record, pin)
    except NormalizeError:  # UnknownSourceError included: the engine turns these into rejections
        return
    assert name == (pin or detected)
    assert isinstance(events, list) and all(isinstance(e, dict) for e in events)


@settings(max_examples=200, suppress_health_check=SLOW)
@given(_parsed_records())
def test_eql_and_alert_building_are_total_over_normalised_events(record: dict[str, Any]) -> None:
    """Any event a normaliser yields is evaluated to a bool, and would make a valid, serialisable alert:
    a matching event may carry any of the other fields a non-matching one does."""
    try:
        source, events = normalize(record)
    except NormalizeError:
        return
    for i, event in enumerate(events):
        assert isinstance(RULE.compiled.matches(event), bool)
        alert = build_alert(RULE, event, source=source, digest=record_digest(b"{}"), index=i)
        data = orjson.dumps(alert)  # raises on ints beyond 64 bits, unpaired surrogates, depth > 254
        errors = [e.message for e in CHECKER.validator.iter_errors(orjson.loads(data))]
        assert not errors, errors


@settings(max_examples=200, suppress_health_check=SLOW)
@given(
    st.dictionaries(
        st.sampled_from(sorted(RULE.compiled.fields)),
        st.one_of(hostile, st.sampled_from(("client32.exe", "C:\\Users\\a\\client32.exe", "windows", "start"))),
    )
)
def test_eql_evaluation_is_total_on_wrongly_typed_fields(flat: dict[str, Any]) -> None:
    """The rule's own fields holding numbers, lists, objects, nulls: a bool, never an exception."""
    event: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = event
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            node = node.setdefault(part, {}) if child is None or isinstance(child, dict) else {}
        node[leaf] = value
    try:
        parsed = orjson.loads(encode(event))  # as the engine would hold it
    except orjson.JSONDecodeError:
        assume(False)
    assert isinstance(RULE.compiled.matches(parsed), bool)


@settings(max_examples=300, suppress_health_check=SLOW)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_prefilter_passes_every_record_with_a_needle(before: bytes, after: bytes) -> None:
    prefilter: Prefilter = CHECKER.on.prefilter
    assert prefilter(before + after) in (True, False)
    for needle in prefilter.literals or ():
        assert prefilter(before + needle.upper() + after) is True
        assert prefilter(before + needle + after) is True


# ------------------------------------------------------------------- the checker catches what it claims


def _rig(engine: Engine, process: Callable[..., Outcome]) -> None:
    # Shadow the method on this instance only: the checker must judge whatever an engine returns.
    vars(engine)["process"] = process


def _rigged(process: Callable[..., Outcome], engine: str = "off") -> Checker:
    checker = Checker(CHECKER.rules)
    _rig(checker.on if engine == "on" else checker.off, process)
    return checker


def _invariants(checker: Checker, raw: bytes) -> set[tuple[str, str]]:
    return {(f.invariant, f.kind) for f in checker.check(raw, pins=[None])}


def test_checker_flags_each_invariant() -> None:
    """The checker, rigged with engines that misbehave one way each, names the right invariant."""
    positive = POSITIVES[0].raw
    real = CHECKER.off.process(positive)
    assert (real.alerts and not CHECKER.check(positive, pins=[None])) or real.rejection is not None

    def boom(raw: bytes, source: str | None = None) -> Outcome:
        raise KeyError("x")

    assert ("no_raise", "KeyError") in _invariants(_rigged(boom), positive)
    internal = Outcome(rejection=Rejection("internal_error", "internal error on this record (TypeError: x)"))
    assert ("no_raise", "TypeError") in _invariants(_rigged(lambda raw, source=None: internal), positive)

    skipped = Outcome(prefiltered=True)
    alerting = Outcome(source=POSITIVES[0].source, alerts=[{"kibana.alert.uuid": "0" * 64}])
    rigged = _rigged(lambda raw, source=None: skipped, "on")
    _rig(rigged.off, lambda raw, source=None: alerting)
    assert ("prefilter_equal", "missed_alert") in _invariants(rigged, positive)

    mystery = Outcome(rejection=Rejection("mystery", "?"))
    assert ("one_outcome", "violation") in _invariants(_rigged(lambda raw, source=None: mystery), positive)

    huge = Outcome(source="endpoint", alerts=[{"kibana.alert.uuid": "1" * 64, "process": {"pid": 2**64}}])
    assert ("alert_valid", "TypeError") in _invariants(_rigged(lambda raw, source=None: huge), positive)
    assert ("alert_valid", "SchemaError") in _invariants(
        _rigged(lambda raw, source=None: Outcome(source="endpoint", alerts=[{"kibana.alert.uuid": "x"}])), positive
    )

    flips = itertools.cycle(("endpoint", "endgame"))
    flaky = _rigged(lambda raw, source=None: Outcome(source=next(flips)))
    _rig(flaky.on, lambda raw, source=None: skipped)
    assert ("deterministic", "verdict_differs") in _invariants(flaky, positive)

    refused = Outcome(rejection=Rejection("not_utf8", "nope"))
    assert ("es_accepts", "refused") in _invariants(_rigged(lambda raw, source=None: refused), BOM + b'{"a":"\\ud800"}')
    assert ("es_accepts", "refused") not in _invariants(_rigged(lambda raw, source=None: refused), b'{"a":NaN}')


def test_es_reference_parser() -> None:
    """What the reference takes for Elasticsearch's (Jackson's) view of a record."""
    limit = 1 << 20
    assert es_accepts(BOM + b'{"a": 1}', limit)
    assert es_accepts(b'{"a": "\\ud800", "b": "\\udfff\\ud800"}', limit)
    assert es_accepts(b'{"a": 123456789012345678901234567890, "b": 1e308}', limit)
    assert not es_accepts(b'{"a": NaN}', limit) and not es_accepts(b'{"a": 1e400}', limit)
    assert not es_accepts(b'{"a": 1, "a": 2}', limit)
    assert not es_accepts(b'{"a": "\xff"}', limit) and not es_accepts(b"[1]", limit)
    assert not es_accepts(b"[" * 1001 + b"]" * 1001, limit)


# ------------------------------------------------------------------------------ the fuzz corpus


CORPUS = corpus_files()


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_fuzz_regression_corpus(path: Path) -> None:
    """A finding of `python -m tests.fuzz.run`, minimised; fails while the core still has that bug."""
    entry = load_index().get(path.name)
    where = f" (found as: {entry.signature}, source={entry.pin}; by {entry.found_by})" if entry else ""
    failures = CHECKER.check(read_input(path))
    assert not failures, f"{path.name}{where}\n" + "\n".join(str(f) for f in failures)


def test_fuzz_corpus_is_indexed() -> None:
    """Each corpus file says which invariant it broke, so a report can tell open findings from fixed."""
    index = load_index()
    assert sorted(index) == [p.name for p in CORPUS]
    for entry in index.values():
        assert entry.pin == AUTO or entry.pin in SOURCES
        assert (CORPUS_DIR / entry.file).stat().st_size <= min(entry.original_bytes, 64 * 1024)
