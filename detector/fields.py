"""Reading a field the way Elasticsearch indexes it: the one field reader every part of the detector uses.

Elasticsearch flattens a document before indexing it. `{"process.name": x}`, `{"process": {"name": x}}`
and `{"process": [{"name": x}]}` all give the field `process.name` the value x, and a document that
reaches the same field by several routes (a dotted key beside a nested object, an array of objects)
indexes ALL those values: a query matches when any of them does. Reading only the first value found
would miss matches an Elasticsearch rule makes, so every reader here returns every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = ["first", "flatten", "node", "values"]


def values(doc: Any, dotted: str) -> list[Any]:
    """Every non-null value of the field `dotted` (shorter keys first); [] when the field is absent.

    Nested objects and literal dotted keys (at any level, in any mix) both resolve; arrays anywhere on
    the path (arrays of objects included) are flattened, and null elements are dropped. A value that is
    itself an object is returned as the object (it has no indexable value of its own).
    """
    out: list[Any] = []
    parts, dotted_keys = _plan(dotted)
    _collect(doc, parts, dotted_keys, 0, out)
    return out


@lru_cache(maxsize=4096)
def _plan(dotted: str) -> tuple[tuple[str, ...], tuple[tuple[tuple[str, int], ...], ...]]:
    # Per path position i, the literal dotted keys that start there ("b.c" for a.b.c at i=1) and where
    # each leads: built once per field name, not once per record.
    parts = tuple(dotted.split("."))
    n = len(parts)
    keys = tuple(tuple((".".join(parts[i:j]), j) for j in range(i + 2, n + 1)) for i in range(n))
    return parts, keys


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


def _collect(
    node: Any, parts: tuple[str, ...], dotted_keys: tuple[tuple[tuple[str, int], ...], ...], i: int, out: list[Any]
) -> None:
    # The hot path of normalising ECS documents: exact class checks first (orjson yields plain dicts and
    # lists; an isinstance against the Mapping ABC costs several times more).
    if i == len(parts):
        if node.__class__ is list:
            _flatten_into(node, out)
        elif node is not None:
            out.append(node)
        return
    cls = node.__class__
    if cls is list:
        # Arrays of arrays are walked without recursion: their depth is the attacker's, not the path's.
        stack = [iter(node)]
        while stack:
            for item in stack[-1]:
                if item.__class__ is list:
                    stack.append(iter(item))
                    break
                _collect(item, parts, dotted_keys, i, out)
            else:
                stack.pop()
        return
    if cls is not dict and not isinstance(node, Mapping):
        return
    child = node.get(parts[i])
    if child is not None:
        _collect(child, parts, dotted_keys, i + 1, out)
    for key, j in dotted_keys[i]:
        if key in node:
            _collect(node[key], parts, dotted_keys, j, out)


def _flatten_into(value: Any, out: list[Any]) -> None:
    # Iterative: an attacker-shaped [[[[...]]]] a thousand levels deep must not exhaust Python's stack.
    if value.__class__ is not list:
        if value is not None:
            out.append(value)
        return
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if item.__class__ is list:
                stack.append(iter(item))
                break
            if item is not None:
                out.append(item)
        else:
            stack.pop()
