"""Table writes staged until the alerts they go with are acknowledged.

The publishing agent (detector/stream/app.py) takes the matches messages that have arrived together, sends
their alerts without waiting for each acknowledgement, and waits once for all of them. A table (cap window,
suppression group, prevalence row) may only change once the alerts that its new state accounts for are
acknowledged: a worker that died in between would come back, from the changelog, with a state that counts
alerts the broker never got, and re-reading the message would then cap or suppress an alert that was never
published. So the writes wait here, in order, and the next messages of the same batch read through them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


class Staged:
    """Writes to tables (None deletes a key, as the tables' default is None), and what reads see meanwhile."""

    def __init__(self) -> None:
        self._writes: list[tuple[MutableMapping[str, Any], str, Any]] = []
        self._view: dict[tuple[int, str], Any] = {}

    def __bool__(self) -> bool:
        return bool(self._writes)

    def get(self, table: MutableMapping[str, Any], key: str) -> Any:
        """The key's value as the staged writes leave it, else the table's (None when absent)."""
        staged = self._view.get((id(table), key), _ABSENT)
        return table.get(key) if staged is _ABSENT else staged

    def set(self, table: MutableMapping[str, Any], key: str, value: Any) -> None:
        self._writes.append((table, key, value))
        self._view[(id(table), key)] = value

    def apply(self) -> None:
        """Write to the tables, in the order staged (each write also goes to the table's changelog)."""
        for table, key, value in self._writes:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        self._writes.clear()
        self._view.clear()


_ABSENT = object()
