"""The rule's query over the hand-written source fixtures: every positive line's events all match,
no negative line's event does. Exercises the normalizers and the EQL compiler together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detector.rules.eql import compile_query
from detector.sources import SOURCES, normalize

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
QUERY = r"""
process where host.os.type == "windows" and event.type == "start" and
  (process.name : "client32.exe" or ?process.pe.original_file_name == "client32.exe" or
   process.parent.name : "client32.exe") and
  (
    process.executable : ("?:\\Users\\*.exe", "?:\\ProgramData\\*.exe",
                          "\\Device\\HarddiskVolume?\\Users\\*.exe",
                          "\\Device\\HarddiskVolume?\\ProgramData\\*.exe") or
    ?process.parent.executable : ("?:\\Users\\*\\client32.exe", "?:\\ProgramData\\*\\client32.exe")
  )
"""


def _lines(source: str, polarity: str) -> list[tuple[str, dict[str, Any]]]:
    path = FIXTURES / source / f"{polarity}.ndjson"
    return [(f"{path.name}:{n}", json.loads(line)) for n, line in enumerate(path.read_text().splitlines(), 1) if line]


@pytest.fixture(scope="module")
def query() -> Any:
    return compile_query(QUERY)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_positives_match(source: str, query: Any) -> None:
    for where, record in _lines(source, "positives"):
        _, events = normalize(record)
        assert events, f"{source} {where}: no events"
        for event in events:
            assert query.matches(event), f"{source} {where}: should match\n{json.dumps(event, indent=1)}"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_negatives_do_not_match(source: str, query: Any) -> None:
    for where, record in _lines(source, "negatives"):
        _, events = normalize(record)
        for event in events:
            assert not query.matches(event), f"{source} {where}: should not match\n{json.dumps(event, indent=1)}"
