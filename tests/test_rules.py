"""Rules as data: the seed rule, defaults, other revisions with no code change, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.rules.model import DEFAULT_RULE_FILE, RuleError, load_rule, load_rules

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
SEED_QUERY = (
    'process where host.os.type == "windows" and event.type == "start" and (process.name : "client32.exe" or '
    '?process.pe.original_file_name == "client32.exe" or process.parent.name : "client32.exe") and ( '
    'process.executable : ("?:\\\\Users\\\\*.exe", "?:\\\\ProgramData\\\\*.exe", '
    '"\\\\Device\\\\HarddiskVolume?\\\\Users\\\\*.exe", "\\\\Device\\\\HarddiskVolume?\\\\ProgramData\\\\*.exe") or '
    '?process.parent.executable : ("?:\\\\Users\\\\*\\\\client32.exe", "?:\\\\ProgramData\\\\*\\\\client32.exe") )'
)


def _event(executable: str, parent: str = "C:\\Windows\\explorer.exe") -> dict[str, object]:
    return {
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"os": {"type": "windows"}},
        "process": {
            "name": executable.rsplit("\\", 1)[-1],
            "executable": executable,
            "parent": {"name": parent.rsplit("\\", 1)[-1], "executable": parent},
        },
    }


def test_seed_rule_metadata() -> None:
    (rule,) = load_rules()
    assert rule.path == str(DEFAULT_RULE_FILE)
    assert rule.rule_id == "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891"
    assert rule.name == "NetSupport Manager Execution from an Unusual Path"
    assert (rule.severity, rule.risk_score, rule.version) == ("high", 73, 1)
    assert (rule.interval, rule.from_, rule.max_signals, rule.interval_seconds) == ("5m", "now-9m", 100, 300)
    assert rule.threat[0]["tactic"]["id"] == "TA0011"
    assert rule.threat[0]["technique"][0]["id"] == "T1219"
    assert "Tactic: Command and Control" in rule.tags
    assert rule.note is not None
    for part in (
        "Possible investigation steps",
        "False positive analysis",
        "Legitimate IT support",
        "Response and remediation",
    ):
        assert part in rule.note


def test_seed_query_is_exactly_the_published_one() -> None:
    (rule,) = load_rules()
    assert " ".join(rule.query.split()) == " ".join(SEED_QUERY.split())


def test_later_revision_loads_without_code_change() -> None:
    v1 = load_rules()[0]
    v2 = load_rule(FIXTURES / "netsupport_v2_harddiskvolume_star.toml")
    assert v2.version == 2 and v2.rule_id == v1.rule_id
    ten = _event("\\Device\\HarddiskVolume12\\Users\\bob\\AppData\\client32.exe")
    three = _event("\\Device\\HarddiskVolume3\\Users\\bob\\AppData\\client32.exe")
    assert v1.compiled.matches(three) and v2.compiled.matches(three)
    assert not v1.compiled.matches(ten)  # `?` is exactly one character
    assert v2.compiled.matches(ten)


def test_absent_keys_take_elastic_defaults() -> None:
    rule = load_rule(FIXTURES / "minimal_rule.toml")
    assert (rule.interval, rule.max_signals, rule.version, rule.from_) == ("5m", 100, 1, "now-6m")
    assert rule.compiled.matches(_event("C:\\Users\\a\\notepad.exe"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unsupported_type.toml", "only EQL rules are supported"),
        ("sequence_rule.toml", "sequence"),
        ("does_not_exist.toml", "cannot read rule file"),
    ],
)
def test_refused_rules_say_why(name: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        load_rule(FIXTURES / name)


def test_not_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[rule\nname=")
    with pytest.raises(RuleError, match="not a valid TOML rule file"):
        load_rule(bad)


def test_same_rule_twice_is_refused() -> None:
    with pytest.raises(RuleError, match="already loaded"):
        load_rules([DEFAULT_RULE_FILE, DEFAULT_RULE_FILE])
