"""CrowdStrike FDR: what its mapping (maps/crowdstrike_fdr.toml) cannot say as data.

The mapping does the rest; this module only registers the built-in step the map names, and is imported
by the source registry before the map loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.fields import values
from detector.sources.base import Event, opt_str, put
from detector.sources.mapping import after_step

__all__ = ["crowdstrike_fdr_after"]


def _first(record: Mapping[str, Any], name: str) -> str | None:
    for value in values(record, name):
        text = opt_str(value, name)
        if text is not None:
            return text
    return None


@after_step("crowdstrike_fdr")
def crowdstrike_fdr_after(record: Mapping[str, Any], event: Event) -> None:
    """event.id and the *Written fallback, which rows cannot express.

    event.id is "id|aid|cid" with each missing part left empty, and unset only when all three are
    missing: a row writes one field's value, it does not join several fields with a separator.
    categorize.yml's first processor makes any event_simpleName ending in "Written" a file event (no type,
    no kind) when no row of the categories table names it: a suffix test against a name, where a table
    looks up the whole name.
    """
    ids = [_first(record, name) for name in ("id", "aid", "cid")]
    if any(part is not None for part in ids):
        put(event, "event.id", "|".join(part or "" for part in ids))
    if not values(event, "event.category") and any(
        isinstance(name, str) and name.endswith("Written") for name in values(event, "event.action")
    ):
        put(event, "event.category", ["file"])
