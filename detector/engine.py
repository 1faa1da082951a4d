"""The detection core every mode shares: raw record bytes -> ECS events -> rule verdicts -> alerts.

Pure functions over bytes and dicts: no I/O, no Kafka, no Faust. `detector scan` and the streaming
worker both call `Engine.process`, so a record gives the same verdict and the same alert id in both.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any

import orjson

from detector.alerts.builder import build_alert, record_digest
from detector.prevalence import Candidate, candidate_of, candidate_query
from detector.rules.exceptions import ExceptionLists
from detector.rules.model import Rule
from detector.rules.prefilter import Prefilter
from detector.sources import SOURCES, VERBATIM_FIELDS, Ignored, NormalizeError, UnknownSourceError, normalize
from detector.sources.no_event import no_event_reason

DEFAULT_MAX_RECORD_BYTES = 1 << 20

# Rejection reasons: short, stable, usable as a Prometheus label and a dead-letter header.
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TOO_DEEP = "too_deep"
BAD_FIELD = "bad_field_type"
UNKNOWN_SOURCE = "unknown_source"
INTERNAL = "internal_error"  # a bug of ours, caught so that one record never stops the stream
REASONS = (TOO_LARGE, NOT_UTF8, NOT_JSON, NOT_OBJECT, TOO_DEEP, BAD_FIELD, UNKNOWN_SOURCE, INTERNAL)

_BOM = b"\xef\xbb\xbf"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DETAIL_LIMIT = 300
_NESTING_LIMIT = 1024  # orjson's, so that both parse paths refuse the same records


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # one of REASONS
    detail: str  # a sentence for people


@dataclass(slots=True)
class Outcome:
    """What became of one raw record. Treat it as read-only: prefiltered outcomes are shared."""

    source: str | None = None
    prefiltered: bool = False  # rejected on its bytes: it cannot match any loaded rule
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejection: Rejection | None = None
    # Malformed values dropped while normalising (field, why): the record was still evaluated without them.
    ignored: list[Ignored] = field(default_factory=list)
    # Set when a recognised, unrejected record yielded no event: one of detector.sources.no_event's
    # NO_EVENT_REASONS, so that such a record is counted rather than passing as a clean one.
    no_event: str | None = None
    # Alerts an exception item dropped (rule exceptions, detector/rules/exceptions.py): (list_id, item_id) each.
    excluded: list[tuple[str, str]] = field(default_factory=list)
    # Candidate executions (detector/prevalence.py): events the rules' name clauses select whatever the path,
    # each with the alerts raised on it; they feed fleet prevalence and first-seen.
    candidates: list[Candidate] = field(default_factory=list)


_FIRST_BYTE, _LAST_BYTE = itemgetter(0), itemgetter(-1)
_OPENS, _CLOSES = {ord("{")}, {ord("}")}


def _framed_as_object(raw: bytes) -> bool:
    if raw[:1] == b"{" and (raw[-1:] == b"}" or raw[-2:] == b"}\n"):
        return True
    body = raw.strip()  # rare: only records with surrounding whitespace pay for the copy
    return body[:1] == b"{" and body[-1:] == b"}"


class Engine:
    """Compiled rules plus the prefilter derived from them.

    `source` pins every record to one source (a topic's, or `--source`); otherwise each record's
    source is detected from its content. `use_prefilter=False` parses every record, which validates
    all input at the cost of speed (records that fail framing are always parsed, see `process`).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        use_prefilter: bool = True,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        exceptions: ExceptionLists | None = None,
    ) -> None:
        if not rules:
            raise ValueError("at least one rule is required")
        self.rules = tuple(rules)
        self.max_record_bytes = max_record_bytes
        self.candidate_queries = tuple(candidate_query(r.compiled) for r in rules)
        # Candidates must pass the prefilter too: its needles are those every rule and candidate query needs.
        queries = [r.compiled for r in rules] + list(self.candidate_queries)
        self.prefilter = Prefilter.for_queries(queries, VERBATIM_FIELDS)
        self.use_prefilter = use_prefilter and self.prefilter.literals is not None
        self._prefilter_test = self.prefilter.test
        self._prefiltered: dict[str | None, Outcome] = {}
        # Replaced whole (never mutated) when the exceptions file changes: one assignment, read once per record.
        self.exceptions = exceptions

    def to_parse(self, raws: Sequence[bytes]) -> set[int] | None:
        """Indices of the records `process` would parse rather than skip as prefiltered, for a batch at once.

        The prefilter looks once over the records joined by newlines (no match can span one), so a batch costs
        one scan, not one per record: Hyperscan releases the GIL for each scan, and a release per record would
        hand the GIL to the worker's other threads thousands of times a second. None when the prefilter cannot
        look at a buffer: give every record to `process`.
        """
        find_hits = self.prefilter.hits
        if not self.use_prefilter or find_hits is None:
            return None
        buf = b"\n".join(raws)
        parse: set[int] = set()
        hits = find_hits(buf, 0, len(buf))
        lengths = list(map(len, raws))
        if hits:
            # Record i ends just before ends[i] + i: its length and those before it, plus a newline for each
            # record before it. The sum runs in C (with a Python lambda per record adding the newlines, it cost a
            # third of the scan); the newlines are added only on the bisection's few steps per hit.
            ends = list(accumulate(lengths))
            parse.update(bisect_right(range(len(raws)), h, key=lambda i: ends[i] + i) for h in hits)
        # The framing and size checks run in C over the whole batch; only a batch that holds a record failing
        # them pays for the per-record loop that finds which. The sets of first and last bytes cost half what
        # bytes.startswith/endswith per record did; a record ending "}\n" takes the endswith check.
        if not raws:
            return parse
        if (
            max(lengths) <= self.max_record_bytes
            and min(lengths) > 0  # the byte sets below need a byte
            and set(map(_FIRST_BYTE, raws)) == _OPENS
            and (set(map(_LAST_BYTE, raws)) == _CLOSES or all(map(bytes.endswith, raws, repeat((b"}", b"}\n")))))
        ):
            return parse
        limit = self.max_record_bytes
        for i, raw in enumerate(raws):
            if len(raw) > limit or not _framed_as_object(raw):
                parse.add(i)
        return parse

    def process(
        self,
        raw: bytes,
        source: str | None = None,
        *,
        keep_events: bool = False,
        created: str | None = None,
    ) -> Outcome:
        if source is not None and source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        if len(raw) > self.max_record_bytes:
            return Outcome(
                source=source,
                rejection=Rejection(
                    TOO_LARGE, f"record is {len(raw)} bytes, over the {self.max_record_bytes}-byte limit"
                ),
            )
        # A record framed like a JSON object that lacks every needle cannot match. Anything not framed
        # like an object is parsed, so that garbage gets its precise rejection reason, not a silent skip.
        if self.use_prefilter and not self._prefilter_test(raw) and _framed_as_object(raw):
            # The hot path: one shared, never-mutated outcome per source instead of an allocation.
            skipped = self._prefiltered.get(source)
            if skipped is None:
                skipped = self._prefiltered[source] = Outcome(source=source, prefiltered=True)
            return skipped
        out = Outcome(source=source)
        try:
            out.rejection = self._parse_and_detect(raw, source, out, keep_events, created)
        except Exception as exc:  # one record must never stop a scan or the stream
            out.alerts = []
            out.excluded = []
            out.candidates = []
            out.rejection = Rejection(INTERNAL, _clip(f"internal error on this record ({type(exc).__name__}: {exc})"))
        return out

    def select(self, buf: bytes, start: int, end: int) -> tuple[int, int, list[tuple[int, int, int]]]:
        """The NDJSON lines of `buf[start:end]` that `process` would not skip unparsed, found over the whole buffer.

        `buf[start:end]` holds whole lines, each ending with `\\n`. Returns (lines, records, parse): the number
        of lines, how many of them are records (not blank nor only whitespace, which a reader skips), and
        (index of the line from 0, start, end) of each record `process` must see, in order: those holding a
        prefilter match and those not framed like a JSON object. Every other record is one for which
        `process` returns a prefiltered outcome. The prefilter looks once over the buffer (a match never
        spans a newline), so a line costs a `find` and two byte comparisons, not a call and a copy.
        Only when `use_prefilter` and `prefilter.hits is not None`.
        """
        find_hits = self.prefilter.hits
        if not self.use_prefilter or find_hits is None:
            raise ValueError("select needs the prefilter and its buffer hits")
        if end > start and buf[end - 1] != 0x0A:
            raise ValueError("select needs whole lines: the range must end just after a newline")
        hits = find_hits(buf, start, end)
        k, nhits = 0, len(hits)
        hit = hits[0] if hits else end
        find = buf.find
        parse: list[tuple[int, int, int]] = []
        index = records = 0
        pos = start
        while pos < end:
            nl = find(b"\n", pos, end)
            if hit < nl:
                parse.append((index, pos, nl))
                records += 1
                while k < nhits and hits[k] < nl:  # the line's other hits
                    k += 1
                hit = hits[k] if k < nhits else end
            elif buf[pos] == 0x7B and (buf[nl - 1] == 0x7D or (buf[nl - 1] == 0x0D and buf[nl - 2] == 0x7D)):
                records += 1  # `{...}` or `{...}\r`: framed, and no match inside: prefiltered
            else:
                line = buf[pos:nl]
                if line and not line.isspace():
                    records += 1
                    if not _framed_as_object(line):
                        parse.append((index, pos, nl))
            index += 1
            pos = nl + 1
        return index, records, parse

    def _parse_and_detect(
        self,
        raw: bytes,
        source: str | None,
        out: Outcome,
        keep_events: bool,
        created: str | None,
    ) -> Rejection | None:
        record, rejection = parse_record(raw)
        if rejection is not None:
            return rejection
        if not isinstance(record, dict):
            return Rejection(NOT_OBJECT, f"a record must be a JSON object, got {type(record).__name__}")
        try:
            src, events = normalize(record, source, out.ignored)
        except UnknownSourceError as exc:
            return Rejection(UNKNOWN_SOURCE, _clip(str(exc)))
        except NormalizeError as exc:
            return Rejection(BAD_FIELD, _clip(str(exc)))
        except RecursionError:
            return Rejection(TOO_DEEP, "record is nested too deeply to normalise")
        out.source = src
        out.no_event = no_event_reason(events)
        if keep_events:
            out.events = events
        digest: str | None = None
        exceptions = self.exceptions
        for i, event in enumerate(events):
            raised = len(out.alerts)
            for rule in self.rules:
                if rule.compiled.matches(event):
                    if exceptions is not None and (hit := exceptions.excluded_by(event)) is not None:
                        out.excluded.append(hit)
                        continue
                    digest = digest or record_digest(raw)
                    alert = build_alert(rule, event, source=src, digest=digest, index=i, created=created)
                    orjson.dumps(alert)  # an alert that cannot be written must fail here, inside the guard
                    out.alerts.append(alert)
            if len(out.alerts) > raised or any(q.matches(event) for q in self.candidate_queries):
                candidate = candidate_of(event, out.alerts[raised:])
                if candidate is not None:
                    out.candidates.append(candidate)
        return None


