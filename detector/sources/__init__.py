"""Source registry: raw vendor records -> ECS events, and which vendor a record comes from.

`VERBATIM_FIELDS` is a safety contract with the prefilter (detector/rules/prefilter.py), which drops a
record before parsing when its raw bytes lack every needle taken from comparisons over these fields.
A field belongs here only if EVERY normalizer sets it to a substring of the raw record (up to ASCII
case): copied as is, or the last segment of a path copied from the record, or one side of a
`DOMAIN\\name` split. A wrong entry means missed detections, so when in doubt a field stays out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

from detector.sources import (
    crowdstrike_fdr,  # noqa: F401  registers the step its map names, before the map loads
    endgame,  # noqa: F401  registers the native-schema step of maps/endgame.toml
    m365_defender,  # noqa: F401  registers the step its map names, before the map loads
    winlog,  # noqa: F401  (registers the Windows event-log maps' steps before the maps load)
)
from detector.sources.base import Event, Ignored, NormalizeError, Record, Source, collect_ignored
from detector.sources.mapping import VERBATIM_FIELDS, MappingError, as_source, builtin_mapping, load_mapping

__all__ = [
    "DETECTION_ORDER",
    "SOURCES",
    "VERBATIM_FIELDS",
    "Event",
    "Ignored",
    "MappingError",
    "NormalizeError",
    "Record",
    "Source",
    "UnknownSourceError",
    "add_source_maps",
    "detect_source",
    "normalize",
    "remove_user_sources",
    "sources_table",
    "user_sources",
]


class UnknownSourceError(NormalizeError):
    """No source recognises the record."""


_ALL: tuple[Source, ...] = (
    as_source(builtin_mapping("endgame")),
    as_source(builtin_mapping("endpoint")),
    as_source(builtin_mapping("crowdstrike_fdr")),
    as_source(builtin_mapping("m365_defender")),
    as_source(builtin_mapping("sentinel_one_cloud_funnel")),
    as_source(builtin_mapping("system_security")),
    as_source(builtin_mapping("windows_sysmon")),
    as_source(builtin_mapping("winlogbeat")),
)
_REGISTRY: dict[str, Source] = {s.name: s for s in _ALL}
# Every source by name: the built-in ones, then those of users' mapping files (`add_source_maps`).
SOURCES: MappingProxyType[str, Source] = MappingProxyType(_REGISTRY)

# Most specific marker first:
# 1. winlogbeat before system_security/windows_sysmon: a Beat's Kafka message (@metadata.beat) carries the
#    same winlog.channel, and its 7.x form is module-processed ECS that must not be re-mapped. Without the
#    Beat's markers, winlogbeat still claims what only Winlogbeat writes (maps/winlogbeat.toml): the 6.x shape
#    (log_name/event_id/event_data at the top level, no winlog) and a 7.x module-processed winlog document
#    (event.module security/sysmon, process.*, no raw event_data process fields). The latter, pinned to
#    system_security/windows_sysmon by a topic, is copied by those normalisers too: the decision is by
#    shape, so the record alerts whichever source reads it.
# 2. m365_defender, crowdstrike_fdr, sentinel_one_cloud_funnel: vendor-native keys no ECS document has
#    (records[] / AdvancedHunting-* category, event_simpleName+aid, tgt./src.process.*).
# 3. endpoint and endgame: ECS documents told apart by agent.type / event.module / event.dataset.
# 4. system_security, windows_sysmon: raw winlog documents, by channel.
DETECTION_ORDER: tuple[str, ...] = (
    "winlogbeat",
    "m365_defender",
    "crowdstrike_fdr",
    "sentinel_one_cloud_funnel",
    "endpoint",
    "endgame",
    "system_security",
    "windows_sysmon",
)


# Users' sources come after the built-in ones: a user's markers never take a record from a built-in source.
_ORDER: list[str] = list(DETECTION_ORDER)
_USER_ORIGINS: dict[str, str] = {}


def add_source_maps(paths: Iterable[str | Path]) -> list[str]:
    """Load users' mapping files (detector/sources/mapping.py) and add their sources; returns their names.

    All files are checked before any source is added, so a bad file leaves the registry as it was. A file
    loaded again from the same path is not a conflict (a config read twice); another file defining a name
    that exists is refused."""
    loaded = [load_mapping(p) for p in paths]
    names: list[str] = []
    for m in loaded:
        origin = str(Path(m.origin).resolve())
        if _USER_ORIGINS.get(m.name) == origin and m.name not in names:
            continue
        if m.name in _REGISTRY or m.name in names:
            where = (
                "a built-in source" if m.name in DETECTION_ORDER else f"already defined by {_USER_ORIGINS.get(m.name)}"
            )
            raise MappingError(f"{m.origin}: source name {m.name!r} is {where}; choose another")
        names.append(m.name)
    for m in loaded:
        if m.name in names:
            _REGISTRY[m.name] = as_source(m)
            _ORDER.append(m.name)
            _USER_ORIGINS[m.name] = str(Path(m.origin).resolve())
    return names


def remove_user_sources() -> None:
    """Forget every source added by `add_source_maps` (tests; a process normally keeps them)."""
    for name in _USER_ORIGINS:
        _REGISTRY.pop(name, None)
        _ORDER.remove(name)
    _USER_ORIGINS.clear()


def user_sources() -> dict[str, str]:
    """Users' sources by name, with the mapping file each came from."""
    return dict(_USER_ORIGINS)


