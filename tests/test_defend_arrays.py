"""Elastic Defend (and Endgame ECS) documents whose ECS fields are one-element (or longer) arrays: ECS lets any field
hold an array and Elasticsearch indexes each element, so such a record is normalised, never refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import SOURCES, detect_source, normalize
from detector.sources.base import lookup

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "ecs_event.schema.json").read_text())
EXE = "C:\\Users\\alice\\AppData\\Roaming\\nsm\\client32.exe"


def defend(wrap: bool = True) -> dict[str, Any]:
    def v(x: Any) -> Any:
        return [x] if wrap else x

    return {
        "@timestamp": v("2024-11-11T10:20:01.520Z"),
        "agent": {"type": v("endpoint")},
        "data_stream": {"dataset": v("endpoint.events.process")},
        "event": {
            "action": v("mount"),
            "category": v("process"),
            "type": v("start"),
            "kind": v("event"),
            "module": v("endpoint"),
        },
        "host": {"name": v("wks-1"), "os": {"type": v("windows")}},
        "user": {"name": v("alice")},
        "process": {
            "name": v("client32.exe"),
            "executable": v(EXE),
            "pid": v(4242),
            "pe": {"original_file_name": v("client32.exe")},
            "parent": {"name": v("explorer.exe"), "pid": v(1000)},
        },
    }


def test_one_element_arrays_normalise_like_scalars() -> None:
    source, events = normalize(defend())
    assert source == "endpoint"
    _, scalar = normalize(defend(wrap=False))
    assert events == scalar
    (event,) = events
    assert lookup(event, "event.action") == "mount"
    assert lookup(event, "event.category") == ["process"] and lookup(event, "event.type") == ["start"]
    assert lookup(event, "event.dataset") == "endpoint.events.process"  # from data_stream.dataset
    assert lookup(event, "process.pid") == 4242 and lookup(event, "process.parent.pid") == 1000
    jsonschema.validate(event, SCHEMA)


def test_flat_dotted_keys_with_arrays() -> None:
    record = {
        "agent.type": ["endpoint"],
        "event.action": ["mount"],
        "event.category": ["process"],
        "event.type": ["start"],
        "process.name": ["client32.exe"],
        "process.executable": [EXE],
    }
    assert detect_source(record) == "endpoint"
    (event,) = SOURCES["endpoint"].normalize(record)
    assert lookup(event, "event.action") == "mount" and lookup(event, "process.executable") == EXE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agent.type", ["endpoint"]),
        ("event.module", ["endpoint"]),
        ("data_stream.dataset", ["endpoint.events.process"]),
    ],
)
def test_each_marker_is_recognised_as_an_array(field: str, value: list[str]) -> None:
    top, leaf = field.split(".")
    record = {top: {leaf: value}, "event": {"action": ["mount"]}} if top != "event" else {"event": {leaf: value}}
    assert SOURCES["endpoint"].detect(record)


def test_several_values_are_all_kept() -> None:
    record = defend()
    record["event"]["action"] = ["mount", "exec"]
    (event,) = SOURCES["endpoint"].normalize(record)
    assert lookup(event, "event.action") == ["mount", "exec"]


def test_array_shaped_positive_alerts() -> None:
    out = Engine(load_rules()).process(json.dumps(defend()).encode())
    assert out.rejection is None and out.source == "endpoint"
    assert len(out.alerts) == 1


def test_endgame_ecs_markers_in_arrays() -> None:
    # The same holds for Endgame's ECS-shaped documents (endgame-* indices).
    record = defend()
    record["agent"]["type"] = ["endgame"]
    record["event"]["module"] = ["endgame"]
    del record["data_stream"]
    source, (event,) = normalize(record)
    assert source == "endgame"
    assert lookup(event, "event.action") == "mount" and lookup(event, "process.name") == "client32.exe"
