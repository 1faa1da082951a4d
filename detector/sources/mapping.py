"""Vendor mappings as data: one generic mapper applies a declarative mapping (a TOML file) to a record.

A mapping says, row by row, which ECS field comes from which vendor field through which named converter
(`keyword`, `hex_long`, `epoch_ms`, `basename`, `lower`, ...), optionally through a lookup table and
under conditions. What data cannot say (a record layout from an older shipper, a vendor's own script)
is a built-in step named by the mapping; a user's mapping file may not name one, so loading a file never
executes anything. The built-in sources are files in detector/sources/maps/, in the format users write.

Fields are read with Elasticsearch's semantics (detector/fields.py): dotted and nested keys are the same
field, arrays flatten, and a field holds all its values. A row that finds several values writes them
all, so a rule matches any of them, as it would in Elasticsearch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from detector.fields import node, values
from detector.sources.base import (
    ECS_SUBSET,
    Event,
    NormalizeError,
    Record,
    Source,
    filetime_to_iso,
    iso_to_ms,
    malformed,
    ms_epoch_to_iso,
    opt_int,
    opt_str,
    put,
    seconds_epoch_to_iso,
    split_domain_user,
    win_basename,
)
from detector.sources.no_event import not_understood

__all__ = [
    "CONVERTERS",
    "Condition",
    "MappingError",
    "Row",
    "SourceMap",
    "as_source",
    "builtin_mapping",
    "load_mapping",
    "parse_mapping",
]


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the key."""


# --- converters -------------------------------------------------------------------------------------
# A parser reads one raw value (any JSON type) into a typed value or None (absent or malformed: the
# malformed ones are reported through base.malformed, as Elastic's ignore_malformed drops them).
Parser = Callable[[Any, str], Any]
# A transform maps a parsed keyword to another value or None.
Transform = Callable[[str], Any]


def _keyword(value: Any, where: str) -> str | None:
    return opt_str(value, where)


def _keyword_or_dash(value: Any, where: str) -> str | None:
    # Windows event logs and Sysmon write "-" for "no value"; their pipelines drop it.
    return opt_str(value, where, dash_is_empty=True)


def _long(value: Any, where: str) -> int | None:
    return opt_int(value, where)


def _hex_long(value: Any, where: str) -> int | None:
    return opt_int(value, where, hex_prefixed=True)


def _unsigned_long(value: Any, where: str) -> int | None:
    number = opt_int(value, where)
    if number is not None and number < 0:
        malformed(where, "{} is not an unsigned process id", value)
        return None
    return number


def _epoch_s(value: Any, where: str) -> str | None:
    n = opt_int(value, where)
    return None if n is None else seconds_epoch_to_iso(n, where)


def _epoch_s_or_ms(value: Any, where: str) -> str | None:
    # CrowdStrike's UTCTimestamp: seconds below 1e10, else milliseconds (the pipeline's own test).
    n = opt_int(value, where)
    if n is None:
        return None
    return seconds_epoch_to_iso(n, where) if n < 10**10 else ms_epoch_to_iso(n, where)


def _epoch_ms_or_iso(value: Any, where: str) -> str | None:
    if isinstance(value, str) and not value.strip().isdigit():
        return iso_to_ms(value, where)
    return ms_epoch_to_iso(value, where)


PARSERS: dict[str, Parser] = {
    "keyword": _keyword,
    "keyword_or_dash": _keyword_or_dash,
    "long": _long,
    "hex_long": _hex_long,
    "unsigned_long": _unsigned_long,
    "iso8601": iso_to_ms,
    "epoch_ms": ms_epoch_to_iso,
    "epoch_s": _epoch_s,
    "epoch_s_or_ms": _epoch_s_or_ms,
    "epoch_ms_or_iso8601": _epoch_ms_or_iso,
    "filetime": filetime_to_iso,
}


def _path_name(text: str) -> str | None:
    # CrowdStrike's "process name" script: split on the separator the path starts with; a path that
    # starts with neither (say "C:\\...") is taken whole.
    if text.startswith("\\"):
        return text.split("\\")[-1] or None
    if text.startswith("/"):
        return text.split("/")[-1] or None
    return text


