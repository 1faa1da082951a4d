"""The one field reader (detector/fields.py): a field holds every value Elasticsearch would index for it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detector.engine import Engine
from detector.fields import first, flatten, node, values
from detector.rules.eql import compile_query
from detector.rules.model import load_rules
from detector.sources import normalize

CLIENT = "C:\\Users\\bob\\AppData\\Roaming\\nsm\\client32.exe"
NOTEPAD = "C:\\Windows\\notepad.exe"


@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        ({"a": {"b": {"c": 1}}}, "a.b.c", [1]),
        ({"a.b.c": 1}, "a.b.c", [1]),
        ({"a": {"b.c": 1}}, "a.b.c", [1]),
        ({"a.b": {"c": 1}}, "a.b.c", [1]),
        # every route is indexed, whichever comes first in the document
        ({"a": {"b": 1}, "a.b": 2}, "a.b", [1, 2]),
        ({"a.b": 2, "a": {"b": 1}}, "a.b", [1, 2]),
        ({"a": {"b": {"c": 1}, "b.c": 2}, "a.b": {"c": 3}, "a.b.c": 4}, "a.b.c", [1, 2, 3, 4]),
        # arrays of objects flatten, at any depth, and arrays of arrays too
        ({"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}]}, "a.b", [1, 2, 3]),
        ({"a": [[{"b": 1}], {"b": [[2]]}]}, "a.b", [1, 2]),
        ({"a": [{"b.c": 1}, {"b": {"c": 2}}]}, "a.b.c", [1, 2]),
        # null and empty arrays are no value; objects are returned as they are
        ({"a": {"b": None}}, "a.b", []),
        ({"a": {"b": [None, [], 1]}}, "a.b", [1]),
        ({"a": {"b": {"x": 1}}}, "a.b", [{"x": 1}]),
        # scalars on the path end it; missing keys give nothing
        ({"a": 5}, "a.b", []),
        ({"a": "text"}, "a.b", []),
        ({}, "a", []),
        ([{"a": 1}, {"a": 2}], "a", [1, 2]),
    ],
)
def test_values(doc: Any, field: str, expected: list[Any]) -> None:
    assert values(doc, field) == expected
    assert first(doc, field) == (expected[0] if expected else None)


@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        ({"a": {"b": [1, 2]}}, "a.b", [1, 2]),  # the raw value: the array itself
        ({"a.b": {"c": 1}}, "a.b", {"c": 1}),
        ({"a": {"b": 1}, "a.b": 2}, "a.b", 1),  # the first route only
        ({"a": {"x": 1}, "a.b": 2}, "a.b", 2),  # a nested miss falls back to the dotted key
        ({"a": 1}, "a.b", None),
    ],
)
def test_node(doc: Any, field: str, expected: Any) -> None:
    assert node(doc, field) == expected


def test_flatten() -> None:
    assert flatten([1, [2, None, [3]], None]) == [1, 2, 3]
    assert flatten(None) == []
    assert flatten("x") == ["x"]


@pytest.mark.parametrize(
    "doc",
    [
        {"process": {"executable": NOTEPAD}, "process.executable": CLIENT},
        {"process.executable": NOTEPAD, "process": {"executable": CLIENT}},
        {"process": [{"executable": NOTEPAD}, {"executable": CLIENT}]},
        {"process": {"executable": [NOTEPAD, CLIENT]}},
    ],
)
def test_the_rule_sees_a_value_behind_another(doc: dict[str, Any]) -> None:
    # Once first-found-wins: an ECS document that carries the client32 path second was missed.
    base = {
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"os": {"type": "windows"}},
        "process.name": "client32.exe",
    }
    record = {**base, **doc}
    _, (event,) = normalize(record, "endpoint")
    assert sorted(event["process"]["executable"]) == sorted([NOTEPAD, CLIENT])
    (rule,) = load_rules()
    assert rule.compiled.matches(event)
    assert compile_query(rule.query).matches(record)  # the rule over the raw document agrees
    out = Engine([rule]).process(orjson.dumps(record))
    assert out.rejection is None and len(out.alerts) == 1
