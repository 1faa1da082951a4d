"""Rules as data: the elastic/detection-rules TOML layout, loaded and compiled once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from detector.rules.eql import CompiledQuery, EqlError, compile_query

BUILTIN_DIR = Path(__file__).with_name("builtin")
DEFAULT_RULE_FILE = BUILTIN_DIR / "netsupport_manager_unusual_path.toml"

# Elastic's defaults for keys a rule file may leave out.
DEFAULT_INTERVAL = "5m"
DEFAULT_FROM = "now-6m"
DEFAULT_MAX_SIGNALS = 100
DEFAULT_VERSION = 1

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# [rule.alert_suppression], as detection-rules' schema (definitions.py) and Kibana's API take it: group_by
# 1-3 non-empty field names, duration {value >= 1, unit s|m|h} (optional: absent is "per rule execution"),
# missing_fields_strategy "suppress" (Kibana's default) or "doNotSuppress".
SUPPRESSION_UNITS = {"s": 1, "m": 60, "h": 3600}
MISSING_FIELDS_STRATEGIES = ("suppress", "doNotSuppress")
DEFAULT_MISSING_FIELDS_STRATEGY = "suppress"
MAX_GROUP_BY = 3


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file and the problem."""


def duration_seconds(text: str) -> int:
    """Seconds in an Elastic duration such as "5m"; "now-9m" is accepted for `from`."""
    m = _DURATION.match(text.removeprefix("now-"))
    if not m:
        raise ValueError(f"not a duration: {text!r} (expected e.g. '5m', '30s', '1h')")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


@dataclass(frozen=True)
class AlertSuppression:
    """A rule's alert suppression: one alert per group of `group_by` values per `duration` (see
    detector/stream/suppress.py). `duration` None is Elastic's "per rule execution"."""

    group_by: tuple[str, ...]
    duration: tuple[int, str] | None = None  # (value, unit) as written, unit s, m or h
    missing_fields_strategy: str = DEFAULT_MISSING_FIELDS_STRATEGY

    @property
    def duration_seconds(self) -> int | None:
        return None if self.duration is None else self.duration[0] * SUPPRESSION_UNITS[self.duration[1]]

    def as_kibana(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group_by": list(self.group_by)}
        if self.duration is not None:
            out["duration"] = {"value": self.duration[0], "unit": self.duration[1]}
        out["missing_fields_strategy"] = self.missing_fields_strategy
        return out


def suppression_duration(text: str) -> tuple[int, str]:
    """'30m' -> (30, 'm'): a suppression duration as `--suppress-for` takes it (units s, m, h, as Kibana's)."""
    m = re.match(r"^\s*(\d+)\s*([smh])\s*$", text)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"not a suppression duration: {text!r} (expected a whole number >= 1 and s, m or h, e.g. 5m)")
    return int(m.group(1)), m.group(2)


