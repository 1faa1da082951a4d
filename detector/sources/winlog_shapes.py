"""The shapes a Windows event-log record takes on its way from Winlogbeat, told apart by content.

* 8.x (and Elastic Agent): a raw `winlog` document; the Security/Sysmon mappings read `winlog.*`.
* 7.x: the Beat's security/sysmon module already wrote ECS (`event.module` security/sysmon, `process.*`);
  the document is copied, never re-mapped. Pipelines that strip `@metadata`/`agent.type` leave only this
  shape to recognise it by.
* 6.x: the event-log fields sit at the top level (`log_name`, `event_id`, `event_data`, ...), with no
  `winlog` object. `as_winlog_8` gives such a record the 8.x shape, so that one mapping serves both.

Shared by winlogbeat, system_security and windows_sysmon; it imports none of them (no import cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import Event, Record, as_mapping, copy_ecs_subset, ensure_windows_os, lookup

MODULES = ("security", "sysmon")

# The event_data fields the raw mappings read a process from (4688/4689 and Sysmon). A module that ran in
# the Beat renamed them into process.*; a document that still has them is raw enough to map.
_RAW_PROCESS_FIELDS = ("NewProcessName", "ProcessName", "Image", "CommandLine", "ParentImage", "ParentProcessName")

# 6.x top-level key -> where 8.x keeps it under `winlog`.
_V6_TO_WINLOG = (
    ("log_name", "channel"),
    ("event_id", "event_id"),
    ("source_name", "provider_name"),
    ("computer_name", "computer_name"),
    ("event_data", "event_data"),
    ("user", "user"),
    ("record_number", "record_id"),
    ("opcode", "opcode"),
    ("task", "task"),
    ("keywords", "keywords"),
)


def is_module_processed(record: Mapping[str, Any]) -> bool:
    """Winlogbeat 7.x module output: event.module security/sysmon and ECS process.* present."""
    module = lookup(record, "event.module")
    if not (isinstance(module, str) and module.lower() in MODULES):
        return False
    return lookup(record, "process") is not None


def has_raw_process_fields(record: Mapping[str, Any]) -> bool:
    data = lookup(record, "winlog.event_data")
    return isinstance(data, Mapping) and any(data.get(name) not in (None, "", "-") for name in _RAW_PROCESS_FIELDS)


def is_stripped_module_output(record: Mapping[str, Any]) -> bool:
    """A 7.x module-processed winlog document without the Beat's markers (@metadata, agent.type), as a
    pipeline that rewrites or strips them delivers it. Its event_data no longer holds the process (the
    module moved it to process.*), so the raw mappings would yield an event with no process at all."""
    return (
        lookup(record, "winlog.channel") is not None
        and is_module_processed(record)
        and not has_raw_process_fields(record)
    )


def module_events(record: Record) -> list[Event]:
    """Copy the ECS subset as the module wrote it; winlog channels exist only on Windows, so host.os is
    completed when the document lacks it (the rule needs it)."""
    event = copy_ecs_subset(record)
    if lookup(record, "winlog") is not None:
        ensure_windows_os(event)
    return [event]


def is_v6(record: Mapping[str, Any]) -> bool:
    """Winlogbeat 6.x: event-log fields at the top level and no `winlog` object."""
    return (
        "winlog" not in record
        and isinstance(record.get("log_name"), str)
        and record.get("event_id") is not None
        and (isinstance(record.get("beat"), Mapping) or isinstance(record.get("computer_name"), str))
    )


def as_winlog_8(record: Record) -> Record:
    """A 6.x record in the 8.x shape the Security/Sysmon mappings read. Only the fields they use are
    carried: @timestamp, host.* and winlog.*. host.name is the event's computer_name (the host that logged
    it), else the shipper's host.name or beat.hostname (6.x has no add_host_metadata by default)."""
    winlog: dict[str, Any] = {}
    for old, new in _V6_TO_WINLOG:
        if record.get(old) is not None:
            winlog[new] = record[old]
    pid = record.get("process_id")
    if pid is not None:
        winlog["process"] = {"pid": pid}
    host = dict(as_mapping(record.get("host"), "host"))
    beat = as_mapping(record.get("beat"), "beat")
    for candidate in (record.get("computer_name"), host.get("name"), beat.get("hostname")):
        if isinstance(candidate, str) and candidate:
            host["name"] = candidate
            break
    view: Record = {"winlog": winlog, "host": host}
    if "@timestamp" in record:
        view["@timestamp"] = record["@timestamp"]
    return view


__all__ = [
    "as_winlog_8",
    "has_raw_process_fields",
    "is_module_processed",
    "is_stripped_module_output",
    "is_v6",
    "module_events",
]
