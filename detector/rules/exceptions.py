"""Rule exceptions in Kibana's own format: the NDJSON that "Export exception list" writes, applied as Kibana does.

Pure: parse bytes into compiled items, then `ExceptionLists.excluded_by(event)`. No I/O beyond `load_exceptions`
reading the files it is given. An alert is dropped when any item matches the event it was built from (Kibana
applies exceptions as a filter on the source documents, so they see the ECS event, not the alert); an item
matches when all its entries match.

Each decision, with its source (Kibana: `packages/kbn-securitysolution-list-utils` and the security solution's
`build_exception_filter.ts`, which turn items into the Elasticsearch filter a rule's search runs with):

- file: list container line(s), item lines, then the export-details line, which is checked against the
  items read so that a cut-off file is refused. Kibana `lists/server/routes/export_exception_list_route.ts`
  writes `exportData` + `JSON.stringify(exportDetails)` + a newline; docs, "Export exception list".
- `match`: exact, case-sensitive equality with any value of the field (`buildMatchClause`: `match_phrase`,
  an exact term on a keyword field). A value that reads as an integer also equals a long field's value
  (`match_phrase` on a numeric field is a term query on the parsed number).
- `match_any`: any listed value (`getBaseMatchAnyClause`: `bool.should` of `match_phrase`).
- `wildcard`: Lucene's syntax, `*` any run, `?` one code point, a backslash escapes the next character (a
  trailing one is literal); case-sensitive; strings only (`buildMatchWildcardClause`: a `wildcard` query
  without `case_insensitive`; Lucene `WildcardQuery.toAutomaton`). So Windows paths need doubled
  backslashes, in Kibana as here.
- `exists`: the field has a non-null value (`buildExistsClause`).
- `excluded`: the negation of the entry, true when the field is missing (`buildExclusionClause`: must_not).
- `nested`: some one object under `field` satisfies all sub-entries, their fields relative to it
  (`buildNestedClause`: a `nested` query with `path: field`).
- `os_types` (the item's, not its container's): the item applies only where `host.os.type` or
  `host.os.name.caseless` equals one of them (`transformOsType`).
- `expire_time`: an item is not applied from that instant on, judged by the wall clock when the alert is
  evaluated, as Kibana judges it at rule run time (PR #145180, rule exceptions TTL). Exports include expired
  items by default (`include_expired_exceptions=true`), so the file may hold them.
- `list` entries (value lists): refused at load time; their values live in the `.lists` indices, not in the
  export. List types other than `detection` and `rule_default` (Elastic Defend's `endpoint` lists, which the
  agent applies with its own semantics) are refused.
- Scope (ours): every loaded list applies to every loaded rule; Kibana attaches lists rule by rule.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from detector.fields import values

__all__ = ["ExceptionItem", "ExceptionLists", "ExceptionsError", "load_exceptions", "parse_exceptions"]

LIST_TYPES = ("detection", "rule_default")
OS_FIELDS = ("host.os.type", "host.os.name.caseless")
_MAX_FILE_BYTES = 16 << 20

Predicate = Callable[[Any], bool]


class ExceptionsError(ValueError):
    """An exceptions file that cannot be applied as Kibana would; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    list_id: str
    item_id: str
    name: str
    os_types: tuple[str, ...]
    expires: float | None  # epoch seconds; None: never
    matches: Predicate = field(repr=False, compare=False)

    def applies(self, event: Any, now: float) -> bool:
        if self.expires is not None and now >= self.expires:
            return False
        if self.os_types and not any(v in self.os_types for f in OS_FIELDS for v in values(event, f)):
            return False
        return self.matches(event)


@dataclass(frozen=True, slots=True)
class ExceptionLists:
    items: tuple[ExceptionItem, ...] = ()
    lists: tuple[str, ...] = ()  # list_ids of the containers read, in order

    def excluded_by(self, event: Any, now: float | None = None) -> tuple[str, str] | None:
        """(list_id, item_id) of the first item that excludes `event`, or None."""
        if not self.items:
            return None
        t = time.time() if now is None else now
        for item in self.items:
            if item.applies(event, t):
                return item.list_id, item.item_id
        return None

    def active(self, now: float | None = None) -> int:
        t = time.time() if now is None else now
        return sum(1 for i in self.items if i.expires is None or t < i.expires)