def parse_alert_suppression(raw: Any, where: str) -> AlertSuppression:
    """[rule.alert_suppression] checked as detection-rules' schema checks it; any problem is a RuleError."""
    what = f"{where}: [rule.alert_suppression]"
    if not isinstance(raw, dict):
        raise RuleError(f"{what} must be a table")
    unknown = sorted(set(raw) - {"group_by", "duration", "missing_fields_strategy"})
    if unknown:
        raise RuleError(f"{what}: unknown key(s) {', '.join(unknown)}")
    group_by = raw.get("group_by")
    if (
        not isinstance(group_by, list)
        or not 1 <= len(group_by) <= MAX_GROUP_BY
        or not all(isinstance(f, str) and f.strip() for f in group_by)
    ):
        raise RuleError(f"{what}.group_by must be a list of 1 to {MAX_GROUP_BY} field names")
    if len(set(group_by)) != len(group_by):
        raise RuleError(f"{what}.group_by names a field twice")
    duration: tuple[int, str] | None = None
    if "duration" in raw:
        d = raw["duration"]
        if not isinstance(d, dict) or set(d) != {"value", "unit"}:
            raise RuleError(f"{what}.duration must be a table with value and unit")
        value, unit = d["value"], d["unit"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RuleError(f"{what}.duration.value must be a whole number of at least 1")
        if unit not in SUPPRESSION_UNITS:
            raise RuleError(f"{what}.duration.unit must be s, m or h, got {unit!r}")
        duration = (value, unit)
    strategy = raw.get("missing_fields_strategy", DEFAULT_MISSING_FIELDS_STRATEGY)
    if strategy not in MISSING_FIELDS_STRATEGIES:
        raise RuleError(f"{what}.missing_fields_strategy must be 'suppress' or 'doNotSuppress', got {strategy!r}")
    return AlertSuppression(tuple(group_by), duration, strategy)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    name: str
    description: str
    severity: str
    risk_score: int
    query: str
    compiled: CompiledQuery
    version: int = DEFAULT_VERSION
    type: str = "eql"
    language: str = "eql"
    interval: str = DEFAULT_INTERVAL
    from_: str = DEFAULT_FROM
    max_signals: int = DEFAULT_MAX_SIGNALS
    index: tuple[str, ...] = ()
    note: str | None = None
    setup: str | None = None
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    license: str | None = None
    timestamp_override: str | None = None
    false_positives: tuple[str, ...] = ()
    threat: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    alert_suppression: AlertSuppression | None = None

    @property
    def interval_seconds(self) -> int:
        return duration_seconds(self.interval)

    def as_kibana_rule(self) -> dict[str, Any]:
        """The rule's parameters as Kibana writes them under kibana.alert.rule.*."""
        return {
            "uuid": self.rule_id,
            "rule_id": self.rule_id,
            "name": self.name,
            "description": self.description,
            "severity": self.severity,
            "risk_score": self.risk_score,
            "version": self.version,
            "type": self.type,
            "language": self.language,
            "query": self.query,
            "index": list(self.index),
            "from": self.from_,
            "interval": self.interval,
            "max_signals": self.max_signals,
            "threat": [dict(t) for t in self.threat],
            "note": self.note,
            "references": list(self.references),
            "tags": list(self.tags),
            "author": list(self.author),
            "license": self.license,
            "false_positives": list(self.false_positives),
            "timestamp_override": self.timestamp_override,
            **({"alert_suppression": self.alert_suppression.as_kibana()} if self.alert_suppression else {}),
        }


def _str_list(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{where}: [rule].{key} must be a list of strings")
    return tuple(value)


def _opt_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise RuleError(f"{where}: [rule].{key} must be a string")
    return value


def rule_from_dict(doc: dict[str, Any], where: str = "<rule>") -> Rule:
    """Build a Rule from a parsed TOML document; every problem is a RuleError naming `where`."""
    raw = doc.get("rule")
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: no [rule] table (expected the elastic/detection-rules TOML layout)")
    for key in ("rule_id", "name", "description", "severity", "risk_score", "query"):
        if key not in raw:
            raise RuleError(f"{where}: [rule] is missing required key {key!r}")
    rule_type = raw.get("type", "eql")
    language = raw.get("language", "eql")
    if rule_type != "eql" or language != "eql":
        raise RuleError(
            f"{where}: unsupported rule type {rule_type!r} / language {language!r}; only EQL rules are supported"
        )
    for key in ("rule_id", "name", "description", "severity", "query"):
        if not isinstance(raw[key], str):
            raise RuleError(f"{where}: [rule].{key} must be a string")
    for key, default in (("risk_score", None), ("max_signals", DEFAULT_MAX_SIGNALS), ("version", 1)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RuleError(f"{where}: [rule].{key} must be a non-negative integer")
    interval = raw.get("interval", DEFAULT_INTERVAL)
    from_ = raw.get("from", DEFAULT_FROM)
    for key, value in (("interval", interval), ("from", from_)):
        try:
            duration_seconds(value if isinstance(value, str) else "")
        except ValueError as exc:
            raise RuleError(f"{where}: [rule].{key}: {exc}") from None
    threat = raw.get("threat", [])
    if not isinstance(threat, list) or not all(isinstance(t, dict) for t in threat):
        raise RuleError(f"{where}: [[rule.threat]] entries must be tables")
    try:
        compiled = compile_query(raw["query"])
    except EqlError as exc:
        raise RuleError(f"{where}: query refused: {exc}") from None
    metadata = doc.get("metadata", {})
    suppression = parse_alert_suppression(raw["alert_suppression"], where) if "alert_suppression" in raw else None
    return Rule(
        rule_id=raw["rule_id"],
        name=raw["name"],
        description=raw["description"].strip(),
        severity=raw["severity"],
        risk_score=raw["risk_score"],
        query=raw["query"],
        compiled=compiled,
        version=raw.get("version", DEFAULT_VERSION),
        type=rule_type,
        language=language,
        interval=interval,
        from_=from_,
        max_signals=raw.get("max_signals", DEFAULT_MAX_SIGNALS),
        index=_str_list(raw, "index", where),
        note=_opt_str(raw, "note", where),
        setup=_opt_str(raw, "setup", where),
        tags=_str_list(raw, "tags", where),
        references=_str_list(raw, "references", where),
        author=_str_list(raw, "author", where),
        license=_opt_str(raw, "license", where),
        timestamp_override=_opt_str(raw, "timestamp_override", where),
        false_positives=_str_list(raw, "false_positives", where),
        threat=tuple(threat),
        metadata=metadata if isinstance(metadata, dict) else {},
        path=where,
        alert_suppression=suppression,
    )


def with_suppression(rule: Rule, group_by: Sequence[str] | None, duration: str | None) -> Rule:
    """`rule` with `--suppress-by` / `--suppress-for` applied over its own [rule.alert_suppression].

    Fields replace the rule's group_by, a duration its duration; missing_fields_strategy stays the rule's.
    A duration alone needs the rule's own group_by. Errors are ValueErrors naming the option.
    """
    if not group_by and not duration:
        return rule
    base = rule.alert_suppression
    fields_ = tuple(f.strip() for f in group_by or () if f.strip())
    if group_by is not None and not 1 <= len(fields_) <= MAX_GROUP_BY:
        raise ValueError(f"--suppress-by: give 1 to {MAX_GROUP_BY} field names")
    if group_by is not None and len(set(fields_)) != len(fields_):
        raise ValueError("--suppress-by names a field twice")
    if not fields_ and base is None:
        raise ValueError(
            f"--suppress-for: rule {rule.name} has no [rule.alert_suppression] group_by; add --suppress-by"
        )
    spec = AlertSuppression(
        fields_ or (base.group_by if base else ()),
        suppression_duration(duration) if duration else (base.duration if base else None),
        base.missing_fields_strategy if base else DEFAULT_MISSING_FIELDS_STRATEGY,
    )
    return replace(rule, alert_suppression=spec)


def load_rule(path: str | Path) -> Rule:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RuleError(f"cannot read rule file {p}: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{p}: not a valid TOML rule file: {exc}") from None
    return rule_from_dict(doc, str(p))


def load_rules(paths: Iterable[str | Path] | None = None) -> list[Rule]:
    """Load the given rule files, or the built-in seed rule when none are given."""
    chosen: Sequence[str | Path] = list(paths or []) or [DEFAULT_RULE_FILE]
    rules = [load_rule(p) for p in chosen]
    seen: dict[tuple[str, int], str] = {}
    for r in rules:
        key = (r.rule_id, r.version)
        if key in seen:
            raise RuleError(f"{r.path}: rule {r.rule_id} version {r.version} is already loaded from {seen[key]}")
        seen[key] = r.path or "?"
    return rules