TRANSFORMS: dict[str, Transform] = {
    "lower": str.lower,
    "upper": str.upper,
    "basename": lambda text: win_basename(text) or None,
    "after_last_backslash": lambda text: (text[text.rfind("\\") + 1 :] or None) if "\\" in text else None,
    "leading_separator_name": _path_name,
    "domain": lambda text: split_domain_user(text)[0],
    "user": lambda text: split_domain_user(text)[1] or None,
    "hyphenate": lambda text: text.replace(" ", "-") or None,
    "upn_domain": lambda text: text.rpartition("@")[2] or None if "@" in text else None,
}
CONVERTERS = (*PARSERS, *TRANSFORMS)

# The prefilter's contract (detector/sources/__init__.py): fields every source sets to text of the raw record.
VERBATIM_FIELDS: frozenset[str] = frozenset(
    {
        "process.name",
        "process.executable",
        "process.command_line",
        "process.pe.original_file_name",
        "process.parent.name",
        "process.parent.executable",
        "process.parent.command_line",
        "user.name",
        "user.domain",
    }
)

# Converters whose output is a substring of the raw record, up to ASCII case (the prefilter's contract:
# detector/sources/__init__.py VERBATIM_FIELDS). A row writing a verbatim field may use only these.
VERBATIM_SAFE = frozenset(
    {
        "keyword",
        "keyword_or_dash",
        "basename",
        "after_last_backslash",
        "leading_separator_name",
        "domain",
        "user",
        "upn_domain",
    }
)
_TIME_PARSERS = frozenset({"iso8601", "epoch_ms", "epoch_s", "epoch_s_or_ms", "epoch_ms_or_iso8601", "filetime"})


# --- the model --------------------------------------------------------------------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, Mapping),
    "array": lambda v: isinstance(v, list),
}


@dataclass(frozen=True)
class Condition:
    """A test on the values of a raw field (`field`) or of the event built so far (`ecs`).

    With several fields, the condition holds when it holds for any of them. Tests combine with AND:
    `exists` (some value / none), `type` (the field's raw value has that JSON type), `equals` (a value
    equals one of these), `prefix` (a value starts with one of these), `contains` (a value contains one
    of these), `key_prefix` (a top-level key starts with one of these), `key` (the record has one of
    these top-level keys, whatever its value, null included). `ignore_case` compares lower-cased;
    `negate` inverts the result.
    `parses` (some value reads through that converter; a malformed one is reported) and `other_than`
    (some value is neither "" nor one of these) test what a field holds rather than which value.
    """

    fields: tuple[str, ...] = ()
    on_event: bool = False
    exists: bool | None = None
    type: str | None = None
    equals: tuple[str, ...] | None = None
    prefix: tuple[str, ...] | None = None
    key_prefix: tuple[str, ...] | None = None
    contains: tuple[str, ...] | None = None
    key: tuple[str, ...] | None = None
    ignore_case: bool = False
    negate: bool = False
    parses: str | None = None
    other_than: tuple[str, ...] | None = None

    def holds(self, record: Mapping[str, Any], event: Event) -> bool:
        result = self._test(record, event)
        return not result if self.negate else result

    def _test(self, record: Mapping[str, Any], event: Event) -> bool:
        if self.key_prefix is not None and not any(
            isinstance(k, str) and k.startswith(self.key_prefix) for k in record
        ):
            return False
        if self.key is not None and not any(k in record for k in self.key):
            return False
        if not self.fields:
            return True
        doc = event if self.on_event else record
        return any(self._test_field(doc, name) for name in self.fields)

    def _test_field(self, doc: Mapping[str, Any], name: str) -> bool:
        if self.type is not None:
            raw = node(doc, name)
            if raw is None or not _TYPES[self.type](raw):
                return False
        found = values(doc, name)
        if self.exists is not None and bool(found) != self.exists:
            return False
        if self.parses is not None and all(PARSERS[self.parses](v, name) is None for v in found):
            return False
        if self.other_than is not None and all(
            v == "" or (isinstance(v, str | int) and not isinstance(v, bool) and self._text(v) in self.other_than)
            for v in found
        ):
            return False
        if self.equals is None and self.prefix is None and self.contains is None:
            return True
        for value in found:
            if isinstance(value, bool) or not isinstance(value, str | int):
                continue
            text = str(value)
            if self.ignore_case:
                text = text.lower()
            if self.equals is not None and text in self.equals:
                return True
            if self.prefix is not None and text.startswith(self.prefix):
                return True
            if self.contains is not None and any(part in text for part in self.contains):
                return True
        return False

    def _text(self, value: str | int) -> str:
        return str(value).lower() if self.ignore_case else str(value)


