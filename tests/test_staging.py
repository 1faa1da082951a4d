"""The publishing agent's staged table writes (detector/stream/staging.py): reads see them, tables get them later."""

from __future__ import annotations

from typing import Any

from detector.stream.staging import Staged


def test_reads_see_staged_writes_and_the_tables_change_only_on_apply() -> None:
    windows: dict[str, Any] = {"r1": 1}
    rows: dict[str, Any] = {"r1": "row"}  # another table: the same key is another entry
    staged = Staged()
    assert not staged and staged.get(windows, "r1") == 1 and staged.get(windows, "r2") is None
    staged.set(windows, "r1", 2)
    staged.set(windows, "r2", 5)
    staged.set(rows, "r1", None)  # a deletion
    assert staged
    assert (staged.get(windows, "r1"), staged.get(windows, "r2"), staged.get(rows, "r1")) == (2, 5, None)
    assert windows == {"r1": 1} and rows == {"r1": "row"}  # nothing written yet
    staged.apply()
    assert windows == {"r1": 2, "r2": 5} and rows == {}
    assert not staged and staged.get(windows, "r1") == 2


def test_writes_reach_the_table_in_the_order_staged() -> None:
    class Recording(dict[str, Any]):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[tuple[str, Any]] = []

        def __setitem__(self, key: str, value: Any) -> None:
            self.log.append((key, value))
            super().__setitem__(key, value)

        def pop(self, key: str, default: Any = None) -> Any:
            self.log.append((key, None))
            return super().pop(key, default)

    table = Recording()
    staged = Staged()
    for key, value in [("a", 1), ("b", 2), ("a", None), ("a", 3)]:
        staged.set(table, key, value)
    assert staged.get(table, "a") == 3
    staged.apply()
    assert table.log == [("a", 1), ("b", 2), ("a", None), ("a", 3)] and table == {"a": 3, "b": 2}
