"""The ingest process's own set-up: its garbage collector stays out of the hot loop."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from detector.stream.ingest_process import GC_YOUNG_THRESHOLD, _quiet_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_start_up_heap_is_frozen_and_young_collections_are_rare(restored_gc: None) -> None:
    # A heap like the ingest's: many long-lived objects (rules, source maps), built before the loop starts.
    kept = [{"n": i, "l": [i]} for i in range(200_000)]
    _quiet_collector()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    # No collection walks them: they are in none of the three generations the collector goes through.
    walked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert not any(id(o) in walked for o in kept)


def test_garbage_from_start_up_is_freed_before_the_freeze(restored_gc: None) -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    del a, b
    _quiet_collector()
    assert not any(isinstance(o, Node) for o in gc.get_objects())
