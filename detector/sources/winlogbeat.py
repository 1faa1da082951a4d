"""Winlogbeat documents as they arrive on Kafka (libbeat's JSON codec adds `@metadata`).

Two shapes:
* Winlogbeat 8.x: raw `winlog` documents (the modules' processing moved to ingest pipelines), so the
  Security 4688 and Sysmon logic of the system_security / windows_sysmon sources applies unchanged.
* Winlogbeat 7.x: the security/sysmon modules ran in the Beat and the document is already ECS
  (`event.module` security/sysmon, `process.*` present): we copy the subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    Record,
    Source,
    copy_ecs_subset,
    ensure_windows_os,
    lookup,
)
from detector.sources.system_security import CHANNEL as SECURITY_CHANNEL
from detector.sources.system_security import channel, security_events
from detector.sources.windows_sysmon import is_sysmon, sysmon_events


def _beat(record: Mapping[str, Any]) -> Any:
    meta = record.get("@metadata")
    return meta.get("beat") if isinstance(meta, Mapping) else None


def _is_module_processed(record: Mapping[str, Any]) -> bool:
    module = lookup(record, "event.module")
    if not (isinstance(module, str) and module.lower() in ("security", "sysmon")):
        return False
    return lookup(record, "process") is not None


def normalize(record: Record) -> list[Event]:
    """Dispatch on shape and channel.

    7.x (event.module security/sysmon with process.*): copy the ECS subset as the module wrote it
    (@timestamp truncated to ms; event.category/type kept; host.os.type/family "windows" added when the
    document lacks them, since winlog channels are Windows-only).
    8.x Security channel: system_security's 4688/4689 mapping with event.module "security" (Winlogbeat's
    own module pipeline, no data stream dataset). 8.x Sysmon channel: windows_sysmon's mapping with
    event.module "sysmon". Other channels: [] (not covered).
    Fields left unset are those the underlying mappings leave unset (see their docstrings).
    """
    if _is_module_processed(record):
        event = copy_ecs_subset(record)
        if lookup(record, "winlog") is not None:
            ensure_windows_os(event)
        return [event]
    if channel(record) == SECURITY_CHANNEL:
        return security_events(record, module="security", dataset=None)
    if is_sysmon(record):
        return sysmon_events(record, module="sysmon", dataset=None)
    return []


def detect(record: Record) -> bool:
    """@metadata.beat == "winlogbeat" (a Beat's Kafka message), or agent.type "winlogbeat"."""
    if _beat(record) == "winlogbeat":
        return True
    return bool(lookup(record, "agent.type") == "winlogbeat")


SOURCE = Source(
    name="winlogbeat",
    normalize=normalize,
    detect=detect,
    description="Winlogbeat 8.x raw winlog (Security 4688, Sysmon) and 7.x module-processed ECS documents",
    fields=(
        ("(8.x Security 4688)", "as system_security"),
        ("(8.x Sysmon)", "as windows_sysmon"),
        ("(7.x) process.*, event.*, host.*, user.*", "same ECS fields"),
    ),
)

__all__ = ["SOURCE"]
