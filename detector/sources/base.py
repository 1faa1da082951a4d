"""Shared types and helpers for the per-vendor normalizers.

Every normalizer is a pure function from one raw record (a parsed JSON object) to a list of ECS
events (nested dicts). Helpers here validate field types as they read them, so a record with a
wrong-typed field fails with `NormalizeError` naming the field, never with a stray TypeError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.fields import flatten, node
from detector.times import iso_ms

__all__ = [
    "ECS_SUBSET",
    "Event",
    "Ignored",
    "NormalizeError",
    "Record",
    "Source",
    "as_list_of_str",
    "as_mapping",
    "collect_ignored",
    "filetime_to_iso",
    "iso_to_ms",
    "lookup",
    "malformed",
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


def lookup(record: Mapping[str, Any], dotted: str) -> Any:
    """The raw value at a dotted ECS path (nested, flat-dotted or mixed keys), or None if absent.

    For markers and sub-objects. Copying ECS fields takes every value instead (`copy_ecs_subset`).
    """
    return node(record, dotted)


def _describe(value: Any) -> str:
    # Never repr() a container: it may be a thousand levels deep (RecursionError) or megabytes long.
    if isinstance(value, Mapping):
        return f"an object with {len(value)} key(s)"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:77]) + "..."
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Elasticsearch's long: values outside it are malformed for a long field (process.pid and the like).
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
_TWO_63 = float(1 << 63)

# (field, why) for each value dropped as malformed while normalising one record.
Ignored = tuple[str, str]
# Itemised per record: an attacker-sized array of bad values costs a counter beyond this, not a message.
MAX_ITEMISED = 32
MORE = "(more)"  # the field of the one entry that counts what was not itemised


class _Sink(list[Ignored]):
    overflow = 0


_IGNORED: ContextVar[_Sink | None] = ContextVar("detector_ignored", default=None)
_INDEX = re.compile(r"\[\d+\]")
_NO_VALUE = object()


@contextmanager
def collect_ignored() -> Iterator[list[Ignored]]:
    """Within this block, converters drop malformed values (recorded in the yielded list) instead of
    raising: the record is still normalised and evaluated without them. At most MAX_ITEMISED are listed;
    one more entry, field MORE, counts the rest."""
    sink = _Sink()
    token = _IGNORED.set(sink)
    try:
        yield sink
    finally:
        _IGNORED.reset(token)
        if sink.overflow:
            sink.append((MORE, f"{sink.overflow} more malformed values in this record, not itemised"))


def malformed(field: str, problem: str, value: Any = _NO_VALUE) -> None:
    """Drop a malformed value, as Elastic's logs data streams do (`index.mapping.ignore_malformed`): the
    document is indexed without that field, so a rule still sees the rest of it. Only the structure of
    a record (an object where a value is expected) makes the whole record fail. Outside
    `collect_ignored` (a converter called on its own) the value is an error.

    `problem` may hold `{}` for a description of `value`, built only when the drop is itemised."""
    sink = _IGNORED.get()
    if sink is not None and len(sink) >= MAX_ITEMISED:
        sink.overflow += 1
        return
    message = f"{field}: {problem.format(_describe(value)) if value is not _NO_VALUE else problem}"
    if sink is None:
        raise NormalizeError(message)
    # The field is a metric label and a summary key: records[3].x and records[7].x are one field.
    entry = (_INDEX.sub("[]", field), message)
    if entry not in sink:  # two ECS fields read from one vendor field: one bad value, one report
        sink.append(entry)


def opt_str(value: Any, field: str, *, dash_is_empty: bool = False) -> str | None:
    """A keyword field, or None when absent/null/empty (ingest pipelines skip empty values).

    Integers and booleans are coerced to their keyword form, as Elasticsearch does for a keyword field.
    A float is dropped as malformed: Elasticsearch keeps its JSON text ("1E5"), which the parsed value
    no longer knows, and a made-up form ("100000.0") would break the prefilter's contract that
    verbatim fields are substrings of the raw record. Anything else (an object, an array) is dropped.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value == "" or (dash_is_empty and value == "-"):
            return None
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    malformed(field, "expected a string, got {}", value)
    return None


_DEC = re.compile(r"[+-]?[0-9]{1,40}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def opt_int(value: Any, field: str, *, hex_prefixed: bool = False) -> int | None:
    """A long field given as a JSON number or a decimal (or `0x` hex, when allowed) string.

    A fractional number is truncated, as Elasticsearch coerces it; a value outside the long range, or
    not a number at all, is malformed and dropped.
    """
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        # Open interval: orjson reads an integer literal beyond 64 bits as a float, and one just below
        # the long range rounds to exactly -2**63.
        if -_TWO_63 < value < _TWO_63:
            number = int(value)
        else:
            malformed(field, "{} is out of the 64-bit long range", value)
            return None
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if hex_prefixed and _HEX.fullmatch(text):
            number = int(text, 16)
        elif _DEC.fullmatch(text):
            number = int(text)
    if number is None:
        malformed(field, "expected an integer, got {}", value)
        return None
    if not LONG_MIN <= number <= LONG_MAX:
        malformed(field, "{} is out of the 64-bit long range", value)
        return None
    return number


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
    out: list[str] = []
    for item in flatten(value):
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


def iso_to_ms(value: Any, field: str) -> str | None:
    """An ISO-8601 time (any sub-second precision, `T` or space, zone or none = UTC) as UTC with
    milliseconds. Extra digits are truncated, as Elasticsearch's millisecond `date` type does."""
    text = opt_str(value, field)
    if text is None:
        return None
    m = _ISO.fullmatch(text.strip())
    if m is None:
        malformed(field, "expected an ISO-8601 timestamp, got {}", value)
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    except ValueError as exc:
        malformed(field, f"invalid timestamp {{}} ({exc})", value)
        return None
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        try:
            dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        except OverflowError:
            malformed(field, "timestamp {} is out of range", value)
            return None
    return iso_ms(dt)


def ms_epoch_to_iso(value: Any, field: str) -> str | None:
    """Milliseconds since the Unix epoch (number or decimal string)."""
    ms = opt_int(value, field)
    if ms is None:
        return None
    try:
        return iso_ms(_EPOCH + timedelta(milliseconds=ms))
    except OverflowError:
        malformed(field, "timestamp {} is out of range", value)
        return None


def seconds_epoch_to_iso(value: int, field: str) -> str | None:
    try:
        return iso_ms(_EPOCH + timedelta(seconds=value))
    except OverflowError:
        malformed(field, "timestamp {} is out of range", value)
        return None


_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime_to_iso(value: Any, field: str) -> str | None:
    """Windows FILETIME (100-ns intervals since 1601-01-01 UTC)."""
    ticks = opt_int(value, field)
    if ticks is None:
        return None
    try:
        return iso_ms(_FILETIME_EPOCH + timedelta(microseconds=ticks // 10))
    except OverflowError:
        malformed(field, "FILETIME {} is out of range", value)
        return None


# --- ECS documents that need no mapping -----------------------------------------------------------

# (field, kind): the subset we emit from records that are already ECS.
ECS_SUBSET: tuple[tuple[str, str], ...] = (
    ("@timestamp", "ts"),
    ("event.category", "list"),
    ("event.type", "list"),
    ("event.action", "str"),
    ("event.code", "str"),
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
