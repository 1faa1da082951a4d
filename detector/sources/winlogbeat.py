"""Winlogbeat documents as they arrive on Kafka (libbeat's JSON codec adds `@metadata`).

Three shapes (see winlog_shapes.py):
* Winlogbeat 8.x: raw `winlog` documents (the modules' processing moved to ingest pipelines), so the
  Security 4688 and Sysmon logic of the system_security / windows_sysmon sources applies unchanged.
* Winlogbeat 7.x: the security/sysmon modules ran in the Beat and the document is already ECS
  (`event.module` security/sysmon, `process.*` present): we copy the subset.
* Winlogbeat 6.x: event-log fields at the top level (`log_name`, `event_id`, `event_data`); viewed in the
  8.x shape and mapped by the same Security/Sysmon code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import Event, Record, Source, lookup
from detector.sources.no_event import not_understood
from detector.sources.system_security import CHANNEL as SECURITY_CHANNEL
from detector.sources.system_security import channel, event_id, security_events
from detector.sources.windows_sysmon import is_sysmon, sysmon_events
from detector.sources.winlog_shapes import (
    as_winlog_8,
    is_module_processed,
    is_stripped_module_output,
    is_v6,
    module_events,
)


def _beat(record: Mapping[str, Any]) -> Any:
    meta = record.get("@metadata")
    return meta.get("beat") if isinstance(meta, Mapping) else None


def normalize(record: Record) -> list[Event]:
    """Dispatch on shape and channel.

    7.x (event.module security/sysmon with process.*): copy the ECS subset as the module wrote it
    (@timestamp truncated to ms; event.category/type kept; host.os.type/family "windows" added when the
    document lacks them, since winlog channels are Windows-only).
    8.x Security channel: system_security's 4688/4689 mapping with event.module "security" (Winlogbeat's
    own module pipeline, no data stream dataset). 8.x Sysmon channel: windows_sysmon's mapping with
    event.module "sysmon". Other channels: [] (not covered).
    6.x (log_name, event_id, event_data at the top level): the 8.x mappings over the record viewed in the
    8.x shape: winlog.channel <- log_name, winlog.event_id <- event_id, winlog.event_data <- event_data,
    winlog.provider_name <- source_name, winlog.user <- user; host.name <- computer_name, else host.name,
    else beat.hostname; @timestamp <- @timestamp.
    A Winlogbeat message in none of these shapes yields no event, flagged as not understood.
    Fields left unset are those the underlying mappings leave unset (see their docstrings).
    """
    if is_module_processed(record):
        return module_events(record)
    if lookup(record, "winlog") is None:
        if is_v6(record):
            record = as_winlog_8(record)
        else:
            return not_understood()
    ch = channel(record)
    if ch == SECURITY_CHANNEL:
        return security_events(record, module="security", dataset=None)
    if is_sysmon(record):
        if event_id(record) is None:
            return not_understood()  # a Sysmon record without an event id: nothing tells what it is
        return sysmon_events(record, module="sysmon", dataset=None)
    # Another channel (Application, PowerShell...) is simply not process telemetry; no channel at all is
    # a layout we do not know.
    return [] if ch is not None else not_understood()


def detect(record: Record) -> bool:
    """@metadata.beat == "winlogbeat" (a Beat's Kafka message), or agent.type "winlogbeat"; without those
    markers, the shapes only Winlogbeat writes: 6.x top-level event-log fields, or 7.x module output on a
    winlog document."""
    if _beat(record) == "winlogbeat" or lookup(record, "agent.type") == "winlogbeat":
        return True
    return is_v6(record) or is_stripped_module_output(record)


SOURCE = Source(
    name="winlogbeat",
    normalize=normalize,
    detect=detect,
    description="Winlogbeat 8.x raw winlog and 6.x top-level (Security 4688, Sysmon), 7.x module-processed ECS",
    fields=(
        ("(8.x Security 4688)", "as system_security"),
        ("(8.x Sysmon)", "as windows_sysmon"),
        ("(6.x) winlog.*, host.name", "log_name, event_id, event_data, ...; computer_name"),
        ("(7.x) process.*, event.*, host.*, user.*", "same ECS fields"),
    ),
)

__all__ = ["SOURCE"]