def _holds(c: Condition, record: Mapping[str, Any], event: Event, tested: dict[int, bool]) -> bool:
    if c.on_event:  # the event changes row by row
        return c.holds(record, event)
    result = tested.get(id(c))
    if result is None:
        result = tested[id(c)] = c.holds(record, event)
    return result


@dataclass(frozen=True)
class Row:
    """ECS field `to` <- the first of `sources` with a value, through `convert` (and `table`), when every
    condition in `when` holds. `value` sets a constant instead. A row that yields nothing leaves the
    field as earlier rows set it; `if_unset` rows never overwrite."""

    to: str
    sources: tuple[str, ...] = ()
    value: Any = None
    convert: tuple[str, ...] = ("keyword",)
    table: str | None = None
    pick: str | None = None
    default: Any = None
    when: tuple[Condition, ...] = ()
    if_unset: bool = False
    as_list: bool = False
    note: str = ""
    # Resolved once from `convert`, so that converting a value is calls, not name lookups.
    parse: Parser = field(init=False, repr=False, compare=False)
    transforms: tuple[Transform, ...] = field(init=False, repr=False, compare=False)
    first_only: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head = self.convert[0]
        parses = head in PARSERS
        object.__setattr__(self, "parse", PARSERS[head] if parses else _keyword)
        object.__setattr__(self, "transforms", tuple(TRANSFORMS[n] for n in self.convert[1 if parses else 0 :]))
        # A timestamp or a table lookup takes the first value; other fields keep every value.
        object.__setattr__(self, "first_only", head in _TIME_PARSERS or self.table is not None)


@dataclass(frozen=True)
class SourceMap:
    """One source's mapping, as loaded from its TOML file."""

    name: str
    description: str
    follows: str = ""
    detect: tuple[tuple[Condition, ...], ...] = ()
    envelope: str | None = None
    require: tuple[Condition, ...] = ()
    only: tuple[Condition, ...] = ()
    rows: tuple[Row, ...] = ()
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    before: str | None = None
    after: str | None = None
    unset: tuple[str, ...] = ()
    origin: str = "<builtin>"

    # --- applying it ---------------------------------------------------------------------------------

    def detects(self, record: Record) -> bool:
        """The record carries this source's markers: any [[detect]] block whose conditions all hold."""
        return any(all(c.holds(record, {}) for c in block) for block in self.detect)

    def normalize(self, record: Record) -> list[Event]:
        """One raw record -> ECS events, as the mapping says (its `field_table` lists the fields)."""
        if self.before is not None:
            handled = BEFORE[self.before](record, self)
            if isinstance(handled, list):
                return handled
            record = handled
        if self.envelope is not None and self.envelope in record:
            return self._envelope(record)
        return self.map_one(record)

    def map_one(
        self, record: Mapping[str, Any], where: str = "", overrides: Mapping[str, Any] | None = None
    ) -> list[Event]:
        """One record -> [event]; [] when `only` fails (not covered), flagged not-understood when
        `require` fails. `overrides` replaces the value of constant rows (a caller's module name)."""
        if not all(c.holds(record, {}) for c in self.require):
            return not_understood()
        if not all(c.holds(record, {}) for c in self.only):
            return []
        event: Event = {}
        # Many rows test the same condition on the record, or read the same vendor field (a process block
        # and its alternative): each is worked out once per record.
        tested: dict[int, bool] = {}
        read: dict[str, list[Any]] = {}
        for row in self.rows:
            if overrides is not None and row.to in overrides and row.value is not None:
                put(event, row.to, overrides[row.to])
                continue
            if row.when and not all(_holds(c, record, event, tested) for c in row.when):
                continue
            if row.if_unset and values(event, row.to):
                continue
            put(event, row.to, self._value(row, record, where, read))
        if self.after is not None:
            AFTER[self.after](record, event)
        return [event]

    def _value(self, row: Row, record: Mapping[str, Any], where: str, read: dict[str, list[Any]]) -> Any:
        if row.value is not None:
            return list(row.value) if isinstance(row.value, list) else row.value
        for source in row.sources:
            found = read.get(source)
            if found is None:
                found = read[source] = values(record, source)
            if not found:
                continue
            at = where + source
            out = [v for v in (self._convert(row, v, at) for v in found) if v is not None]
            if not out:
                continue
            if row.first_only:
                return out[0]
            if row.as_list:
                return out
            return out[0] if len(out) == 1 else out
        return row.default if row.table is None else None

    def _convert(self, row: Row, raw: Any, where: str) -> Any:
        value = row.parse(raw, where)
        for transform in row.transforms:
            if value is None:
                return None
            value = transform(value)
        if value is None or row.table is None:
            return value
        hit = self.tables[row.table].get(str(value))
        if hit is None:
            return row.default
        if row.pick is not None:
            hit = hit.get(row.pick) if isinstance(hit, Mapping) else None
        # A copy: the table's own list must never be shared with (and mutated through) an event.
        return list(hit) if isinstance(hit, list) else hit

    def _envelope(self, record: Record) -> list[Event]:
        items = record[self.envelope]  # type: ignore[index]
        if not isinstance(items, list):
            raise NormalizeError(f"{self.envelope}: expected a list of records, got {type(items).__name__}")
        # A batch carries records from many devices: one broken record must not hide the others, so it
        # is dropped (and reported as ignored) and its siblings are still normalised.
        out: list[Event] = []
        for n, item in enumerate(items):
            where = f"{self.envelope}[{n}]"
            if not isinstance(item, Mapping):
                malformed(where, f"expected an object, got {type(item).__name__}")
                continue
            try:
                out.extend(self.map_one(item, where + "."))
            except NormalizeError as exc:  # its message already names <envelope>[n].<field>
                malformed(where, str(exc).removeprefix(where + ".").removeprefix(where + ": "))
            except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
                malformed(where, f"unexpected shape ({type(exc).__name__}: {exc})")
        return out

    # --- describing it -----------------------------------------------------------------------------

    def field_table(self) -> list[tuple[str, str]]:
        """(ECS field, where it comes from) per row, for docstrings, `detector sources` and the README."""
        out: list[tuple[str, str]] = []
        for row in self.rows:
            if row.value is not None:
                text = f"{row.value!r}"
            else:
                text = " else ".join(row.sources)
                conv = [c for c in row.convert if c != "keyword"]
                if conv:
                    text += f" ({', '.join(conv)})"
                if row.table is not None:
                    text += f" via table {row.table}" + (f".{row.pick}" if row.pick else "")
            if row.when:
                text += " when " + " and ".join(_describe_condition(c) for c in row.when)
            if row.if_unset:
                text += " if unset"
            if row.note:
                text += f" [{row.note}]"
            out.append((row.to, text))
        return out


