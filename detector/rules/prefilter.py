"""Reject raw records that cannot match any loaded rule, before paying for JSON parsing.

From each compiled query we derive byte strings of which every matching record's raw JSON must contain
at least one (case-insensitively). The derivation is conservative by construction:

* Only comparisons over *verbatim* fields count: fields every normalizer copies from the raw record as a
  substring. A derived field (host.os.type from "Win", event.type from an event code) says nothing about
  the raw bytes.
* Only runs of ASCII letters, digits and `_` are used. JSON encoders never need to escape those, while
  punctuation is escaped by some encoders (`\\/`, HTML-safe `\\u003c`...). Under `:`, `in~` and `like~`
  Elasticsearch folds ASCII letters only, so a value character matches an ASCII pattern letter only if
  it is that letter in one of its two ASCII cases: an ASCII lowercase search over the raw bytes finds
  every spelling the query accepts. Non-ASCII pattern characters split runs and never enter a needle:
  an encoder may escape them (`\\u00e9`).
* A record that contains a `\\u00XX` escape for a printable ASCII character may spell a needle in an
  escaped form; it always passes.

A record passes when it holds a needle (in any ASCII case) or the escape pattern. No match can span a
newline (needles are runs of letters, digits and `_`, the escape has no newline), so `detector scan` looks
over a whole buffer of NDJSON lines at once and a line passes exactly when a match lies inside it
(`Prefilter.hits`, detector/engine.py `Engine.select`).

One pass: Hyperscan (SIMD, all patterns at once) where its wheel exists. Measured on 2.7 KB records of
tools/synth.py, per record, same run: 2.0 us per record against 3.9 us for the re searches; over a buffer
0.9 us. Without it, two re searches: the anchored needle patterns, then the escape pattern. They (about
5 us each in an earlier, busier run) beat every one-pass alternative re offers: one alternation of both
patterns (35 us: with no literal prefix, re tries a match at every `3` and every backslash),
`bytes.lower()` then `in` (13 us), a `bytes.find("32")` loop checking the letters before each hit (17 us),
and a case-insensitive regex (79 us).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

try:
    # Hyperscan (Intel's SIMD multi-pattern matcher, in python-hyperscan's wheels): every needle, in any ASCII
    # case, and the escape pattern in one pass, 2-4 times faster than the re searches below. No wheel for this
    # platform (e.g. Linux on ARM): the re searches decide exactly the same, slower.
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None  # type: ignore[assignment]

from detector.rules.eql import And, Compare, CompiledQuery, Const, Node, Not, Or

__all__ = ["MIN_NEEDLE", "Prefilter", "needles_for"]

MIN_NEEDLE = 3  # a shorter needle would pass nearly every record and only cost time
_WILDCARD_OPS = frozenset({":", "like", "like~"})
_POSITIVE_OPS = frozenset({":", "like", "like~", "==", "in", "in~"})
_RUN = re.compile(r"[A-Za-z0-9_]+")
# A JSON escape for a printable ASCII character: the record may spell a needle in escaped form.
_ASCII_ESCAPE = re.compile(rb"\\u00[2-7][0-9a-fA-F]")

# A set of alternatives (any one must occur), or None for "no constraint".
Alternatives = frozenset[str] | None


def _best_run(value: str, wildcards: bool) -> str | None:
    pieces = re.split(r"[*?]", value) if wildcards else [value]
    runs = [run for piece in pieces for run in _RUN.findall(piece)]
    if not runs:
        return None
    best = max(runs, key=len)
    return best.lower() if len(best) >= MIN_NEEDLE else None


def _leaf(cmp: Compare, verbatim: frozenset[str]) -> Alternatives:
    if cmp.op not in _POSITIVE_OPS or cmp.field not in verbatim:
        return None
    out: set[str] = set()
    for value in cmp.values:
        if not isinstance(value, str):
            return None  # numbers/booleans/null may be spelled differently in the raw record
        run = _best_run(value, cmp.op in _WILDCARD_OPS)
        if run is None:
            return None
        out.add(run)
    return frozenset(out)


def _selectivity(alts: frozenset[str]) -> tuple[int, int]:
    # Longer shortest needle first, then fewer alternatives. An empty set (cannot match) wins outright.
    if not alts:
        return (1 << 30, 0)
    return (min(len(a) for a in alts), -len(alts))


def _minimise(alts: frozenset[str]) -> frozenset[str]:
    # In a disjunction a needle containing another needle is redundant.
    return frozenset(a for a in alts if not any(b != a and b in a for b in alts))


def needles_for(node: Node, verbatim: frozenset[str]) -> Alternatives:
    """Lowercase strings one of which every record matching `node` contains; None = no constraint."""
    if isinstance(node, Compare):
        return _leaf(node, verbatim)
    if isinstance(node, Const):
        return None if node.value else frozenset()
    if isinstance(node, Not):
        return None
    if isinstance(node, Or):
        union: set[str] = set()
        for child in node.children:
            alts = needles_for(child, verbatim)
            if alts is None:
                return None
            union |= alts
        return _minimise(frozenset(union))
    if isinstance(node, And):
        best: Alternatives = None
        for child in node.children:
            alts = needles_for(child, verbatim)
            if alts is not None and (best is None or _selectivity(alts) > _selectivity(best)):
                best = alts
        return best
    raise TypeError(f"unknown AST node {node!r}")


# A compiled pattern's bound search method: search(data, pos, endpos) -> match or None.
Search = Callable[[bytes, int, int], "re.Match[bytes] | None"]
# hits(buf, start, end): sorted offsets in buf, each inside a match found in buf[start:end]; at least one in
# every line that holds a match, none in a line that holds none (no match spans a newline).
Hits = Callable[[bytes, int, int], list[int]]


@dataclass(frozen=True)
class Prefilter:
    literals: tuple[bytes, ...] | None
    # The per-record test: True when the record may match. Call it directly on a hot path.
    test: Callable[[bytes], bool]
    # The test over a buffer of whole lines (detector scan): a line passes exactly when a hit lies inside it.
    # None when the test is not expressed that way (no constraint; without Hyperscan, also a needle without
    # any caseless character).
    hits: Hits | None = None

    @classmethod
    def for_queries(cls, queries: Sequence[CompiledQuery], verbatim_fields: frozenset[str]) -> Prefilter:
        """A record passes if it may match any of the queries."""
        union: set[str] = set()
        for query in queries:
            alts = needles_for(query.ast, verbatim_fields)
            if alts is None:
                return cls(None, _always)
            union |= alts
        needles = tuple(sorted(n.encode("ascii") for n in _minimise(frozenset(union))))
        test, hits = _make_test(needles)
        return cls(needles, test, hits)

    def __call__(self, raw: bytes) -> bool:
        """True: the record may match (parse it). False: it cannot match any query."""
        return self.test(raw)

    def describe(self) -> str:
        if self.literals is None:
            return "no constraint (every record is parsed)"
        if not self.literals:
            return "no record can match (every record is skipped)"
        shown = ", ".join('"' + n.decode("ascii") + '"' for n in self.literals)
        return f"records must contain one of: {shown} (case-insensitive)"


def _always(raw: bytes) -> bool:
    return True


def _case_class(ch: str) -> str:
    if ch.isalpha():
        return f"[{ch.lower()}{ch.upper()}]"
    return re.escape(ch)


def _anchored(needle: str) -> re.Pattern[bytes] | None:
    """A regex that finds `needle` in any ASCII case without copying the record.

    It starts with the needle's longest run of caseless characters (digits, `_`), so re's fast
    literal-prefix scan does the work and only the rare hits check the letters around them
    (e.g. "32" then "client" behind it). None when the needle has no caseless character.
    """
    runs = re.findall(r"[0-9_]+", needle)
    if not runs:
        return None
    anchor = max(runs, key=len)
    at = needle.index(anchor)
    before, after = needle[:at], needle[at + len(anchor) :]
    pattern = re.escape(anchor)
    if before:
        pattern += "(?<=" + "".join(_case_class(c) for c in before) + re.escape(anchor) + ")"
    if after:
        pattern += "(?=" + "".join(_case_class(c) for c in after) + ")"
    return re.compile(pattern.encode("ascii"))


def _make_test(needles: tuple[bytes, ...], fast: bool = True) -> tuple[Callable[[bytes], bool], Hits | None]:
    """The per-record test and the buffer hits: Hyperscan's when it is installed and `fast`, else re's."""
    if not needles:
        return (lambda raw: False), _no_hits
    if fast and hyperscan is not None:
        return _hyperscan_test(needles)
    return _re_test(needles)


def _no_hits(buf: bytes, start: int, end: int) -> list[int]:
    return []


# The escape pattern's fixed prefix. Hyperscan scans for it as a literal beside the needles and each hit is
# checked against _ASCII_ESCAPE where it stands: as a regex in the same database, the pattern cost Hyperscan
# three times the scan of the needles alone on Windows telemetry, whose JSON is dense with backslashes.
_ESCAPE_PREFIX = b"\\u00"
_ESCAPE_LEN = 6  # \u00 and two more characters: _ASCII_ESCAPE's match


def _hyperscan_test(needles: tuple[bytes, ...]) -> tuple[Callable[[bytes], bool], Hits]:
    # Needles are ASCII letters, digits and `_`; Hyperscan's HS_FLAG_CASELESS folds ASCII letters only (no
    # UTF-8 mode), as Elasticsearch's case-insensitive matching does (see the module's docstring).
    expressions = [re.escape(n.decode("ascii")).encode("ascii") for n in needles] + [re.escape(_ESCAPE_PREFIX)]
    escape = len(needles)  # the id of the escape prefix
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[hyperscan.HS_FLAG_CASELESS] * len(needles) + [0],
    )
    scan = db.scan
    escaped = _ASCII_ESCAPE.match
    # A scratch space may serve one scan at a time: one per thread (the ingest loop's, tests' threads).
    local = threading.local()

    def scratch() -> Any:
        space = getattr(local, "space", None)
        if space is None:
            space = local.space = hyperscan.Scratch(db)
        return space

    def test(raw: bytes) -> bool:
        def on_match(ident: int, first: int, after: int, flags: int, context: Any) -> bool:
            # One needle, or one real escape, decides the record: stop the scan.
            return ident != escape or escaped(raw, after - len(_ESCAPE_PREFIX)) is not None

        try:
            scan(raw, match_event_handler=on_match, scratch=scratch())
        except hyperscan.ScanTerminated:
            return True
        return False

    def hits(buf: bytes, start: int, end: int) -> list[int]:
        found: list[int] = []
        add = found.append

        def on_match(ident: int, first: int, after: int, flags: int, context: Any) -> None:
            if ident != escape:
                add(start + after - 1)  # the match's last byte: Hyperscan reports where a match ends
                return
            at = start + after - len(_ESCAPE_PREFIX)
            if escaped(buf, at, end) is not None:
                add(at + _ESCAPE_LEN - 1)

        scan(memoryview(buf)[start:end], match_event_handler=on_match, scratch=scratch())  # type: ignore[type-var]
        found.sort()
        return found

    return test, hits


def _re_test(needles: tuple[bytes, ...]) -> tuple[Callable[[bytes], bool], Hits | None]:
    escape_search = _ASCII_ESCAPE.search
    anchored = [_anchored(n.decode("ascii")) for n in needles]
    searches = tuple(p.search for p in anchored if p is not None)
    lowered = tuple(n for n, p in zip(needles, anchored, strict=True) if p is None)
    # Needles first: a record holding one is found without the escape scan.
    over_buffers = None if lowered else _re_hits((*searches, escape_search))

    if len(searches) == 1 and not lowered:
        (search,) = searches

        def one(raw: bytes) -> bool:
            # Measured on 1.6-5 KB records: the anchored scan plus the escape scan cost about half to
            # two thirds of orjson.loads; `needle in raw.lower()` alone costs as much as both.
            return search(raw) is not None or escape_search(raw) is not None

        return one, over_buffers

    def many(raw: bytes) -> bool:
        for search in searches:
            if search(raw) is not None:
                return True
        if lowered:
            low = raw.lower()
            for n in lowered:
                if n in low:
                    return True
        # Only reached when no needle was found: the record may spell one with \u escapes.
        return escape_search(raw) is not None

    return many, over_buffers


def _re_hits(searches: tuple[Search, ...]) -> Hits:
    def hits(buf: bytes, start: int, end: int) -> list[int]:
        found: list[int] = []
        find = buf.find
        for search in searches:
            pos = start
            while (m := search(buf, pos, end)) is not None:
                found.append(m.start())
                pos = find(b"\n", m.start(), end) + 1  # one hit per line is enough: go on from the next line
                if not pos:
                    break
        found.sort()
        return found

    return hits
