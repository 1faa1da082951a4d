"""CrowdStrike Falcon Data Replicator (FDR) events: flat JSON objects of strings, one per line, keyed by
`event_simpleName`. Follows the crowdstrike package's fdr pipeline (default.yml and categorize.yml,
generated from _dev/build/pipeline), checked against its test-windows.log expectations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    NormalizeError,
    Record,
    Source,
    iso_to_ms,
    ms_epoch_to_iso,
    opt_int,
    opt_str,
    put,
    seconds_epoch_to_iso,
)
from detector.sources.crowdstrike_fdr_categories import CATEGORIES

_PLATFORMS = {"Lin": "linux", "Mac": "macos", "Win": "windows", "iOS": "ios"}


def _s(record: Mapping[str, Any], name: str) -> str | None:
    return opt_str(record.get(name), name)


def _timestamp(record: Mapping[str, Any]) -> str | None:
    # The pipeline's event.created (then copied to @timestamp): UTCTimestamp (seconds below 1e10,
    # else ms), else timestamp (ms or ISO-8601).
    utc = record.get("UTCTimestamp")
    if utc not in (None, ""):
        n = opt_int(utc, "UTCTimestamp")
        if n is not None:
            return seconds_epoch_to_iso(n, "UTCTimestamp") if n < 10**10 else ms_epoch_to_iso(n, "UTCTimestamp")
    ts = record.get("timestamp")
    if ts in (None, ""):
        return None
    if isinstance(ts, str) and not ts.strip().isdigit():
        return iso_to_ms(ts, "timestamp")
    return ms_epoch_to_iso(ts, "timestamp")


def _pid(record: Mapping[str, Any], name: str) -> int | None:
    # parsePid in the pipeline: unsigned 64-bit, so a raw pid never goes negative.
    pid = opt_int(record.get(name), name)
    if pid is not None and not 0 <= pid < 2**64:
        raise NormalizeError(f"{name}: expected an unsigned 64-bit process id, got {pid}")
    return pid


def _process_name(executable: str) -> str | None:
    # The pipeline's "process name" script: split on the separator the path starts with; a path that
    # starts with neither (say "C:\\...") is taken whole.
    if executable.startswith("\\"):
        name = executable.split("\\")[-1]
    elif executable.startswith("/"):
        name = executable.split("/")[-1]
    else:
        name = executable
    return name or None


def _categorize(name: str | None) -> tuple[list[str] | None, list[str] | None, str | None]:
    if name is None:
        return None, None, None
    row = CATEGORIES.get(name)
    if row is not None:
        return list(row[0]), list(row[1]), row[2]
    if name.endswith("Written"):
        # categorize.yml's first processor: any *Written name is a file event; it sets no type or kind.
        return ["file"], None, None
    return None, None, None


def normalize(record: Record) -> list[Event]:
    """One FDR event -> one ECS event.

    ECS field                  <- FDR field
    @timestamp, event.created  <- UTCTimestamp (s or ms), else timestamp (ms epoch string)
    event.action               <- event_simpleName
    event.category/type/kind   <- categorize.yml by event_simpleName (crowdstrike_fdr_categories.py:
                                  ProcessRollup, ProcessRollup2, SyntheticProcessRollup2,
                                  WmiCreateProcess, ProcessExecOnRDPFile, ... -> process start;
                                  other *Written names -> ["file"] only; unknown names -> none)
    event.id                   <- "id|aid|cid" (each part empty when missing)
    host.id                    <- aid
    host.hostname, host.name   <- ComputerName (else hostname)
    host.os.type               <- event_platform Win/Lin/Mac/iOS -> windows/linux/macos/ios
    process.executable         <- ImageFileName, kept in \\Device\\HarddiskVolumeN\\... form, except on
                                  library and driver events, where ImageFileName is the module
                                  (Elastic's dll.path): there TargetImageFileName on Windows, else unset
    process.name               <- last segment of ImageFileName when it starts with "\\" or "/",
                                  otherwise ImageFileName whole (the pipeline's script); library events
                                  on Windows: after the last "\\" of TargetImageFileName; network
                                  events: ContextBaseFileName when present
    process.command_line       <- CommandLine
    process.pid                <- RawProcessId (else EtwRawProcessId), unsigned decimal -> int
    process.entity_id          <- TargetProcessId, else ContextProcessId
    process.pe.original_file_name <- OriginalFilename, for process events on Windows (newer sensors)
    process.parent.name        <- ParentBaseFileName
    process.parent.entity_id   <- ParentProcessId (an FDR UPID, not a pid)
    user.id / user.name        <- UserSid / UserName

    Left unset as Elastic leaves it: process.parent.executable, process.parent.pid and
    process.parent.command_line (FDR's ProcessRollup2 carries no parent path or raw parent pid),
    host.os.family, user.domain.
    """
    name = _s(record, "event_simpleName")
    event: Event = {}
    ts = _timestamp(record)
    put(event, "@timestamp", ts)
    put(event, "event.created", ts)
    put(event, "event.action", name)
    category, types, kind = _categorize(name)
    put(event, "event.category", category)
    put(event, "event.type", types)
    put(event, "event.kind", kind)
    ids = [_s(record, "id"), _s(record, "aid"), _s(record, "cid")]
    if any(part is not None for part in ids):
        put(event, "event.id", "|".join(part or "" for part in ids))

    put(event, "host.id", ids[1])
    hostname = _s(record, "ComputerName") or _s(record, "hostname")
    put(event, "host.hostname", hostname)
    put(event, "host.name", hostname)
    os_type = _PLATFORMS.get(_s(record, "event_platform") or "")
    put(event, "host.os.type", os_type)

    categories = category or []
    is_process = "process" in categories
    is_library = "library" in categories
    windows = os_type == "windows"
    if is_library or "driver" in categories:
        # The pipeline files a loaded module's or driver's own path (ImageFileName) under dll.*; the
        # process is the one that loaded a library, named by TargetImageFileName on Windows.
        target = _s(record, "TargetImageFileName") if is_library and windows else None
        put(event, "process.executable", target)
        if target is not None and "\\" in target:
            put(event, "process.name", target[target.rfind("\\") + 1 :] or None)
    else:
        exe = _s(record, "ImageFileName")
        if exe is not None:
            put(event, "process.executable", exe)
            put(event, "process.name", _process_name(exe))
    if "network" in categories:
        # The pipeline then overwrites process.name on network events with ContextBaseFileName.
        put(event, "process.name", _s(record, "ContextBaseFileName"))
    put(event, "process.command_line", _s(record, "CommandLine"))
    pid = _pid(record, "RawProcessId")
    put(event, "process.pid", pid if pid is not None else _pid(record, "EtwRawProcessId"))
    put(event, "process.entity_id", _s(record, "TargetProcessId") or _s(record, "ContextProcessId"))
    if is_process and windows:
        put(event, "process.pe.original_file_name", _s(record, "OriginalFilename"))
    put(event, "process.parent.name", _s(record, "ParentBaseFileName"))
    put(event, "process.parent.entity_id", _s(record, "ParentProcessId"))
    put(event, "user.id", _s(record, "UserSid"))
    put(event, "user.name", _s(record, "UserName"))
    return [event]


def detect(record: Record) -> bool:
    """event_simpleName plus the sensor (aid) or customer (cid) id every FDR event carries."""
    return isinstance(record.get("event_simpleName"), str) and ("aid" in record or "cid" in record)


SOURCE = Source(
    name="crowdstrike_fdr",
    normalize=normalize,
    detect=detect,
    description="CrowdStrike Falcon Data Replicator (FDR) raw events",
    fields=(
        ("@timestamp", "timestamp (ms epoch) / UTCTimestamp"),
        ("event.action", "event_simpleName"),
        ("event.id", "id|aid|cid"),
        ("host.id", "aid"),
        ("host.name", "ComputerName"),
        ("host.os.type", "event_platform (Win -> windows)"),
        ("process.executable", "ImageFileName (\\Device\\HarddiskVolumeN\\... kept)"),
        ("process.name", "last segment of ImageFileName"),
        ("process.command_line", "CommandLine"),
        ("process.pid", "RawProcessId"),
        ("process.entity_id", "TargetProcessId / ContextProcessId"),
        ("process.pe.original_file_name", "OriginalFilename (when present)"),
        ("process.parent.name", "ParentBaseFileName"),
        ("process.parent.entity_id", "ParentProcessId"),
        ("user.id", "UserSid"),
        ("user.name", "UserName"),
    ),
)

__all__ = ["SOURCE"]