# ------------------------------------------------------------------------------------------------ loading


def load_exceptions(paths: Iterable[str | Path]) -> ExceptionLists:
    items: list[ExceptionItem] = []
    lists: list[str] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ExceptionsError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) > _MAX_FILE_BYTES:
            raise ExceptionsError(f"{path}: larger than {_MAX_FILE_BYTES >> 20} MiB")
        more = parse_exceptions(data, str(path))
        items.extend(more.items)
        lists.extend(more.lists)
    return ExceptionLists(tuple(items), tuple(lists))


def parse_exceptions(data: bytes, name: str = "<exceptions>") -> ExceptionLists:
    items: list[ExceptionItem] = []
    lists: list[str] = []
    details: tuple[int, Mapping[str, Any]] | None = None
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ExceptionsError(f"{where}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ExceptionsError(f"{where}: expected a JSON object")
        if details is not None:
            raise ExceptionsError(f"{where}: a line after the export details line")
        if "exported_exception_list_count" in doc or "exported_count" in doc:
            details = (lineno, doc)
        elif "rule_id" in doc:
            raise ExceptionsError(f"{where}: a rule, not an exception list or item (export the exception list)")
        elif "item_id" in doc or "entries" in doc:
            items.append(_item(doc, where))
        elif "list_id" in doc:
            lists.append(_container(doc, where))
        else:
            raise ExceptionsError(f"{where}: neither an exception list, an item nor the export details")
    if details is not None:
        lineno, doc = details
        for key, got in (
            ("exported_exception_list_count", len(lists)),
            ("exported_exception_list_item_count", len(items)),
        ):
            want = doc.get(key)
            if isinstance(want, int) and want != got:
                raise ExceptionsError(f"{name}:{lineno}: export details say {key} {want}, the file holds {got}")
    seen: set[tuple[str, str]] = set()
    for item in items:
        ids = (item.list_id, item.item_id)
        if ids in seen:
            raise ExceptionsError(f"{name}: item {item.item_id!r} of list {item.list_id!r} appears twice")
        seen.add(ids)
    return ExceptionLists(tuple(items), tuple(lists))


def _str(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ExceptionsError(f"{where}: {key!r} must be a non-empty string")
    return value


def _container(doc: Mapping[str, Any], where: str) -> str:
    list_id = _str(doc, "list_id", where)
    kind = doc.get("type")
    if kind not in LIST_TYPES:
        raise ExceptionsError(
            f"{where}: list {list_id!r} is of type {kind!r}; only {' and '.join(LIST_TYPES)} lists apply to "
            "detection rules (endpoint lists are applied by Elastic Defend)"
        )
    return list_id


def _expiry(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ExceptionsError(f"{where}: expire_time must be an ISO 8601 date string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExceptionsError(f"{where}: expire_time {value!r} is not an ISO 8601 date") from None
    if when.tzinfo is None:
        raise ExceptionsError(f"{where}: expire_time {value!r} has no time zone")
    return when.timestamp()


def _item(doc: Mapping[str, Any], where: str) -> ExceptionItem:
    item_id = _str(doc, "item_id", where)
    list_id = _str(doc, "list_id", where)
    where = f"{where} (item {item_id!r})"
    kind = doc.get("type", "simple")
    if kind != "simple":
        raise ExceptionsError(f"{where}: item type {kind!r}; expected 'simple'")
    os_types = doc.get("os_types") or []
    if not isinstance(os_types, list) or not all(isinstance(o, str) for o in os_types):
        raise ExceptionsError(f"{where}: os_types must be a list of strings")
    entries = doc.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ExceptionsError(f"{where}: 'entries' must be a non-empty list")
    preds = [_entry(e, where, nested=False) for e in entries]
    return ExceptionItem(
        list_id=list_id,
        item_id=item_id,
        name=str(doc.get("name") or item_id),
        os_types=tuple(os_types),
        expires=_expiry(doc.get("expire_time"), where),
        matches=_all(preds),
    )


def _all(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    return lambda doc: all(p(doc) for p in preds)


def _entry(entry: Any, where: str, *, nested: bool) -> Predicate:
    if not isinstance(entry, dict):
        raise ExceptionsError(f"{where}: an entry must be an object")
    kind = entry.get("type")
    fld = _str(entry, "field", where)
    if kind == "list":
        listed = entry.get("list")
        list_ref = listed.get("id") if isinstance(listed, dict) else None
        raise ExceptionsError(
            f"{where}: entry on {fld!r} uses value list {list_ref!r} (type 'list'): value lists are not "
            "supported; replace it by a match_any entry with the list's values"
        )
    if kind == "nested":
        if nested:
            raise ExceptionsError(f"{where}: a nested entry inside a nested entry")
        subs = entry.get("entries")
        if not isinstance(subs, list) or not subs:
            raise ExceptionsError(f"{where}: nested entry on {fld!r} needs a non-empty 'entries' list")
        inner = _all([_entry(s, where, nested=True) for s in subs])
        return lambda doc: any(inner(o) for o in values(doc, fld) if isinstance(o, dict))
    operator = entry.get("operator")
    if operator not in ("included", "excluded"):
        raise ExceptionsError(f"{where}: entry on {fld!r}: operator must be 'included' or 'excluded'")
    test: Callable[[list[Any]], bool]
    if kind == "match":
        value = entry.get("value")
        if not isinstance(value, str):
            raise ExceptionsError(f"{where}: match entry on {fld!r} needs a string 'value'")
        test = _equals(frozenset((value,)))
    elif kind == "match_any":
        listed_values = entry.get("value")
        if (
            not isinstance(listed_values, list)
            or not listed_values
            or not all(isinstance(v, str) for v in listed_values)
        ):
            raise ExceptionsError(f"{where}: match_any entry on {fld!r} needs a non-empty list of strings as 'value'")
        test = _equals(frozenset(listed_values))
    elif kind == "wildcard":
        value = entry.get("value")
        if not isinstance(value, str):
            raise ExceptionsError(f"{where}: wildcard entry on {fld!r} needs a string 'value'")
        rx = wildcard_regex(value)
        test = lambda found: any(isinstance(v, str) and rx.fullmatch(v) is not None for v in found)  # noqa: E731
    elif kind == "exists":
        test = bool
    else:
        raise ExceptionsError(f"{where}: entry on {fld!r} has unknown type {kind!r}")
    if operator == "excluded":
        return lambda doc: not test(values(doc, fld))
    return lambda doc: test(values(doc, fld))


def _equals(wanted: frozenset[str]) -> Callable[[list[Any]], bool]:
    numbers = frozenset(int(w) for w in wanted if re.fullmatch(r"[+-]?\d{1,19}", w))

    def test(found: list[Any]) -> bool:
        for v in found:
            if isinstance(v, str):
                if v in wanted:
                    return True
            elif isinstance(v, bool):
                if ("true" if v else "false") in wanted:
                    return True
            elif isinstance(v, int) and v in numbers:
                return True
        return False

    return test


# ------------------------------------------------------------------------------------------------ wildcards

_TOKEN = re.compile(r"\\(.)|\\$|(\*+)|(\?)|([^\\*?]+)", re.DOTALL)


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Lucene's wildcard syntax as a regex for `fullmatch`, case-sensitive, linear in the value's length.

    Segments between stars have a fixed length, so each middle segment is matched at its leftmost place in an
    atomic group (as detector.rules.eql.text does for EQL patterns): no backtracking over the value.
    """
    segments: list[str] = [""]
    for m in _TOKEN.finditer(pattern):
        escaped, stars, one, text = m.groups()
        if stars:
            segments.append("")
        elif one:
            segments[-1] += "."
        elif text is not None:
            segments[-1] += re.escape(text)
        else:  # an escaped character, or a trailing backslash (literal, as Lucene's lenient parsing)
            segments[-1] += re.escape(escaped if escaped is not None else "\\")
    if len(segments) == 1:
        return re.compile(segments[0], re.DOTALL)
    head, *middle, tail = segments
    body = head + "".join(f"(?>.*?{m})" for m in middle) + ".*" + tail
    return re.compile(body, re.DOTALL)
