"""Shared types and helpers for the per-vendor normalizers.

Every normalizer is a pure function from one raw record (a parsed JSON object) to a list of ECS
events (nested dicts). Helpers here validate field types as they read them, so a record with a
wrong-typed field fails with `NormalizeError` naming the field, never with a stray TypeError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "ECS_SUBSET",
    "Event",
    "NormalizeError",
    "Record",
    "Source",
    "as_list_of_str",
    "as_mapping",
    "copy_ecs_subset",
    "ensure_windows_os",
    "filetime_to_iso",
    "iso_to_ms",
    "lookup",
    "ms_epoch_to_iso",
    "opt_int",
    "opt_str",
    "put",
    "split_domain_user",
    "win_basename",
]

Record = dict[str, Any]
Event = dict[str, Any]


class NormalizeError(ValueError):
    """The record cannot be normalised; the message names the field and the reason."""


@dataclass(frozen=True)
class Source:
    name: str
    normalize: Callable[[Record], list[Event]]
    detect: Callable[[Record], bool]
    description: str
    fields: tuple[tuple[str, str], ...]


_MISSING = object()


def lookup(record: Mapping[str, Any], dotted: str) -> Any:
    """Value at a dotted ECS path, whether the record nests it, flattens it or mixes both; None if absent.

    Elasticsearch treats `{"process.name": x}` and `{"process": {"name": x}}` alike, and so must we.
    """
    parts = dotted.split(".")
    found = _lookup(record, parts, 0)
    return None if found is _MISSING else found


def _lookup(node: Any, parts: list[str], i: int) -> Any:
    if not isinstance(node, Mapping):
        return _MISSING
    key = parts[i]
    for j in range(i, len(parts)):
        if j > i:
            key = key + "." + parts[j]
        if key in node:
            value = node[key]
            if j == len(parts) - 1:
                return value
            found = _lookup(value, parts, j + 1)
            if found is not _MISSING:
                return found
    return _MISSING


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def opt_str(value: Any, field: str, *, dash_is_empty: bool = False) -> str | None:
    """A string field, or None when absent/null/empty (ingest pipelines skip empty values)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "" or (dash_is_empty and value == "-"):
            return None
        return value
    raise NormalizeError(f"{field}: expected a string, got {_describe(value)}")


_DEC = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def opt_int(value: Any, field: str, *, hex_prefixed: bool = False) -> int | None:
    """An integer field given as a JSON number or a decimal (or `0x` hex, when allowed) string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise NormalizeError(f"{field}: expected an integer, got {_describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if hex_prefixed and _HEX.fullmatch(text):
            return int(text, 16)
        if _DEC.fullmatch(text):
            return int(text)
    raise NormalizeError(f"{field}: expected an integer, got {_describe(value)}")


def as_mapping(value: Any, field: str) -> Mapping[str, Any]:
    """A nested object, or an empty one when absent."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise NormalizeError(f"{field}: expected an object, got {_describe(value)}")


