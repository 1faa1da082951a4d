"""CrowdStrike FDR categorisation ([tables.categories] of detector/sources/maps/crowdstrike_fdr.toml, the
complete params table of the crowdstrike package's categorize.yml) and the per-category choice of process fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import normalize
from detector.sources.base import lookup
from detector.sources.mapping import builtin_mapping

TABLE = builtin_mapping("crowdstrike_fdr").tables["categories"]

# event_simpleName -> (event.category, event.type, event.kind), as the map's table holds them.
CATEGORIES: dict[str, tuple[list[str], list[str], str]] = {
    name: (row["category"], row["type"], row["kind"]) for name, row in TABLE.items()
}

# categorize.yml @ 0a4de859 has 773 params entries; every one sets category, type and kind, and all but 51 also
# set outcome (which we do not emit).
PIPELINE_ROWS = 773

# Written out independently of the transcription: every name categorize.yml (integrations commit
# 0a4de859b85ee974f5981e41dd745b07c327baa1, all 773 entries) maps to a process category with a "start" type.
PROCESS_STARTS = {
    "ActiveDirectoryIncomingPsExecExecution2",
    "ClassifiedProcessStart",
    "CreateProcessArgs",
    "CreateThreadKernelNoStartImage",
    "CreateThreadNoStartImage",
    "FileWrittenAndExecutedInContainer",
    "FlashThreadCreateProcess",
    "HostedServiceStarted",
    "KernelServiceStarted",
    "PhpExecuteScript",
    "ProcessExecOnRDPFile",
    "ProcessExecOnWinRMFile",
    "ProcessRollup",
    "ProcessRollup2",
    "ProcessSessionCreated",
    "PtyAttached",
    "RecentlyModifiedFileExecutedInContainer",
    "RemoteThreadCreate",
    "ServiceStarted",
    "SuspectCreateThreadStack",
    "SyntheticProcessRollup2",
    "WSLDistributionStarted",
    "WSLVMStarted",
    "WmiCreateProcess",
}

USER_EXE = "\\Device\\HarddiskVolume3\\Users\\bob\\AppData\\Roaming\\NSM\\client32.exe"


def record(name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_simpleName": name,
        "event_platform": "Win",
        "aid": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "cid": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "timestamp": "1731300001000",
        "ComputerName": "WKS-FIN-0042",
        "ImageFileName": USER_EXE,
        "ParentBaseFileName": "explorer.exe",
        "CommandLine": '"client32.exe" /silent',
    }
    base.update(fields)
    return base


def one_event(raw: dict[str, Any]) -> dict[str, Any]:
    source, events = normalize(raw)
    assert source == "crowdstrike_fdr" and len(events) == 1
    return events[0]


def test_the_table_is_the_whole_pipeline_table() -> None:
    assert len(TABLE) == PIPELINE_ROWS
    for name, row in TABLE.items():
        # The keys a params entry can have; category, type and kind are in every entry at this commit.
        assert {"category", "type", "kind"} <= set(row) <= {"category", "type", "kind", "outcome"}, name
    assert sum("outcome" not in row for row in TABLE.values()) == 51


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_every_row_sets_category_type_and_kind(name: str) -> None:
    # The script overwrites event.<key> with each key of the entry (lists copied in order); a name's row
    # also replaces the ["file"] the *Written set processor wrote first.
    category, types, kind = CATEGORIES[name]
    ev = one_event(record(name))
    assert lookup(ev, "event.category") == list(category)
    assert lookup(ev, "event.type") == list(types)
    assert lookup(ev, "event.kind") == kind
    assert lookup(ev, "event.action") == name
    assert lookup(ev, "event.outcome") is None  # in the table, not in the subset we emit


def test_the_process_start_rows_are_exactly_the_pipelines() -> None:
    starts = {n for n, (cat, typ, _) in CATEGORIES.items() if "process" in cat and "start" in typ}
    assert starts == PROCESS_STARTS


@pytest.mark.parametrize(
    ("name", "category", "types", "kind"),
    [
        # Rows this detector used to get wrong, checked against categorize.yml by hand.
        ("DnsRequest", ["network"], ["protocol"], "event"),
        ("ProcessBlocked", ["process"], ["access"], "alert"),
        ("ProcessRollup2Stats", ["process"], ["info"], "state"),
        ("RansomwareOpenFile", ["file"], ["access"], "event"),
        ("NetworkConnectIP4", ["network"], ["start", "connection"], "event"),
        ("ProcessExecOnRDPFile", ["process", "file"], ["start"], "event"),
        ("DriverLoad", ["driver"], ["start"], "event"),
        # Rows the complete table added (the subset had only process/library/driver/network/file/logon names).
        ("AwsEc2Instance", ["host", "configuration"], ["info"], "asset"),
        ("ZipFileWritten", ["file"], ["creation"], "event"),
        ("SSHClientAuthenticated", ["authentication", "network"], ["start"], "event"),
    ],
)
def test_rows_checked_by_hand(name: str, category: list[str], types: list[str], kind: str) -> None:
    ev = one_event(record(name))
    assert (lookup(ev, "event.category"), lookup(ev, "event.type"), lookup(ev, "event.kind")) == (
        category,
        types,
        kind,
    )


def test_unlisted_written_names_are_file_events_without_type() -> None:
    # categorize.yml's first processor sets only event.category for any *Written name.
    assert "SomeFutureFileWritten" not in TABLE
    ev = one_event(record("SomeFutureFileWritten"))
    assert lookup(ev, "event.category") == ["file"]
    assert lookup(ev, "event.type") is None and lookup(ev, "event.kind") is None


def test_unknown_names_get_no_category() -> None:
    # Every name the pipeline knows has a row now (AwsEc2Instance, once the example here, is host/configuration
    # info, kind asset), so the example is a name no categorize.yml lists.
    assert "SomeFutureTelemetryEvent" not in TABLE
    ev = one_event(record("SomeFutureTelemetryEvent"))
    assert lookup(ev, "event.category") is None and lookup(ev, "event.type") is None
    # Not a library or driver event, so ImageFileName is still the process (as the pipeline does).
    assert lookup(ev, "process.executable") == USER_EXE


@pytest.mark.parametrize("name", sorted(PROCESS_STARTS))
def test_process_starts_carry_the_process_fields(name: str) -> None:
    ev = one_event(record(name, OriginalFilename="client32.exe"))
    assert lookup(ev, "process.executable") == USER_EXE
    assert lookup(ev, "process.name") == "client32.exe"
    assert lookup(ev, "process.command_line") == '"client32.exe" /silent'
    assert lookup(ev, "process.parent.name") == "explorer.exe"
    assert lookup(ev, "process.pe.original_file_name") == "client32.exe"


def test_driver_load_keeps_the_driver_out_of_process_executable() -> None:
    # The pipeline renames ImageFileName to dll.path for driver events, never process.executable.
    ev = one_event(record("DriverLoad", ImageFileName="\\SystemRoot\\System32\\drivers\\evil.sys"))
    assert lookup(ev, "process.executable") is None and lookup(ev, "process.name") is None
    assert lookup(ev, "process.pe.original_file_name") is None


def test_library_load_names_the_loading_process() -> None:
    raw = record(
        "ClassifiedModuleLoad",
        ImageFileName="\\Device\\HarddiskVolume3\\Windows\\System32\\wininet.dll",
        TargetImageFileName=USER_EXE,
    )
    ev = one_event(raw)
    assert lookup(ev, "process.executable") == USER_EXE
    assert lookup(ev, "process.name") == "client32.exe"
    mac = one_event({**raw, "event_platform": "Mac"})
    assert lookup(mac, "process.executable") is None and lookup(mac, "process.name") is None


def test_network_events_take_the_name_from_context_base_file_name() -> None:
    ev = one_event(record("NetworkConnectIP4", ContextBaseFileName="client32.exe", ImageFileName="\\x\\other.exe"))
    assert lookup(ev, "process.executable") == "\\x\\other.exe"
    assert lookup(ev, "process.name") == "client32.exe"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules())


@pytest.mark.parametrize("name", ["ProcessRollup", "ProcessRollup2", "WmiCreateProcess", "ProcessExecOnRDPFile"])
def test_process_start_from_a_user_folder_alerts(engine: Engine, name: str) -> None:
    out = engine.process(json.dumps(record(name)).encode())
    assert out.rejection is None and out.source == "crowdstrike_fdr"
    assert len(out.alerts) == 1
    assert out.alerts[0]["process"]["name"] == "client32.exe"


@pytest.mark.parametrize("name", ["EndOfProcess", "ProcessRollup2Stats", "DriverLoad", "DnsRequest"])
def test_other_events_from_a_user_folder_do_not_alert(engine: Engine, name: str) -> None:
    out = engine.process(json.dumps(record(name)).encode())
    assert out.rejection is None and out.alerts == []