def parse_record(raw: bytes) -> tuple[Any, Rejection | None]:
    """Parse a record as Elasticsearch's JSON parser (Jackson) would accept it: (value, None) or (None, why).

    orjson is strict where Jackson is not: Jackson skips a UTF-8 byte-order mark and accepts an
    unpaired UTF-16 surrogate escape ("\\ud800"), which Lucene indexes as U+FFFD. An attacker who puts
    one into a logged command line must not turn the record into a dead letter, so such records are
    parsed again leniently (rare: only after orjson refused them).
    """
    body = raw[3:] if raw.startswith(_BOM) else raw
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
    lowered = msg.lower()
    if "surrogate in string" in lowered:
        return _parse_with_lone_surrogates(body)
    if "is infinity when parsed" in lowered:
        # A number beyond a double (a 400-digit integer), which Jackson reads as a BigInteger.
        return _parse_big_numbers(body)
    if "depth" in lowered or "recursion" in lowered:
        return None, Rejection(TOO_DEEP, f"JSON nesting is deeper than the limit of {_NESTING_LIMIT} levels")
    if "utf-8" in lowered:
        return None, Rejection(NOT_UTF8, _clip(f"record is not valid UTF-8: {msg}"))
    return None, Rejection(NOT_JSON, _clip(f"not valid JSON: {msg}"))


