"""Reading a field the way Elasticsearch indexes it: the one field reader every part of the detector uses.

Elasticsearch flattens a document before indexing it. `{"process.name": x}`, `{"process": {"name": x}}`
and `{"process": [{"name": x}]}` all give the field `process.name` the value x, and a document that
reaches the same field by several routes (a dotted key beside a nested object, an array of objects)
indexes ALL those values: a query matches when any of them does. Reading only the first value found
would miss matches an Elasticsearch rule makes, so every reader here returns every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["first", "flatten", "node", "values"]


def values(doc: Any, dotted: str) -> list[Any]:
    """Every non-null value of the field `dotted` (shorter keys first); [] when the field is absent.

    Nested objects and literal dotted keys (at any level, in any mix) both resolve; arrays anywhere on
    the path (arrays of objects included) are flattened, and null elements are dropped. A value that is
    itself an object is returned as the object (it has no indexable value of its own).
    """
    out: list[Any] = []
    _collect(doc, dotted.split("."), 0, out)
    return out


def first(doc: Any, dotted: str) -> Any:
    """The first value of `dotted` (see `values`), or None: for fields that are single-valued by
    nature (a marker such as agent.type, a timestamp) where any value will do."""
    found = values(doc, dotted)
    return found[0] if found else None


def node(doc: Any, dotted: str) -> Any:
    """The raw value (object, array or scalar) at the first route to `dotted`, or None.

    For reading a sub-object (winlog.event_data) or a value whose array-ness matters to the caller;
    a rule's view of a field is `values`.
    """
    found = _node(doc, dotted.split("."), 0)
    return None if found is _MISSING else found


_MISSING = object()


def _node(cur: Any, parts: list[str], i: int) -> Any:
    if not isinstance(cur, Mapping):
        return _MISSING
    key = parts[i]
    for j in range(i, len(parts)):
        if j > i:
            key = key + "." + parts[j]
        if key in cur:
            value = cur[key]
            if j == len(parts) - 1:
                return value
            found = _node(value, parts, j + 1)
            if found is not _MISSING:
                return found
    return _MISSING


def flatten(value: Any) -> list[Any]:
    """A field's raw value as its list of values: arrays (nested ones too) flattened, nulls dropped."""
    out: list[Any] = []
    _flatten_into(value, out)
    return out


def _collect(node: Any, parts: list[str], i: int, out: list[Any]) -> None:
    if i == len(parts):
        _flatten_into(node, out)
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, parts, i, out)
        return
    if not isinstance(node, Mapping):
        return
    key = parts[i]
    for j in range(i + 1, len(parts) + 1):
        if j > i + 1:
            key = key + "." + parts[j - 1]
        if key in node:
            _collect(node[key], parts, j, out)


def _flatten_into(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _flatten_into(item, out)
    elif value is not None:
        out.append(value)
