"""Endgame's native event schema, the one step of maps/endgame.toml (whose rows copy ECS-shaped endgame-*
documents)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from detector.fields import values
from detector.sources.base import (
    Event,
    Record,
    filetime_to_iso,
    opt_int,
    opt_str,
    put,
)
from detector.sources.mapping import SourceMap, before_step

_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:\\|\\\\|\\Device\\)")
_NATIVE_TYPES = {"creation_event": "start", "termination_event": "end"}


def _is_endgame_ecs(record: Mapping[str, Any]) -> bool:
    # Each marker may be a one-element array (ECS allows it; Elasticsearch indexes either alike).
    if "endgame" in values(record, "agent.type") or "endgame" in values(record, "event.module"):
        return True
    return any(isinstance(v, str) and v.startswith("endgame") for v in values(record, "event.dataset"))


def _is_native(record: Mapping[str, Any]) -> bool:
    return (
        isinstance(record.get("event_type_full"), str)
        and isinstance(record.get("event_subtype_full"), str)
        and ("unique_pid" in record or "process_name" in record)
    )


def _native(record: Record) -> list[Event]:
    subtype = opt_str(record.get("event_subtype_full"), "event_subtype_full")
    etype = opt_str(record.get("event_type_full"), "event_type_full")
    if etype != "process_event" or subtype not in _NATIVE_TYPES:
        return []

    def s(name: str) -> str | None:
        return opt_str(record.get(name), name)

    def ident(name: str) -> str | None:
        # unique_pid is a number in native data; entity ids are keywords in ECS.
        value = record.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return opt_str(value, name)

    event: Event = {}
    put(event, "@timestamp", filetime_to_iso(record.get("timestamp"), "timestamp"))
    put(event, "event.category", ["process"])
    put(event, "event.type", [_NATIVE_TYPES[subtype]])
    put(event, "event.action", subtype)
    put(event, "event.kind", "event")
    put(event, "event.module", "endgame")
    exe = s("process_path")
    put(event, "process.name", s("process_name"))
    put(event, "process.executable", exe)
    put(event, "process.pid", opt_int(record.get("pid"), "pid"))
    put(event, "process.entity_id", ident("unique_pid"))
    put(event, "process.command_line", s("command_line"))
    put(event, "process.parent.name", s("parent_process_name"))
    put(event, "process.parent.executable", s("parent_process_path"))
    put(event, "process.parent.pid", opt_int(record.get("ppid"), "ppid"))
    put(event, "process.parent.entity_id", ident("unique_ppid"))
    put(event, "user.name", s("user_name"))
    put(event, "user.domain", s("user_domain"))
    put(event, "user.id", s("user_sid"))
    put(event, "host.name", s("hostname"))
    if exe is not None and _WINDOWS_PATH.match(exe):
        put(event, "host.os.type", "windows")
        put(event, "host.os.family", "windows")
    return [event]


@before_step("endgame_native")
def native_events(record: Record, _map: SourceMap) -> Record | list[Event]:
    """Endgame's native schema (process_event creation_event/termination_event, as in the eql project's test
    data) has no Elastic pipeline to follow, and its shape (FILETIME, a Windows-path test for the OS) is a
    second mapping inside one source: our choices, in code. ECS-shaped endgame-* documents go on to
    maps/endgame.toml, which copies the ECS subset.

    Native: @timestamp <- timestamp (FILETIME); event.category ["process"], event.type ["start"]/["end"],
    event.action <- event_subtype_full; process.name <- process_name; process.executable <- process_path;
    process.pid <- pid; process.entity_id <- unique_pid; process.command_line <- command_line;
    process.parent.name <- parent_process_name; process.parent.executable <- parent_process_path;
    process.parent.pid <- ppid; process.parent.entity_id <- unique_ppid; user.name/domain/id <-
    user_name/user_domain/user_sid; host.name <- hostname; host.os.type/family "windows" only when
    process_path is a Windows path. process.pe.original_file_name stays unset (not in the native schema).
    Other native events -> [].
    """
    if _is_native(record) and not _is_endgame_ecs(record):
        return _native(record)
    return record


__all__ = ["native_events"]
