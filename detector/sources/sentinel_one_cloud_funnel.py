"""SentinelOne Cloud Funnel (Deep Visibility) events: flat objects with dotted keys
("tgt.process.image.path", ...), as written to the Cloud Funnel S3 bucket. Follows the
sentinel_one_cloud_funnel package's event pipeline (the newer mapping: process = tgt.process, the new
process; parent = src.process, its creator), checked against its test-process.log expectations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    Record,
    Source,
    lookup,
    ms_epoch_to_iso,
    opt_int,
    opt_str,
    put,
    split_domain_user,
)

# meta.event.name -> event.type for the process events (others keep only their category).
_TYPES = {
    "PROCESSCREATION": "start",
    "PROCESSTERMINATION": "end",
    "PROCESSEXIT": "end",
}
_CATEGORIES = frozenset(
    {"process", "file", "network", "registry", "library", "driver", "authentication", "configuration"}
)


def _s(record: Mapping[str, Any], name: str) -> str | None:
    return opt_str(lookup(record, name), name)


def _i(record: Mapping[str, Any], name: str) -> int | None:
    return opt_int(lookup(record, name), name)


def normalize(record: Record) -> list[Event]:
    """One Cloud Funnel event -> one ECS event.

    ECS field                    <- Cloud Funnel field
    @timestamp                   <- event.time (ms epoch)
    event.id                     <- event.id
    event.category               <- event.category when an ECS category ("process")
    event.type                   <- meta.event.name PROCESSCREATION -> ["start"]; PROCESSTERMINATION -> ["end"]
    event.action                 <- the same value as event.type ("start"; the pipeline writes it as a
                                    one-element list, we write the keyword)
    event.kind                   <- "event"
    host.hostname                <- endpoint.name
    host.id                      <- agent.uuid
    host.os.type                 <- endpoint.os ("windows")
    process.name / executable    <- tgt.process.name / tgt.process.image.path
    process.command_line         <- tgt.process.cmdline
    process.pid / entity_id      <- tgt.process.pid / tgt.process.uid
    process.parent.name          <- src.process.name
    process.parent.executable    <- src.process.image.path
    process.parent.command_line  <- src.process.cmdline
    process.parent.pid / entity_id <- src.process.pid / src.process.uid
    user.domain / user.name      <- src.process.user "DOMAIN\\name" split
    For events that are not process creation/termination the actor is src.process: process.* from
    src.process.*, parent from src.process.parent.*.

    Left unset as Elastic leaves it: process.pe.original_file_name (Cloud Funnel has no PE original
    name), host.name (the pipeline fills host.hostname only), host.os.family, user.id.
    """
    event: Event = {}
    put(event, "@timestamp", ms_epoch_to_iso(lookup(record, "event.time"), "event.time"))
    put(event, "event.id", _s(record, "event.id"))
    put(event, "event.kind", "event")
    category = _s(record, "event.category")
    if category is not None and category.lower() in _CATEGORIES:
        put(event, "event.category", [category.lower()])
    meta = (_s(record, "meta.event.name") or "").upper()
    etype = _TYPES.get(meta)
    if etype is not None:
        put(event, "event.type", [etype])
        put(event, "event.action", etype)

    put(event, "host.hostname", _s(record, "endpoint.name"))
    put(event, "host.id", _s(record, "agent.uuid"))
    os_name = _s(record, "endpoint.os")
    put(event, "host.os.type", os_name.lower() if os_name else None)

    if etype is not None:
        proc, parent = "tgt.process", "src.process"
    else:
        proc, parent = "src.process", "src.process.parent"
    put(event, "process.name", _s(record, f"{proc}.name"))
    put(event, "process.executable", _s(record, f"{proc}.image.path"))
    put(event, "process.command_line", _s(record, f"{proc}.cmdline"))
    put(event, "process.pid", _i(record, f"{proc}.pid"))
    put(event, "process.entity_id", _s(record, f"{proc}.uid"))
    put(event, "process.parent.name", _s(record, f"{parent}.name"))
    put(event, "process.parent.executable", _s(record, f"{parent}.image.path"))
    put(event, "process.parent.command_line", _s(record, f"{parent}.cmdline"))
    put(event, "process.parent.pid", _i(record, f"{parent}.pid"))
    put(event, "process.parent.entity_id", _s(record, f"{parent}.uid"))

    user = _s(record, "src.process.user")
    if user is not None:
        domain, name = split_domain_user(user)
        put(event, "user.domain", domain)
        put(event, "user.name", name or None)
    return [event]


def detect(record: Record) -> bool:
    """dataSource.name "SentinelOne", or tgt.process.* / src.process.* keys (flat or nested)."""
    if lookup(record, "dataSource.name") == "SentinelOne":
        return True
    for key in record:
        if key.startswith(("tgt.process.", "src.process.")):
            return True
    return lookup(record, "tgt.process") is not None or lookup(record, "src.process") is not None


SOURCE = Source(
    name="sentinel_one_cloud_funnel",
    normalize=normalize,
    detect=detect,
    description="SentinelOne Cloud Funnel (Deep Visibility) events",
    fields=(
        ("@timestamp", "event.time (ms)"),
        ("event.type", "meta.event.name (PROCESSCREATION -> start)"),
        ("host.hostname", "endpoint.name"),
        ("host.id", "agent.uuid"),
        ("host.os.type", "endpoint.os"),
        ("process.name", "tgt.process.name"),
        ("process.executable", "tgt.process.image.path"),
        ("process.command_line", "tgt.process.cmdline"),
        ("process.pid", "tgt.process.pid"),
        ("process.entity_id", "tgt.process.uid"),
        ("process.parent.name", "src.process.name"),
        ("process.parent.executable", "src.process.image.path"),
        ("process.parent.command_line", "src.process.cmdline"),
        ("process.parent.pid", "src.process.pid"),
        ("process.parent.entity_id", "src.process.uid"),
        ("user.domain, user.name", "src.process.user (DOMAIN\\name)"),
    ),
)

__all__ = ["SOURCE"]
