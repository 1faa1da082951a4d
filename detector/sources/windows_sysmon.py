"""Sysmon (Microsoft-Windows-Sysmon/Operational) as Elastic Agent's Windows integration
(`windows.sysmon_operational`) or Winlogbeat ships it: a `winlog` document before any ingest pipeline.

Follows Winlogbeat's sysmon module pipeline (x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml),
checked against its ingest golden file for event 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    Record,
    Source,
    as_mapping,
    ensure_windows_os,
    iso_to_ms,
    lookup,
    opt_int,
    opt_str,
    put,
    split_domain_user,
    win_basename,
)
from detector.sources.system_security import channel, copy_host, event_id

CHANNEL = "microsoft-windows-sysmon/operational"
PROVIDER = "microsoft-windows-sysmon"

# event id -> (event.action, event.category, event.type), per the sysmon pipeline's categorisation.
_KINDS: dict[str, tuple[str, list[str], list[str]]] = {
    "1": ("Process creation", ["process"], ["start"]),
    "2": ("File creation time changed", ["file"], ["change"]),
    "3": ("Network connection detected", ["network"], ["connection", "start"]),
    "5": ("Process terminated", ["process"], ["end"]),
    "7": ("Image loaded", ["process"], ["change"]),
    "8": ("CreateRemoteThread detected", ["process"], ["change"]),
    "10": ("Process accessed", ["process"], ["access"]),
    "11": ("File created", ["file"], ["creation"]),
    "12": ("Registry object added or deleted", ["configuration", "registry"], ["change"]),
    "13": ("Registry value set", ["configuration", "registry"], ["change"]),
    "14": ("Registry object renamed", ["configuration", "registry"], ["change"]),
    "15": ("File stream created", ["file"], ["creation"]),
    "22": ("Dns query", ["network"], ["connection", "protocol", "info"]),
    "23": ("File Delete archived", ["file"], ["deletion"]),
    "26": ("File Delete logged", ["file"], ["deletion"]),
}


def is_sysmon(record: Mapping[str, Any]) -> bool:
    if channel(record) == CHANNEL:
        return True
    provider = lookup(record, "winlog.provider_name")
    return isinstance(provider, str) and provider.lower() == PROVIDER


def sysmon_events(record: Record, *, module: str, dataset: str | None) -> list[Event]:
    code = event_id(record)
    if code is None:
        return []
    data = as_mapping(lookup(record, "winlog.event_data"), "winlog.event_data")

    def s(name: str) -> str | None:
        # Sysmon writes "-" for "no value"; the pipeline drops those.
        return opt_str(data.get(name), f"winlog.event_data.{name}", dash_is_empty=True)

    def i(name: str) -> int | None:
        return opt_int(data.get(name), f"winlog.event_data.{name}")

    event: Event = {}
    # The pipeline takes @timestamp from UtcTime (when Sysmon saw it), not from the log record time.
    ts = iso_to_ms(data.get("UtcTime"), "winlog.event_data.UtcTime") if s("UtcTime") else None
    put(event, "@timestamp", ts or iso_to_ms(record.get("@timestamp"), "@timestamp"))
    put(event, "event.code", code)
    put(event, "event.kind", "event")
    put(event, "event.module", module)
    put(event, "event.dataset", dataset)
    kind = _KINDS.get(code)
    if kind is not None:
        action, category, types = kind
        put(event, "event.action", action)
        put(event, "event.category", list(category))
        put(event, "event.type", list(types))
    copy_host(record, event)
    ensure_windows_os(event)

    image = s("Image")
    put(event, "process.executable", image)
    put(event, "process.name", (win_basename(image) or None) if image else None)
    put(event, "process.pid", i("ProcessId"))
    put(event, "process.entity_id", s("ProcessGuid"))
    put(event, "process.command_line", s("CommandLine"))
    put(event, "process.pe.original_file_name", s("OriginalFileName"))
    parent = s("ParentImage")
    put(event, "process.parent.executable", parent)
    put(event, "process.parent.name", (win_basename(parent) or None) if parent else None)
    put(event, "process.parent.pid", i("ParentProcessId"))
    put(event, "process.parent.entity_id", s("ParentProcessGuid"))
    put(event, "process.parent.command_line", s("ParentCommandLine"))

    user = s("User")
    if user is not None:
        domain, name = split_domain_user(user)
        put(event, "user.domain", domain)
        put(event, "user.name", name or None)
    put(event, "user.id", opt_str(lookup(record, "winlog.user.identifier"), "winlog.user.identifier"))
    return [event]


def normalize(record: Record) -> list[Event]:
    """Sysmon events -> ECS; event 1 (process creation) is the one the rule reads.

    ECS field                     <- vendor field (winlog.event_data.*)
    @timestamp                    <- UtcTime ("2020-10-27 20:00:14.320", UTC), else @timestamp
    event.code                    <- winlog.event_id
    event.action/category/type    <- by event id as the pipeline: 1 -> "Process creation",
                                     ["process"], ["start"]; 5 -> process end; others per table
    event.module / dataset        <- "windows" / "windows.sysmon_operational" (Agent's Windows integration)
    process.executable / name     <- Image / its last path segment
    process.pid / entity_id       <- ProcessId (decimal string -> int) / ProcessGuid
    process.command_line          <- CommandLine
    process.pe.original_file_name <- OriginalFileName (kept as written, e.g. "NOTEPAD.EXE")
    process.parent.executable     <- ParentImage; process.parent.name <- its last path segment
    process.parent.pid/entity_id  <- ParentProcessId / ParentProcessGuid
    process.parent.command_line   <- ParentCommandLine
    user.domain / user.name       <- User "DOMAIN\\name" split at the first backslash
    user.id                       <- winlog.user.identifier (the SID Winlogbeat resolved, as the pipeline)
    host.*                        <- host.* from the shipper; host.os.type/family "windows" when absent
                                     (the Sysmon channel exists only on Windows; our decision)

    Values "-" count as absent, as the pipeline drops them. Nothing in the subset is left unset by
    Elastic for event 1 when Sysmon provides it.
    """
    return sysmon_events(record, module="windows", dataset="windows.sysmon_operational")


def detect(record: Record) -> bool:
    return is_sysmon(record)


SOURCE = Source(
    name="windows_sysmon",
    normalize=normalize,
    detect=detect,
    description="Sysmon Operational log via Elastic Agent Windows integration / Winlogbeat (winlog documents)",
    fields=(
        ("@timestamp", "winlog.event_data.UtcTime"),
        ("process.executable", "winlog.event_data.Image"),
        ("process.name", "basename of Image"),
        ("process.pid", "winlog.event_data.ProcessId"),
        ("process.entity_id", "winlog.event_data.ProcessGuid"),
        ("process.command_line", "winlog.event_data.CommandLine"),
        ("process.pe.original_file_name", "winlog.event_data.OriginalFileName"),
        ("process.parent.executable", "winlog.event_data.ParentImage"),
        ("process.parent.name", "basename of ParentImage"),
        ("process.parent.pid", "winlog.event_data.ParentProcessId"),
        ("process.parent.entity_id", "winlog.event_data.ParentProcessGuid"),
        ("process.parent.command_line", "winlog.event_data.ParentCommandLine"),
        ("user.domain, user.name", "winlog.event_data.User (DOMAIN\\name)"),
        ("user.id", "winlog.user.identifier"),
        ("host.os.type", "host.os.type, else windows (Sysmon channel)"),
    ),
)

__all__ = ["SOURCE", "sysmon_events"]