# Inside a JSON string every backslash starts an escape, and backslashes pair off from the left; so a
# surrogate escape is real when an even run of backslashes (escaped backslashes, kept as they are) stands
# before it. A real pair is kept, a lone half becomes U+FFFD. The regex engine skips everything else at C
# speed: Python runs only per surrogate escape, never per backslash (a command line of backslashes is cheap).
_HIGH = rb"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_SURROGATE = re.compile(rb"(?<!\\)((?:\\\\)*+)(?:(" + _HIGH + _LOW + rb")|" + _HIGH + rb"|" + _LOW + rb")")


def _fix_surrogate(m: re.Match[bytes]) -> bytes:
    return m.group(1) + (m.group(2) or b"\\ufffd")


def _parse_with_lone_surrogates(body: bytes) -> tuple[Any, Rejection | None]:
    # Rewriting the escapes in the bytes keeps orjson (its limits, its number handling) as the one parser.
    fixed = _SURROGATE.sub(_fix_surrogate, body)
    try:
        return orjson.loads(fixed), None
    except orjson.JSONDecodeError:
        return parse_record(fixed) if fixed != body else (None, Rejection(NOT_JSON, "not valid JSON"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _lenient_int(text: str) -> Any:
    # orjson (and so the normal path) reads integers beyond 64 bits as floats; so does this path, which
    # also keeps Python's int() away from its 4300-digit limit.
    number = int(text) if len(text) <= 19 else float(text)
    return number if -(1 << 64) < number < (1 << 64) else float(text)


def _parse_big_numbers(body: bytes) -> tuple[Any, Rejection | None]:
    # Python's parser recurses once per nesting level: give it room beyond orjson's limit (frames of the
    # caller's stack are not an exact measure of its recursion depth), then apply the limit on the result.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _stack_depth() + 2 * _NESTING_LIMIT + 100))
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_int=_lenient_int)
    except UnicodeDecodeError as exc:
        return None, Rejection(NOT_UTF8, _clip(f"record is not valid UTF-8: {exc}"))
    except RecursionError:
        return None, Rejection(TOO_DEEP, f"JSON nesting is deeper than the limit of {_NESTING_LIMIT} levels")
    except ValueError as exc:
        return None, Rejection(NOT_JSON, _clip(f"not valid JSON: {exc}"))
    finally:
        sys.setrecursionlimit(limit)
    depth, lone_surrogate = _inspect(value)
    if depth > _NESTING_LIMIT:
        return None, Rejection(TOO_DEEP, f"JSON nesting is deeper than the limit of {_NESTING_LIMIT} levels")
    if lone_surrogate:
        return _parse_with_lone_surrogates(body)
    return value, None


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 1
    while frame.f_back is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _inspect(value: Any) -> tuple[int, bool]:
    """(nesting depth, whether any string holds a lone surrogate), level by level, without recursion."""
    depth, lone, level = 0, False, [value]
    while level:
        below: list[Any] = []
        for item in level:
            cls = item.__class__
            if cls is list:
                below += item
            elif cls is dict:
                below += item
                below += item.values()
            elif cls is str and not lone:
                lone = _LONE_SURROGATE.search(item) is not None
        if len(below) or any(i.__class__ in (list, dict) for i in level):
            depth += 1
        level = below
    return depth, lone


def _clip(text: str) -> str:
    # Details travel as dead-letter headers and summary lines; attacker-sized text must not.
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."
