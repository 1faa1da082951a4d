"""Users add a source without code: a mapping file (TOML, the built-in sources' format) loaded by
`--source-map` (scan, normalize, replay) or DETECTOR_SOURCE_MAPS (worker). The example is osquery's
process_etw_events table (deploy/source-maps/), with fixtures written for these tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.cli.main import main
from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import (
    DETECTION_ORDER,
    SOURCES,
    MappingError,
    add_source_maps,
    detect_source,
    normalize,
    remove_user_sources,
    user_sources,
)
from detector.sources.mapping import BEFORE, load_mapping, parse_mapping
from detector.stream.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
OSQUERY_MAP = REPO / "deploy" / "source-maps" / "osquery_process_etw.toml"
OSQUERY_DATA = REPO / "tests" / "fixtures" / "source_maps" / "osquery_process_etw.ndjson"


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    remove_user_sources()
    yield
    remove_user_sources()


def _records() -> list[dict[str, object]]:
    return [json.loads(line) for line in OSQUERY_DATA.read_text().splitlines()]


def test_the_example_map_adds_a_source_detected_after_the_built_in_ones() -> None:
    assert "osquery_process_etw" not in SOURCES
    assert add_source_maps([OSQUERY_MAP]) == ["osquery_process_etw"]
    assert user_sources() == {"osquery_process_etw": str(OSQUERY_MAP.resolve())}
    records = _records()
    assert all(detect_source(r) == "osquery_process_etw" for r in records)
    # No built-in source's record is taken by the new markers.
    for name in DETECTION_ORDER:
        raw = (REPO / "tests" / "fixtures" / "sources" / name / "positives.ndjson").read_text().splitlines()[0]
        assert detect_source(json.loads(raw)) == name


def test_osquery_rows_normalise_to_ecs_with_elastic_semantics() -> None:
    add_source_maps([OSQUERY_MAP])
    first = _records()[0]
    name, (event,) = normalize(first)
    assert name == "osquery_process_etw"
    assert event["@timestamp"] == "2026-11-28T08:00:01.000Z"
    assert event["event"] == {"kind": "event", "module": "osquery", "category": ["process"], "type": ["start"]}
    assert event["host"] == {"name": "WKS-001", "os": {"type": "windows"}}
    assert event["process"]["name"] == "client32.exe"
    assert event["process"]["executable"] == "C:\\Users\\alice\\AppData\\Roaming\\Sysupdate\\client32.exe"
    assert event["process"]["pid"] == 4242 and event["process"]["parent"] == {"pid": 1200}
    assert event["user"] == {"domain": "CORP", "name": "alice"}
    removed = next(r for r in _records() if r["action"] == "removed")
    assert normalize(removed) == ("osquery_process_etw", [])  # not covered: a repeat of an earlier row


def test_scan_with_a_source_map_alerts_on_the_positives(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    summary = tmp_path / "summary.json"
    code = main(
        ["scan", "--no-progress", "--source-map", str(OSQUERY_MAP), "--summary-json", str(summary), str(OSQUERY_DATA)]
    )
    assert code == 0
    alerts = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert sorted(a["host"]["name"] for a in alerts) == ["WKS-001", "WKS-002", "WKS-007"]
    assert {a["detector.source"] for a in alerts} == {"osquery_process_etw"}
    report = json.loads(summary.read_text())
    assert report["alerts"] == 3 and report["rejected"] == 0
    assert report["malformed_values_by_field"] == {"columns.pid": 1}


def test_scan_can_pin_a_user_source_and_refuses_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "scan",
                "--no-progress",
                "--source-map",
                str(OSQUERY_MAP),
                "--source",
                "osquery_process_etw",
                str(OSQUERY_DATA),
            ]
        )
        == 0
    )
    remove_user_sources()
    assert main(["scan", "--no-progress", "--source", "osquery_process_etw", str(OSQUERY_DATA)]) == 2
    assert "unknown source 'osquery_process_etw'" in capsys.readouterr().err


def test_the_worker_reads_source_maps_from_its_setting() -> None:
    cfg = load_config(env={"DETECTOR_SOURCE_MAPS": str(OSQUERY_MAP)})
    assert cfg.source_maps == (str(OSQUERY_MAP),)
    assert cfg.topics["telemetry.osquery_process_etw"] == "osquery_process_etw"
    # Loading the same file again (a config read twice) is no conflict.
    load_config(env={"DETECTOR_SOURCE_MAPS": str(OSQUERY_MAP), "DETECTOR_TOPICS": "edr=osquery_process_etw"})


def test_a_bad_map_stops_the_worker_at_start_with_the_setting_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[source]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"source_maps \(DETECTOR_SOURCE_MAPS\): .*bad.toml: .*description"):
        load_config(env={"DETECTOR_SOURCE_MAPS": str(bad)})


def test_a_user_source_alerts_in_the_engine_like_a_built_in_one() -> None:
    add_source_maps([OSQUERY_MAP])
    engine = Engine(load_rules())
    outcomes = [engine.process(line.encode()) for line in OSQUERY_DATA.read_text().splitlines()]
    assert [bool(o.alerts) for o in outcomes] == [True, True, False, False, False, False, True]
    # The prefilter is sound for the new source: every record that alerts passes it.
    unfiltered = Engine(load_rules(), use_prefilter=False)
    for line in OSQUERY_DATA.read_text().splitlines():
        assert bool(unfiltered.process(line.encode()).alerts) == bool(engine.process(line.encode()).alerts)


# --- hostile and broken mapping files: a clear message, nothing executed ---------------------------

GOOD = OSQUERY_MAP.read_text()


def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


BROKEN: list[tuple[str, str, str]] = [
    ("not_toml", "[source\nname = 1", "not valid TOML"),
    ("unknown_top_key", GOOD + "\n[python]\ncode = 'import os'\n", "unknown key 'python'"),
    ("step_named", GOOD + '\n[steps]\nafter = "anything"\n', "only the built-in mappings may name a code step"),
    ("bad_name", _replace('name = "osquery_process_etw"', 'name = "../../etc/passwd"'), "must be lower-case letters"),
    ("builtin_name", _replace('name = "osquery_process_etw"', 'name = "crowdstrike_fdr"'), "is a built-in source"),
    ("no_detect", GOOD.replace("[[detect]]", "[[ignored]]"), "unknown key 'ignored'"),
    ("unknown_converter", _replace('convert = "basename"', 'convert = "eval"'), "unknown converter 'eval'"),
    ("parser_second", _replace('convert = "basename"', 'convert = ["basename", "long"]'), "can only come first"),
    ("missing_table", _replace('table = "etw_types"', 'table = "nowhere"'), "no [tables.nowhere]"),
    ("from_and_value", _replace('from = "hostIdentifier"', 'from = "hostIdentifier"\nvalue = "x"'), "exactly one of"),
    ("bad_field", _replace('from = "hostIdentifier"', 'from = "host Identifier; rm -rf /"'), "is not a field name"),
    # The prefilter trusts these fields to be text copied from the record: a made-up value would be skipped.
    ("verbatim_constant", _replace('to = "host.os.type"', 'to = "process.parent.name"'), "cannot come from a constant"),
    (
        "verbatim_lower",
        _replace('convert = "basename"', 'convert = ["keyword", "lower"]'),
        "cannot come from converter 'lower'",
    ),
    (
        "condition_without_test",
        _replace('{ field = "hostIdentifier", type = "string" }', '{ field = "hostIdentifier" }'),
        "say what to test",
    ),
    (
        "detect_parses",
        _replace('{ field = "hostIdentifier", type = "string" }', '{ field = "hostIdentifier", parses = "long" }'),
        "tests the record only",
    ),
    (
        "wrong_type",
        _replace('to = "event.module"\nvalue = "osquery"', 'to = "event.module"\nvalue = { a = 1 }'),
        "a string, number",
    ),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BROKEN], ids=[i for i, _, _ in BROKEN])
def test_a_broken_map_fails_to_load_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        add_source_maps([path])
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert set(SOURCES) == set(DETECTION_ORDER)  # nothing half-added


def test_a_map_cannot_name_a_built_in_step_either(tmp_path: Path) -> None:
    # Steps are our code; a user's file naming one (even one that exists) is refused, so no file can make
    # the detector run code of its choosing, and loading is only parsing TOML.
    for name in BEFORE or {"any": None}:
        with pytest.raises(MappingError, match="only the built-in mappings may name a code step"):
            parse_mapping(GOOD + f'\n[steps]\nbefore = "{name}"\n')


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe[source]", "not UTF-8"), (b"#" * (1 << 20 + 1), "over the")],
    ids=["not_utf8", "too_big"],
)
def test_unreadable_map_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "map.toml"
    path.write_bytes(content)
    with pytest.raises(MappingError, match=message):
        load_mapping(path)
    with pytest.raises(MappingError, match="cannot read it"):
        load_mapping(tmp_path / "absent.toml")


def test_two_files_may_not_define_one_source(tmp_path: Path) -> None:
    copy = tmp_path / "copy.toml"
    copy.write_text(GOOD)
    with pytest.raises(MappingError, match="already defined by"):
        add_source_maps([OSQUERY_MAP, copy])
    assert "osquery_process_etw" not in SOURCES


def test_scan_reports_a_broken_map_as_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(_replace('convert = "basename"', 'convert = "eval"'))
    assert main(["scan", "--source-map", str(bad), str(OSQUERY_DATA)]) == 2
    err = capsys.readouterr().err
    assert "--source-map" in err and "unknown converter 'eval'" in err
