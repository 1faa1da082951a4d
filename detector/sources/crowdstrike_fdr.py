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

# event_simpleName -> (category, type, kind): the entries of categorize.yml this detector relies on.
_CATEGORIES: dict[str, tuple[list[str], list[str], str]] = {
    "ProcessRollup2": (["process"], ["start"], "event"),
    "SyntheticProcessRollup2": (["process"], ["start"], "event"),
    "ProcessRollup2Stats": (["process"], ["info"], "event"),
    "EndOfProcess": (["process"], ["end"], "event"),
    "TerminateProcess": (["process"], ["end"], "event"),
    "AbnormalTerminationNotification": (["process"], ["end"], "event"),
    "ProcessBlocked": (["process"], ["denied"], "event"),
    "ServiceStarted": (["process"], ["start"], "event"),
    "ServiceStopped": (["process"], ["end"], "event"),
    "RansomwareOpenFile": (["file"], ["access"], "alert"),
    "NewExecutableWritten": (["file"], ["creation"], "event"),
    "PeFileWritten": (["file"], ["creation"], "event"),
    "ExecutableDeleted": (["file"], ["deletion"], "event"),
    "ImageHash": (["library"], ["start"], "event"),
    "ClassifiedModuleLoad": (["library"], ["start"], "event"),
    "NetworkConnectIP4": (["network"], ["connection", "start"], "event"),
    "NetworkConnectIP6": (["network"], ["connection", "start"], "event"),
    "DnsRequest": (["network"], ["protocol", "info"], "event"),
    "UserLogon": (["authentication"], ["start"], "event"),
}
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


def normalize(record: Record) -> list[Event]:
    """One FDR event -> one ECS event.

    ECS field                  <- FDR field
    @timestamp, event.created  <- UTCTimestamp (s or ms), else timestamp (ms epoch string)
    event.action               <- event_simpleName
    event.category/type/kind   <- categorize.yml by event_simpleName (ProcessRollup2 and
                                  SyntheticProcessRollup2 -> ["process"]/["start"]; RansomwareOpenFile
                                  -> ["file"]/["access"]; unknown names -> no category)
    event.id                   <- "id|aid|cid" (each part empty when missing)
    host.id                    <- aid
    host.hostname, host.name   <- ComputerName (else hostname)
    host.os.type               <- event_platform Win/Lin/Mac/iOS -> windows/linux/macos/ios
    process.executable         <- ImageFileName, kept in \\Device\\HarddiskVolumeN\\... form
    process.name               <- last segment of ImageFileName when it starts with "\\" or "/",
                                  otherwise ImageFileName whole (the pipeline's script)
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
    cat = _CATEGORIES.get(name or "")
    if cat is None and name is not None and name.endswith("Written"):
        cat = (["file"], ["creation"], "event")
    if cat is not None:
        put(event, "event.category", list(cat[0]))
        put(event, "event.type", list(cat[1]))
        put(event, "event.kind", cat[2])
    ids = [_s(record, "id"), _s(record, "aid"), _s(record, "cid")]
    if any(part is not None for part in ids):
        put(event, "event.id", "|".join(part or "" for part in ids))

    put(event, "host.id", ids[1])
    hostname = _s(record, "ComputerName") or _s(record, "hostname")
    put(event, "host.hostname", hostname)
    put(event, "host.name", hostname)
    os_type = _PLATFORMS.get(_s(record, "event_platform") or "")
    put(event, "host.os.type", os_type)

    is_process = cat is not None and "process" in cat[0]
    is_library = cat is not None and ("library" in cat[0] or "driver" in cat[0])
    exe = _s(record, "ImageFileName")
    if exe is not None and not is_library:
        put(event, "process.executable", exe)
        put(event, "process.name", _process_name(exe))
    put(event, "process.command_line", _s(record, "CommandLine"))
    pid = _pid(record, "RawProcessId")
    put(event, "process.pid", pid if pid is not None else _pid(record, "EtwRawProcessId"))
    put(event, "process.entity_id", _s(record, "TargetProcessId") or _s(record, "ContextProcessId"))
    if is_process and os_type == "windows":
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
