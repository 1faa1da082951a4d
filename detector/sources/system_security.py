"""Windows Security event 4688 (process creation) and 4689 (process exit), as Elastic Agent's System
integration (`system.security`) or Winlogbeat ships it: a `winlog` document before any ingest pipeline.

Follows Winlogbeat's security module pipeline (x-pack/winlogbeat/module/security/ingest/security.yml),
checked against its ingest golden file for 4688.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    NormalizeError,
    Record,
    Source,
    as_mapping,
    ensure_windows_os,
    iso_to_ms,
    lookup,
    opt_int,
    opt_str,
    put,
    win_basename,
)
from detector.sources.no_event import not_understood
from detector.sources.winlog_shapes import is_stripped_module_output, module_events

CHANNEL = "security"
_HOST_FIELDS = ("host.name", "host.hostname", "host.id", "host.os.type", "host.os.family")


def event_id(record: Mapping[str, Any]) -> str | None:
    """winlog.event_id as a string (Winlogbeat writes a string, some shippers a number)."""
    raw = lookup(record, "winlog.event_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return opt_str(raw, "winlog.event_id")


def channel(record: Mapping[str, Any]) -> str | None:
    value = lookup(record, "winlog.channel")
    return value.lower() if isinstance(value, str) else None


def copy_host(record: Mapping[str, Any], event: Event) -> None:
    for field in _HOST_FIELDS:
        put(event, field, opt_str(lookup(record, field), field))


def security_events(record: Record, *, module: str, dataset: str | None) -> list[Event]:
    """4688/4689 -> one ECS process event; any other Security event -> [] (not covered)."""
    code = event_id(record)
    if code is None:
        return not_understood()  # a Security record without an event id: nothing tells what it is
    if code not in ("4688", "4689"):
        return []
    data = as_mapping(lookup(record, "winlog.event_data"), "winlog.event_data")

    def s(name: str) -> str | None:
        return opt_str(data.get(name), f"winlog.event_data.{name}", dash_is_empty=True)

    def hexint(name: str) -> int | None:
        return opt_int(data.get(name), f"winlog.event_data.{name}", hex_prefixed=True)

    event: Event = {}
    put(event, "@timestamp", iso_to_ms(record.get("@timestamp"), "@timestamp"))
    put(event, "event.code", code)
    put(event, "event.kind", "event")
    put(event, "event.module", module)
    put(event, "event.dataset", dataset)
    put(event, "event.category", ["process"])
    copy_host(record, event)
    ensure_windows_os(event)

    if code == "4688":
        put(event, "event.action", "created-process")
        put(event, "event.type", ["start"])
        exe = s("NewProcessName")
        put(event, "process.executable", exe)
        put(event, "process.name", win_basename(exe) if exe else None)
        put(event, "process.pid", hexint("NewProcessId"))
        put(event, "process.command_line", s("CommandLine"))
        parent = s("ParentProcessName")
        put(event, "process.parent.executable", parent)
        put(event, "process.parent.name", win_basename(parent) if parent else None)
        put(event, "process.parent.pid", hexint("ProcessId"))
    else:
        put(event, "event.action", "exited-process")
        put(event, "event.type", ["end"])
        exe = s("ProcessName")
        put(event, "process.executable", exe)
        put(event, "process.name", win_basename(exe) if exe else None)
        put(event, "process.pid", hexint("ProcessId"))

    put(event, "user.name", s("SubjectUserName"))
    put(event, "user.domain", s("SubjectDomainName"))
    put(event, "user.id", s("SubjectUserSid"))
    _drop_empty_name(event)
    return [event]


def _drop_empty_name(event: Event) -> None:
    # A path ending in a separator has no basename; an empty string is "no value" in ECS.
    proc = event.get("process")
    if isinstance(proc, dict):
        if proc.get("name") == "":
            del proc["name"]
        parent = proc.get("parent")
        if isinstance(parent, dict) and parent.get("name") == "":
            del parent["name"]


def normalize(record: Record) -> list[Event]:
    """Security 4688 -> process start (4689 -> process end); other Security events -> [].

    ECS field                   <- vendor field
    @timestamp                  <- @timestamp (truncated to ms)
    event.code                  <- winlog.event_id
    event.action                <- "created-process" (4688) / "exited-process" (4689), as the pipeline
    event.category / type       <- ["process"] / ["start"] (4688), ["end"] (4689)
    event.module / dataset      <- "system" / "system.security" (Agent's System integration)
    process.executable          <- winlog.event_data.NewProcessName
    process.name                <- last path segment of NewProcessName
    process.pid                 <- NewProcessId, hex "0x11cc" -> 4556
    process.command_line        <- CommandLine
    process.parent.executable   <- ParentProcessName (absent before Windows 10/2016)
    process.parent.name         <- last path segment of ParentProcessName
    process.parent.pid          <- ProcessId (the creator), hex -> int
    user.name / domain / id     <- SubjectUserName / SubjectDomainName / SubjectUserSid ("-" = none)
    host.*                      <- host.* as the shipper's add_host_metadata set them
    host.os.type / family       <- "windows" when the record lacks host.os: the Security channel
                                   exists only on Windows (our decision; the pipeline relies on
                                   add_host_metadata, which the rule needs too).

    Left unset as Elastic leaves it: process.entity_id, process.parent.command_line,
    process.parent.entity_id, process.pe.original_file_name (4688 carries none of them).
    TargetUser* go to user.effective.* in Elastic, which is outside the subset we emit.

    A Winlogbeat 7.x document whose security module already wrote ECS (event.module "security",
    process.*, no raw event_data process fields) is copied as it is, not re-mapped: its event_data no
    longer holds the process, and a pipeline that stripped the Beat's markers routes it here.
    """
    if is_stripped_module_output(record):
        return module_events(record)
    return security_events(record, module="system", dataset="system.security")


def detect(record: Record) -> bool:
    """A Security-channel winlog document (any event id; only 4688/4689 yield events)."""
    return channel(record) == CHANNEL


SOURCE = Source(
    name="system_security",
    normalize=normalize,
    detect=detect,
    description="Windows Security log 4688 via Elastic Agent System integration / Winlogbeat (winlog documents)",
    fields=(
        ("process.executable", "winlog.event_data.NewProcessName"),
        ("process.name", "basename of NewProcessName"),
        ("process.pid", "winlog.event_data.NewProcessId (hex)"),
        ("process.command_line", "winlog.event_data.CommandLine"),
        ("process.parent.executable", "winlog.event_data.ParentProcessName"),
        ("process.parent.name", "basename of ParentProcessName"),
        ("process.parent.pid", "winlog.event_data.ProcessId (hex)"),
        ("user.name", "winlog.event_data.SubjectUserName"),
        ("user.domain", "winlog.event_data.SubjectDomainName"),
        ("user.id", "winlog.event_data.SubjectUserSid"),
        ("host.os.type", "host.os.type, else windows (Security channel)"),
    ),
)

__all__ = ["SOURCE", "NormalizeError", "security_events"]