def as_list_of_str(value: Any, field: str) -> list[str] | None:
    """A keyword field that may hold one value or an array of them (as Elasticsearch allows)."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        s = opt_str(item, field)
        if s is not None:
            out.append(s)
    return out or None


def win_basename(path: str) -> str:
    """Last segment of a Windows (or POSIX) path; the whole string when it has no separator."""
    cut = max(path.rfind("\\"), path.rfind("/"))
    return path[cut + 1 :]


def split_domain_user(value: str) -> tuple[str | None, str]:
    """`DOMAIN\\name` -> (DOMAIN, name); a bare name has no domain."""
    domain, sep, name = value.partition("\\")
    if not sep:
        return None, value
    return (domain or None), name


def put(event: Event, dotted: str, value: Any) -> None:
    """Set a nested ECS field; None (no value) leaves the event untouched."""
    if value is None:
        return
    parts = dotted.split(".")
    node = event
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


# --- timestamps -----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?")


def _format(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_to_ms(value: Any, field: str) -> str | None:
    """An ISO-8601 time (any sub-second precision, `T` or space, zone or none = UTC) as UTC with
    milliseconds. Extra digits are truncated, as Elasticsearch's millisecond `date` type does."""
    text = opt_str(value, field)
    if text is None:
        return None
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise NormalizeError(f"{field}: expected an ISO-8601 timestamp, got {_describe(value)}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    except ValueError as exc:
        raise NormalizeError(f"{field}: invalid timestamp {_describe(value)} ({exc})") from None
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return _format(dt)


def ms_epoch_to_iso(value: Any, field: str) -> str | None:
    """Milliseconds since the Unix epoch (number or decimal string)."""
    ms = opt_int(value, field)
    if ms is None:
        return None
    try:
        return _format(_EPOCH + timedelta(milliseconds=ms))
    except OverflowError:
        raise NormalizeError(f"{field}: timestamp {_describe(value)} is out of range") from None


def seconds_epoch_to_iso(value: int, field: str) -> str:
    try:
        return _format(_EPOCH + timedelta(seconds=value))
    except OverflowError:
        raise NormalizeError(f"{field}: timestamp {_describe(value)} is out of range") from None


_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime_to_iso(value: Any, field: str) -> str | None:
    """Windows FILETIME (100-ns intervals since 1601-01-01 UTC)."""
    ticks = opt_int(value, field)
    if ticks is None:
        return None
    try:
        return _format(_FILETIME_EPOCH + timedelta(microseconds=ticks // 10))
    except OverflowError:
        raise NormalizeError(f"{field}: FILETIME {_describe(value)} is out of range") from None


# --- ECS documents that need no mapping -----------------------------------------------------------

# (field, kind): the subset we emit from records that are already ECS.
ECS_SUBSET: tuple[tuple[str, str], ...] = (
    ("@timestamp", "ts"),
    ("event.category", "list"),
    ("event.type", "list"),
    ("event.action", "str"),
    ("event.code", "code"),
    ("event.kind", "str"),
    ("event.id", "str"),
    ("event.dataset", "str"),
    ("event.created", "ts"),
    ("event.module", "str"),
    ("host.name", "str"),
    ("host.hostname", "str"),
    ("host.id", "str"),
    ("host.os.type", "str"),
    ("host.os.family", "str"),
    ("user.name", "str"),
    ("user.domain", "str"),
    ("user.id", "str"),
    ("process.name", "str"),
    ("process.executable", "str"),
    ("process.pid", "int"),
    ("process.entity_id", "str"),
    ("process.command_line", "str"),
    ("process.pe.original_file_name", "str"),
    ("process.parent.name", "str"),
    ("process.parent.executable", "str"),
    ("process.parent.pid", "int"),
    ("process.parent.command_line", "str"),
    ("process.parent.entity_id", "str"),
)


def _convert(kind: str, value: Any, field: str) -> Any:
    if kind == "str":
        return opt_str(value, field)
    if kind == "int":
        return opt_int(value, field)
    if kind == "list":
        return as_list_of_str(value, field)
    if kind == "ts":
        return iso_to_ms(value, field)
    # event.code is a keyword that some shippers write as a number
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return opt_str(value, field)


def copy_ecs_subset(record: Mapping[str, Any], fields: Iterable[tuple[str, str]] = ECS_SUBSET) -> Event:
    """Copy the ECS subset from a record that is already ECS (nested, flat-dotted or mixed keys)."""
    event: Event = {}
    for field, kind in fields:
        raw = lookup(record, field)
        if raw is not None:
            put(event, field, _convert(kind, raw, field))
    return event


def ensure_windows_os(event: Event) -> None:
    """Records from Windows event-log channels (Security, Sysmon) come from Windows hosts by
    construction; when the shipper's host metadata is missing, say so rather than leave it unset."""
    os_ = event.setdefault("host", {}).setdefault("os", {})
    os_.setdefault("type", "windows")
    if os_["type"] == "windows":
        os_.setdefault("family", "windows")
