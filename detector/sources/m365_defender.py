"""Microsoft 365 Defender (Defender for Endpoint) Advanced Hunting events streamed through Azure Event
Hub: `{"records": [...]}` envelopes or single records. Follows the m365_defender package's event data
stream (pipeline_device.yml), checked against its test-device.log expectations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.sources.base import (
    Event,
    NormalizeError,
    Record,
    Source,
    as_mapping,
    iso_to_ms,
    malformed,
    opt_int,
    opt_str,
    put,
)

# Lower-cased table-name fragment -> event.category, in the pipeline's order.
_CATEGORIES = (
    ("devicelogonevents", "authentication"),
    ("deviceevents", "host"),
    ("deviceinfo", "host"),
    ("devicefileevents", "file"),
    ("devicefilecertificateinfo", "file"),
    ("deviceprocessevents", "process"),
    ("deviceimageloadevents", "library"),
    ("devicenetworkevents", "network"),
    ("devicenetworkinfo", "network"),
    ("deviceregistryevents", "registry"),
)
# Lower-cased ActionType fragment -> event.type, in the pipeline's order.
_TYPES = (
    (("connectionsuccess",), "end"),
    (("connectionfailed",), "denied"),
    (("connectionrequest", "listeningconnectioncreated", "processcreated"), "start"),
    (("inboundconnectionaccepted",), "allowed"),
    (("registrykeycreated",), "creation"),
    (("registrykeydeleted", "registryvaluedeleted"), "deletion"),
    (("registrykeyrenamed", "registryvalueset"), "change"),
)
_INFO_ACTIONS = ("openprocess", "connectionfound", "networksignatureinspected", "devicenetworkinfo")


def _records(record: Record) -> list[Any]:
    if "records" not in record:
        return [record]
    items = record["records"]
    if not isinstance(items, list):
        raise NormalizeError(f"records: expected a list of records, got {type(items).__name__}")
    return items


def _one(rec: Mapping[str, Any], where: str) -> list[Event]:
    table = opt_str(rec.get("category"), f"{where}category")
    if table is None or not table.lower().startswith("advancedhunting-device"):
        return []  # alerts, e-mail and identity tables are not process telemetry
    lowered = table.lower()
    props = as_mapping(rec.get("properties"), f"{where}properties")

    def s(name: str) -> str | None:
        return opt_str(props.get(name), f"{where}properties.{name}")

    def i(name: str) -> int | None:
        return opt_int(props.get(name), f"{where}properties.{name}")

    event: Event = {}
    categories = [cat for frag, cat in _CATEGORIES if frag in lowered]
    action = s("ActionType")
    action_l = action.lower() if action else ""
    types: list[str] = []
    if any(c in ("authentication", "host", "file") for c in categories) or any(a in action_l for a in _INFO_ACTIONS):
        types.append("info")
    for frags, typ in _TYPES:
        if any(f in action_l for f in frags) or (typ == "start" and "deviceimageloadevents" in lowered):
            types.append(typ)

    put(
        event,
        "@timestamp",
        iso_to_ms(props.get("Timestamp"), f"{where}properties.Timestamp") or iso_to_ms(rec.get("time"), f"{where}time"),
    )
    put(event, "event.kind", "event")
    put(event, "event.category", categories or None)
    put(event, "event.type", types or None)
    put(event, "event.action", action_l.replace(" ", "-") or None)

    device_name = s("DeviceName")
    put(event, "host.name", device_name.lower() if device_name else None)
    put(event, "host.id", s("DeviceId"))
    platform = (s("OSPlatform") or "").lower()
    os_type = next((t for t in ("windows", "linux", "macos") if t in platform), None)
    # Newer pipeline: an initiating-process account SID exists only on Windows.
    if os_type is None and "process" in categories and s("InitiatingProcessAccountSid") is not None:
        os_type = "windows"
    put(event, "host.os.type", os_type)

    if "process" in categories or "deviceevents" in lowered:
        put(event, "process.executable", s("FolderPath"))
        put(event, "process.name", s("FileName"))
        put(event, "process.parent.command_line", s("InitiatingProcessCommandLine"))
        put(event, "process.parent.pid", i("InitiatingProcessId"))
        put(event, "process.parent.name", s("InitiatingProcessFileName"))
        put(event, "process.parent.executable", s("InitiatingProcessFolderPath"))
    else:
        put(event, "process.command_line", s("InitiatingProcessCommandLine"))
        put(event, "process.pid", i("InitiatingProcessId"))
        put(event, "process.name", s("InitiatingProcessFileName"))
        put(event, "process.executable", s("InitiatingProcessFolderPath"))
        put(event, "process.pe.original_file_name", s("InitiatingProcessVersionInfoOriginalFileName"))
        put(event, "process.parent.pid", i("InitiatingProcessParentId"))
        put(event, "process.parent.name", s("InitiatingProcessParentFileName"))
    # Process* columns always describe process.* (the pipeline sets these after the above).
    put(event, "process.command_line", s("ProcessCommandLine"))
    put(event, "process.pid", i("ProcessId"))
    put(event, "process.pe.original_file_name", s("ProcessVersionInfoOriginalFileName"))

    put(event, "user.name", s("AccountName") or s("RequestAccountName"))
    put(event, "user.domain", s("AccountDomain") or s("RequestAccountDomain"))
    put(event, "user.id", s("AccountSid"))
    return [event]


def normalize(record: Record) -> list[Event]:
    """Each AdvancedHunting-Device* record (one, or each of an envelope's `records`) -> one ECS event;
    other tables -> [].

    ECS field                      <- properties.* field (DeviceProcessEvents)
    @timestamp                     <- Timestamp (7 fractional digits truncated to ms), else time
    event.category                 <- from the table: DeviceProcessEvents -> ["process"], ...
    event.type                     <- from ActionType: ProcessCreated -> ["start"], ...
    event.action                   <- ActionType lower-cased, spaces -> "-" ("processcreated", as the
                                      expected test document; the newest pipeline writes "start")
    event.kind                     <- "event"
    host.name                      <- DeviceName, lower-cased as the pipeline does
    host.id                        <- DeviceId
    host.os.type                   <- OSPlatform when present; else "windows" for process events with
                                      InitiatingProcessAccountSid (newer pipeline_device.yml)
    process.executable / name      <- FolderPath / FileName
    process.command_line / pid     <- ProcessCommandLine / ProcessId
    process.pe.original_file_name  <- ProcessVersionInfoOriginalFileName
    process.parent.executable      <- InitiatingProcessFolderPath (often lower-case; kept as is)
    process.parent.name / pid      <- InitiatingProcessFileName / InitiatingProcessId
    process.parent.command_line    <- InitiatingProcessCommandLine
    user.name / domain / id        <- AccountName / AccountDomain / AccountSid
    For other Device* tables process.* comes from InitiatingProcess* and parent from
    InitiatingProcessParent*, as the pipeline does.

    Left unset as Elastic leaves it: process.entity_id, process.parent.entity_id (no such columns),
    host.os.family, host.hostname, event.id (ReportId stays vendor-specific).
    """
    items = _records(record)
    if "records" not in record:
        return _one(record, "")
    # An Event Hub batch carries records from many devices: one broken record must not hide the others,
    # so it is dropped (and reported as ignored) and its siblings are still normalised.
    out: list[Event] = []
    for n, rec in enumerate(items):
        where = f"records[{n}]"
        if not isinstance(rec, Mapping):
            malformed(where, f"expected an object, got {type(rec).__name__}")
            continue
        try:
            out.extend(_one(rec, where + "."))
        except NormalizeError as exc:  # its message already names records[n].<field>
            malformed(where, str(exc).removeprefix(where + ".").removeprefix(where + ": "))
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            malformed(where, f"unexpected shape ({type(exc).__name__}: {exc})")
    return out


def detect(record: Record) -> bool:
    """An Event Hub envelope (`records`), or a record whose category is an Advanced Hunting table."""
    # Any records list/object is claimed here, so that a malformed envelope is reported as one
    # (NormalizeError naming `records`) rather than as a record from no known source.
    if isinstance(record.get("records"), list | Mapping):
        return True
    return _looks_like_record(record)


def _looks_like_record(record: Mapping[str, Any]) -> bool:
    category = record.get("category")
    return isinstance(category, str) and category.startswith("AdvancedHunting-")


SOURCE = Source(
    name="m365_defender",
    normalize=normalize,
    detect=detect,
    description="Microsoft 365 Defender Advanced Hunting (DeviceProcessEvents) via Event Hub",
    fields=(
        ("@timestamp", "properties.Timestamp"),
        ("event.action", "properties.ActionType (lower-cased)"),
        ("host.name", "properties.DeviceName (lower-cased)"),
        ("host.id", "properties.DeviceId"),
        ("host.os.type", "OSPlatform / windows when InitiatingProcessAccountSid"),
        ("process.executable", "properties.FolderPath"),
        ("process.name", "properties.FileName"),
        ("process.pid", "properties.ProcessId"),
        ("process.command_line", "properties.ProcessCommandLine"),
        ("process.pe.original_file_name", "properties.ProcessVersionInfoOriginalFileName"),
        ("process.parent.executable", "properties.InitiatingProcessFolderPath"),
        ("process.parent.name", "properties.InitiatingProcessFileName"),
        ("process.parent.pid", "properties.InitiatingProcessId"),
        ("process.parent.command_line", "properties.InitiatingProcessCommandLine"),
        ("user.name", "properties.AccountName"),
        ("user.domain", "properties.AccountDomain"),
        ("user.id", "properties.AccountSid"),
    ),
)

__all__ = ["SOURCE"]
