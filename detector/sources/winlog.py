"""Built-in steps of the Windows event-log maps (maps/system_security.toml, windows_sysmon.toml,
winlogbeat.toml): what their data cannot say.

A Windows event-log record reaches us in three shapes, told apart by content:

* 8.x (and Elastic Agent): a raw `winlog` document, which the Security and Sysmon maps read.
* 7.x: the Beat's security/sysmon module already wrote ECS (`event.module` security/sysmon, `process.*`);
  the document is copied by winlogbeat.toml's rows, never re-mapped. Pipelines that strip `@metadata`/`agent.type`
  leave only this shape to recognise it by.
* 6.x: the event-log fields sit at the top level (`log_name`, `event_id`, `event_data`, ...), with no
  `winlog` object. `as_winlog_8` gives such a record the 8.x shape, so that one map serves both.

Imported by detector/sources/__init__.py before the maps load: loading a map checks that its steps exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from detector.fields import values
from detector.sources.base import Event, Record, as_mapping, lookup
from detector.sources.mapping import SourceMap, after_step, before_step, builtin_mapping
from detector.sources.no_event import not_understood

MODULES = ("security", "sysmon")

# The event_data fields the raw maps read a process from (4688/4689 and Sysmon). A module that ran in the
# Beat renamed them into process.*; a document that still has them is raw enough to map. (winlogbeat.toml's
# [[detect]] says the same in data.)
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


def is_stripped_module_output(record: Mapping[str, Any]) -> bool:
    """A 7.x module-processed winlog document without the Beat's markers (@metadata, agent.type), as a
    pipeline that rewrites or strips them delivers it. Its event_data no longer holds the process (the
    module moved it to process.*), so the raw maps would yield an event with no process at all."""
    if lookup(record, "winlog.channel") is None or not is_module_processed(record):
        return False
    data = lookup(record, "winlog.event_data")
    return not (isinstance(data, Mapping) and any(data.get(n) not in (None, "", "-") for n in _RAW_PROCESS_FIELDS))


def is_v6(record: Mapping[str, Any]) -> bool:
    """Winlogbeat 6.x: event-log fields at the top level and no `winlog` (as winlogbeat.toml's [[detect]])."""
    return (
        not values(record, "winlog")
        and isinstance(record.get("log_name"), str)
        and record.get("event_id") is not None
        and (isinstance(record.get("beat"), Mapping) or isinstance(record.get("computer_name"), str))
    )


def as_winlog_8(record: Record) -> Record:
    """A 6.x record in the 8.x shape the Security/Sysmon maps read. Only the fields they use are carried:
    @timestamp, host.* and winlog.*. host.name is the event's computer_name (the host that logged it), else
    the shipper's host.name or beat.hostname (6.x has no add_host_metadata by default)."""
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


@before_step("winlog_module_output")
def module_output(record: Record, _map: SourceMap) -> Record | list[Event]:
    """A stripped 7.x module-processed document is copied as winlogbeat.toml copies 7.x module output; any
    other goes on to the map."""
    return _maps()[2].map_one(record) if is_stripped_module_output(record) else record


@after_step("winlog_event_data")
def event_data_is_an_object(record: Mapping[str, Any], _event: Event) -> None:
    """winlog.event_data of the wrong structure (an array, a string) fails the record, naming it."""
    as_mapping(lookup(record, "winlog.event_data"), "winlog.event_data")


@cache
def _maps() -> tuple[SourceMap, SourceMap, SourceMap]:
    return builtin_mapping("system_security"), builtin_mapping("windows_sysmon"), builtin_mapping("winlogbeat")


@before_step("winlogbeat")
def winlogbeat(record: Record, _map: SourceMap) -> Record | list[Event]:
    """7.x module output goes on to the map's rows, which copy it; 6.x is viewed in the 8.x shape; a
    Security or Sysmon record is mapped by those maps with Winlogbeat's own module name and no data stream
    dataset; another channel is not covered; a record in none of these shapes is not understood."""
    if is_module_processed(record):
        return record
    if lookup(record, "winlog") is None:
        if not is_v6(record):
            return not_understood()
        record = as_winlog_8(record)
    security, sysmon, _ = _maps()
    if security.detects(record):
        return security.map_one(record, overrides={"event.module": "security", "event.dataset": None})
    if sysmon.detects(record):
        # The Sysmon map covers nothing ([]) without an event id; from Winlogbeat that is a layout we do
        # not know.
        return sysmon.map_one(record, overrides={"event.module": "sysmon", "event.dataset": None}) or not_understood()
    # Another channel (Application, PowerShell...) is simply not process telemetry; no channel at all is a
    # layout we do not know.
    return [] if isinstance(lookup(record, "winlog.channel"), str) else not_understood()


__all__ = ["as_winlog_8", "is_module_processed", "is_stripped_module_output", "is_v6"]