def sources_table() -> str:
    """The README's sources table, written from the maps' rows (`SourceMap.field_table`) and what the
    steps declare, so that the documentation cannot drift from the mapping."""
    lines = ["| source | what it reads | ECS field ← vendor field |", "|---|---|---|"]
    for name in _ORDER:
        src = SOURCES[name]
        cells = "<br>".join(f"`{ecs}` ← `{vendor}`".replace("|", "\\|") for ecs, vendor in src.fields)
        lines.append(f"| `{name}` | {src.description} | {cells} |")
    return "\n".join(lines)


def detect_source(record: Record) -> str | None:
    """The name of the source whose markers the record carries, or None (see DETECTION_ORDER; users'
    sources after the built-in ones, in the order their files were given)."""
    if not isinstance(record, dict):
        return None
    for name in _ORDER:
        if SOURCES[name].detect(record):
            return name
    return None


def normalize(
    record: Record, source: str | None = None, ignored: list[Ignored] | None = None
) -> tuple[str, list[Event]]:
    """Normalise one raw record: (source name, ECS events).

    `source` pins the source; None detects it. Raises ValueError for an unknown source name,
    UnknownSourceError when detection fails and NormalizeError when the record's structure is wrong (an
    object where a value belongs, or the other way round). A malformed VALUE is dropped, as Elastic's
    data streams drop it (ignore_malformed), and the event is still produced: each such value is
    appended to `ignored` as (field, why), so that callers count what was dropped.
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    if not isinstance(record, dict):
        raise NormalizeError(f"a record must be a JSON object, got {type(record).__name__}")
    name = source if source is not None else detect_source(record)
    if name is None:
        keys = ", ".join(sorted(map(str, record))[:8]) or "none"
        raise UnknownSourceError(f"no known source recognises this record (top-level keys: {_clip(keys)})")
    if source is not None and not SOURCES[name].detect(record):
        # Pinned by its topic or --source, yet without that source's markers: normalising it anyway would
        # yield an empty or made-up event and drop the record without a word.
        keys = ", ".join(sorted(map(str, record))[:8]) or "none"
        raise UnknownSourceError(f"record does not look like {name} data (top-level keys: {_clip(keys)})")
    try:
        with collect_ignored() as dropped:
            events = SOURCES[name].normalize(record)
    except (NormalizeError, RecursionError):
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:
        # A shape the normalizer did not anticipate; report it as bad input, never crash the caller.
        raise NormalizeError(f"{name}: unexpected record shape ({type(exc).__name__}: {_clip(str(exc))})") from exc
    if ignored is not None:
        ignored.extend(dropped)
    return name, events


def _clip(text: str, limit: int = 200) -> str:
    # Keys and messages can carry attacker-sized text; a rejection detail stays one readable line.
    return text if len(text) <= limit else text[: limit - 3] + "..."
