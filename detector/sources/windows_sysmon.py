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
from detector.sources.winlog_shapes import is_stripped_module_output, module_events

CHANNEL = "microsoft-windows-sysmon/operational"
PROVIDER = "microsoft-windows-sysmon"

# event id -> event.action, as Winlogbeat's sysmon module names them (unchanged; the rule reads none).
_ACTIONS: dict[str, str] = {
    "1": "Process creation",
    "2": "File creation time changed",
    "3": "Network connection detected",
    "5": "Process terminated",
    "7": "Image loaded",
    "8": "CreateRemoteThread detected",
    "10": "Process accessed",
    "11": "File created",
    "12": "Registry object added or deleted",
    "13": "Registry value set",
    "14": "Registry object renamed",
    "15": "File stream created",
    "22": "Dns query",
    "23": "File Delete archived",
    "26": "File Delete logged",
}

# event id -> (event.category, event.type), transcribed from the "Add ECS categorization fields" script
# of elastic/integrations packages/windows/data_stream/sysmon_operational/elasticsearch/ingest_pipeline/
# default.yml at commit 029004a3821403de824489377e0efd74447e6098. The pipeline sets only the keys a row
# has: 24 (clipboard) gets a type and no category, 255 (Sysmon error) a category and no type.
_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "1": (("process",), ("start",)),
    "2": (("file",), ("change",)),
    "3": (("network",), ("start", "connection", "protocol")),
    "4": (("process",), ("change",)),
    "5": (("process",), ("end",)),
    "6": (("driver",), ("start",)),
    "7": (("process",), ("change",)),
    "8": (("process",), ("change",)),
    "9": (("process",), ("access",)),
    "10": (("process",), ("access",)),
    "11": (("file",), ("creation",)),
    "12": (("configuration", "registry"), ("change",)),
    "13": (("configuration", "registry"), ("change",)),
    "14": (("configuration", "registry"), ("change",)),
    "15": (("file",), ("access",)),
    "16": (("configuration",), ("change",)),
    "17": (("file",), ("creation",)),
    "18": (("file",), ("access",)),
    "19": (("process",), ("info",)),
    "20": (("process",), ("change",)),
    "21": (("process",), ("access",)),
    "22": (("network",), ("connection", "protocol", "info")),
    "23": (("file",), ("deletion",)),
    "24": ((), ("change",)),
    "25": (("process",), ("change",)),
    "26": (("file",), ("deletion",)),
    "27": (("file",), ("creation",)),
    "28": (("file",), ("deletion",)),
    "29": (("file",), ("creation",)),
    "255": (("process",), ()),
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
    put(event, "event.action", _ACTIONS.get(code))
    category, types = _CATEGORIES.get(code, ((), ()))
    put(event, "event.category", list(category) or None)
    put(event, "event.type", list(types) or None)
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
    event.category/type           <- by event id as the Windows integration's pipeline (1 -> ["process"],
                                     ["start"]; 4, 16 and the rest per _CATEGORIES, ids 1-29 and 255)
    event.action                  <- by event id as Winlogbeat's sysmon module (1 -> "Process creation")
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

    A Winlogbeat 7.x document whose sysmon module already wrote ECS (event.module "sysmon", process.*,
    no raw event_data process fields) is copied as it is, not re-mapped (see winlog_shapes.py).
    """
    if is_stripped_module_output(record):
        return module_events(record)
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