def _describe_condition(c: Condition) -> str:
    what = " or ".join(("ecs:" if c.on_event else "") + f for f in c.fields) or "record"
    parts = []
    if c.exists is not None:
        parts.append("exists" if c.exists else "absent")
    if c.type is not None:
        parts.append(f"is {c.type}")
    if c.equals is not None:
        parts.append("in " + "/".join(c.equals))
    if c.prefix is not None:
        parts.append("starts " + "/".join(c.prefix))
    if c.contains is not None:
        parts.append("contains " + "/".join(c.contains))
    if c.key_prefix is not None:
        parts.append("has keys " + "/".join(p + "*" for p in c.key_prefix))
    if c.key is not None:
        parts.append("has key " + "/".join(c.key))
    if c.parses is not None:
        parts.append(f"reads as {c.parses}")
    if c.other_than is not None:
        parts.append("other than " + "/".join(map(repr, c.other_than)))
    text = f"{what} {' '.join(parts)}".strip()
    return f"not ({text})" if c.negate else text


# --- built-in steps (what data cannot say); a user's mapping file cannot name them -------------------

BeforeStep = Callable[[Record, SourceMap], "Record | list[Event]"]
AfterStep = Callable[[Mapping[str, Any], Event], None]
BEFORE: dict[str, BeforeStep] = {}
AFTER: dict[str, AfterStep] = {}


def before_step(name: str) -> Callable[[BeforeStep], BeforeStep]:
    def register(fn: BeforeStep) -> BeforeStep:
        BEFORE[name] = fn
        return fn

    return register


def after_step(name: str) -> Callable[[AfterStep], AfterStep]:
    def register(fn: AfterStep) -> AfterStep:
        AFTER[name] = fn
        return fn

    return register


# The ECS subset copied from records that are already ECS (`copy_ecs = true`): same field in and out.
_KIND_CONVERTER = {"ts": "iso8601", "int": "long", "list": "keyword", "str": "keyword"}
ECS_COPY_ROWS: tuple[Row, ...] = tuple(
    Row(to=name, sources=(name,), convert=(_KIND_CONVERTER[kind],), as_list=kind == "list", note="copied")
    for name, kind in ECS_SUBSET
)


# --- loading ----------------------------------------------------------------------------------------

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_FIELD = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_\-@.]{0,254}")
_MAX_FILE_BYTES = 1 << 20
_MAX_ROWS = 2000


def load_mapping(path: str | Path, *, builtin: bool = False) -> SourceMap:
    """Load and validate a mapping file; MappingError names the file and what is wrong."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise MappingError(f"{p}: {size} bytes, over the {_MAX_FILE_BYTES}-byte limit for a mapping file")
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise MappingError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise MappingError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_mapping(text, origin=str(p), builtin=builtin)


def parse_mapping(text: str, *, origin: str = "<text>", builtin: bool = False) -> SourceMap:
    try:
        doc = _toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{origin}: not valid TOML: {exc}") from None
    try:
        return _build(doc, origin, builtin)
    except MappingError as exc:
        raise MappingError(f"{origin}: {exc}") from None


def cache_dir() -> Path | None:
    """Where parsed mapping files are kept between runs: $DETECTOR_CACHE_DIR, else the XDG cache. None when
    DETECTOR_CACHE_DIR is set empty (no cache)."""
    configured = os.environ.get("DETECTOR_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home == "~":  # no HOME and no passwd entry (a container's arbitrary uid): not a relative "~" dir
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "netsupport-detector"


def _toml(text: str) -> dict[str, Any]:
    """tomllib.loads(text), through a cache of parsed documents keyed by the text's SHA-256.

    Parsing the eight built-in mappings (120 KB of TOML) took 24 ms of every command's ~150 ms start-up;
    reading the cached JSON takes under 1. A stale entry cannot be read (the key is the content), and a cache
    that cannot be read or written costs only the parse: the document is still validated by _build either way.
    """
    where = cache_dir()
    if where is None:
        return tomllib.loads(text)
    path = where / "mappings" / f"{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}.json"
    try:
        cached = orjson.loads(path.read_bytes())
        if isinstance(cached, dict):
            return cached
    except (OSError, orjson.JSONDecodeError):
        pass
    doc = tomllib.loads(text)
    try:
        encoded = orjson.dumps(doc)
        if orjson.loads(encoded) != doc:  # a TOML date or a NaN: JSON would not give it back as it was
            return doc
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a concurrent reader (scan --jobs) sees the whole file or none.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except (OSError, TypeError):
        return doc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(encoded)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return doc


def _build(doc: dict[str, Any], origin: str, builtin: bool) -> SourceMap:
    _keys(doc, "top level", {"source", "detect", "emit", "map", "tables", "steps"})
    src = _table(doc.get("source"), "[source]", required=True)
    _keys(src, "[source]", {"name", "description", "follows", "envelope", "unset", "copy_ecs"})
    name = _str(src.get("name"), "source.name", required=True)
    if not _NAME.fullmatch(name):
        raise MappingError(f"source.name {name!r} must be lower-case letters, digits and _ (start with a letter)")
    description = _str(src.get("description"), "source.description", required=True)
    envelope = _str(src.get("envelope"), "source.envelope")
    unset = tuple(_strs(src.get("unset", []), "source.unset"))

    detect_raw = doc.get("detect")
    if not isinstance(detect_raw, list) or not detect_raw:
        raise MappingError("[[detect]] is required: at least one block of conditions that marks this source's records")
    detect = tuple(
        _conditions(_table(b, f"detect[{i}]", required=True), f"detect[{i}]", top=True)
        for i, b in enumerate(detect_raw)
    )

    emit = _table(doc.get("emit"), "[emit]")
    _keys(emit, "[emit]", {"require", "only"})
    require = _condition_list(emit.get("require", []), "emit.require")
    only = _condition_list(emit.get("only", []), "emit.only")

    tables_raw = _table(doc.get("tables"), "[tables]")
    tables: dict[str, dict[str, Any]] = {}
    for tname, tbl in tables_raw.items():
        tables[tname] = dict(_table(tbl, f"tables.{tname}", required=True))

    steps = _table(doc.get("steps"), "[steps]")
    _keys(steps, "[steps]", {"before", "after"})
    before = _str(steps.get("before"), "steps.before")
    after = _str(steps.get("after"), "steps.after")
    for kind, step, known in (("before", before, BEFORE), ("after", after, AFTER)):
        if step is None:
            continue
        if not builtin:
            raise MappingError(f"steps.{kind}: only the built-in mappings may name a code step ({step!r})")
        if step not in known:
            raise MappingError(f"steps.{kind}: no built-in step {step!r}")

    rows_raw = doc.get("map", [])
    if not isinstance(rows_raw, list):
        raise MappingError("[[map]] must be an array of tables")
    if len(rows_raw) > _MAX_ROWS:
        raise MappingError(f"{len(rows_raw)} [[map]] rows, over the limit of {_MAX_ROWS}")
    rows = tuple(_row(_table(r, f"map[{i}]", required=True), f"map[{i}]", tables) for i, r in enumerate(rows_raw))
    if _bool(src.get("copy_ecs", False), "source.copy_ecs"):
        # The record is already ECS: each field of the subset comes from the same field, as indexed.
        rows = ECS_COPY_ROWS + rows
    if not rows and before is None:
        raise MappingError("no [[map]] rows: a source must map at least one field")
    _check_verbatim(rows)  # the built-in maps keep the prefilter's contract too
    return SourceMap(
        name=name,
        description=description,
        follows=_str(src.get("follows"), "source.follows") or "",
        detect=detect,
        envelope=envelope,
        require=require,
        only=only,
        rows=rows,
        tables=tables,
        before=before,
        after=after,
        unset=unset,
        origin=origin,
    )


def _check_verbatim(rows: Iterable[Row]) -> None:
    for row in rows:
        if row.to not in VERBATIM_FIELDS:
            continue
        bad = [c for c in row.convert if c not in VERBATIM_SAFE]
        if row.value is not None or row.table is not None or bad:
            why = "a constant" if row.value is not None else "a table" if row.table else f"converter {bad[0]!r}"
            raise MappingError(
                f"{row.to} is read by the prefilter as text copied from the record, so it cannot come from {why}; "
                f"use one of {', '.join(sorted(VERBATIM_SAFE))}"
            )


def _row(raw: Mapping[str, Any], where: str, tables: Mapping[str, Any]) -> Row:
    _keys(
        raw, where, {"to", "from", "value", "convert", "table", "pick", "default", "when", "if_unset", "list", "note"}
    )
    to = _field(raw.get("to"), f"{where}.to", required=True)
    sources = tuple(_field(s, f"{where}.from") for s in _strs(raw.get("from", []), f"{where}.from"))
    value = raw.get("value")
    if (value is None) == (not sources):
        raise MappingError(f"{where}: give exactly one of `from` (vendor fields) and `value` (a constant)")
    if value is not None and not _scalar_or_strings(value):
        raise MappingError(f"{where}.value: a string, number, boolean or array of strings")
    convert = tuple(_strs(raw.get("convert", ["keyword"]), f"{where}.convert")) or ("keyword",)
    for i, name in enumerate(convert):
        if name not in CONVERTERS:
            raise MappingError(f"{where}.convert: unknown converter {name!r}; known: {', '.join(CONVERTERS)}")
        if i > 0 and name in PARSERS:
            raise MappingError(f"{where}.convert: {name!r} reads a raw value, so it can only come first")
    table = _str(raw.get("table"), f"{where}.table")
    if table is not None and table not in tables:
        raise MappingError(f"{where}.table: no [tables.{table}]")
    default = raw.get("default")
    if default is not None and not _scalar_or_strings(default):
        raise MappingError(f"{where}.default: a string, number, boolean or array of strings")
    return Row(
        to=to,
        sources=sources,
        value=value,
        convert=convert,
        table=table,
        pick=_str(raw.get("pick"), f"{where}.pick"),
        default=default,
        when=_condition_list(raw.get("when", []), f"{where}.when"),
        if_unset=_bool(raw.get("if_unset", False), f"{where}.if_unset"),
        as_list=_bool(raw.get("list", False), f"{where}.list"),
        note=_str(raw.get("note"), f"{where}.note") or "",
    )


def _condition_list(raw: Any, where: str) -> tuple[Condition, ...]:
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise MappingError(f"{where}: a condition table or an array of them")
    return tuple(_condition(_table(c, f"{where}[{i}]", required=True), f"{where}[{i}]") for i, c in enumerate(raw))


def _conditions(block: Mapping[str, Any], where: str, *, top: bool) -> tuple[Condition, ...]:
    _keys(block, where, {"all"})
    conds = _condition_list(block.get("all"), f"{where}.all")
    if not conds:
        raise MappingError(f"{where}.all: at least one condition")
    for i, c in enumerate(conds):
        if c.parses is not None or c.on_event:
            # Detection runs before normalising: there is no event yet, and no sink for a malformed value.
            raise MappingError(
                f"{where}.all[{i}]: a [[detect]] condition tests the record only (no `parses`, no `ecs`)"
            )
    return conds


_COND_KEYS = {
    "field",
    "ecs",
    "exists",
    "type",
    "equals",
    "prefix",
    "contains",
    "key_prefix",
    "key",
    "ignore_case",
    "not",
}
_COND_KEYS |= {"parses", "other_than"}


def _condition(raw: Mapping[str, Any], where: str) -> Condition:
    _keys(raw, where, _COND_KEYS)
    if "field" in raw and "ecs" in raw:
        raise MappingError(f"{where}: give `field` (the record) or `ecs` (the event so far), not both")
    fields = tuple(_field(f, where) for f in _strs(raw.get("field", raw.get("ecs", [])), where))
    ignore_case = _bool(raw.get("ignore_case", False), f"{where}.ignore_case")

    def texts(key: str) -> tuple[str, ...] | None:
        if key not in raw:
            return None
        items = tuple(_strs(raw[key], f"{where}.{key}"))
        return tuple(t.lower() for t in items) if ignore_case else items

    type_ = _str(raw.get("type"), f"{where}.type")
    if type_ is not None and type_ not in _TYPES:
        raise MappingError(f"{where}.type: one of {', '.join(_TYPES)}")
    parses = _str(raw.get("parses"), f"{where}.parses")
    if parses is not None and parses not in PARSERS:
        raise MappingError(f"{where}.parses: one of {', '.join(PARSERS)}")
    cond = Condition(
        fields=fields,
        on_event="ecs" in raw,
        exists=None if "exists" not in raw else _bool(raw["exists"], f"{where}.exists"),
        type=type_,
        equals=texts("equals"),
        prefix=texts("prefix"),
        key_prefix=None if "key_prefix" not in raw else tuple(_strs(raw["key_prefix"], f"{where}.key_prefix")),
        contains=texts("contains"),
        key=None if "key" not in raw else tuple(_strs(raw["key"], f"{where}.key")),
        ignore_case=ignore_case,
        negate=_bool(raw.get("not", False), f"{where}.not"),
        parses=parses,
        other_than=texts("other_than"),
    )
    if not fields and cond.key_prefix is None and cond.key is None:
        raise MappingError(f"{where}: a condition needs `field`, `ecs`, `key_prefix` or `key`")
    tests = (cond.exists, cond.type, cond.equals, cond.prefix, cond.contains, cond.parses, cond.other_than)
    if fields and all(t is None for t in tests):
        raise MappingError(f"{where}: say what to test: `exists`, `type`, `equals`, `prefix` or `contains`")
    return cond


def _keys(raw: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise MappingError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _table(raw: Any, where: str, *, required: bool = False) -> Mapping[str, Any]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: expected a table")
    return raw


def _str(raw: Any, where: str, *, required: bool = False) -> Any:
    if raw is None:
        if required:
            raise MappingError(f"{where} is required")
        return None
    if not isinstance(raw, str) or not raw:
        raise MappingError(f"{where}: expected a non-empty string")
    return raw


def _strs(raw: Any, where: str) -> Sequence[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise MappingError(f"{where}: expected a string or an array of strings")
    return items


def _field(raw: Any, where: str, *, required: bool = False) -> str:
    text = _str(raw, where, required=required)
    if not _FIELD.fullmatch(text) or ".." in text or text.endswith("."):
        raise MappingError(f"{where}: {text[:80]!r} is not a field name (letters, digits, _ - @, dotted)")
    return str(text)


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise MappingError(f"{where}: expected true or false")
    return raw


def _scalar_or_strings(value: Any) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


MAPS_DIR = Path(__file__).resolve().parent / "maps"


def builtin_mapping(name: str) -> SourceMap:
    """The built-in mapping detector/sources/maps/<name>.toml."""
    return load_mapping(MAPS_DIR / f"{name}.toml", builtin=True)


def as_source(m: SourceMap) -> Source:
    return Source(
        name=m.name,
        normalize=m.normalize,
        detect=m.detects,
        description=m.description,
        fields=tuple(m.field_table()),
    )
