"""Synthetic raw telemetry for all eight sources: benign noise, NetSupport positives, near-misses, garbage.

Used by the tests (differential prefilter proof, streaming tests), the benchmarks and the bundled samples.
Each generated record says what the generator meant it to be (`kind`, `expect_alert`); the tests check
that the engine agrees, which cross-checks normalisers, compiler and generator against each other.

Regenerate the bundled samples:

    python -m detector.synth --count 2000 --seed 7 --netsupport-rate 0.01 --malformed-rate 0.005 \
        | gzip -n > samples/corpus.ndjson.gz
    python -m detector.synth --demo samples/demo
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from detector.sources import SOURCES

SOURCE_NAMES = tuple(SOURCES)
_EPOCH = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")
_HOSTS = tuple(f"WKS-{dept}-{n:04d}" for dept in ("FIN", "HR", "ENG", "OPS", "SALES") for n in (7, 42, 107, 311))
_BENIGN = (
    (
        "C:\\Windows\\System32\\svchost.exe",
        "svchost.exe -k netsvcs -p -s Schedule",
        "C:\\Windows\\System32\\services.exe",
    ),
    (
        "C:\\Windows\\System32\\conhost.exe",
        "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
        "C:\\Windows\\System32\\cmd.exe",
    ),
    (
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        '"chrome.exe" --type=renderer --lang=en-US',
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    ),
    (
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        '"OUTLOOK.EXE" /recycle',
        "C:\\Windows\\explorer.exe",
    ),
    (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell.exe -NoProfile -Command Get-Date",
        "C:\\Windows\\explorer.exe",
    ),
    ("C:\\Windows\\System32\\cmd.exe", 'cmd.exe /c "echo build"', "C:\\Windows\\explorer.exe"),
    (
        "C:\\Users\\{u}\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
        '"Teams.exe" --system-initiated',
        "C:\\Windows\\explorer.exe",
    ),
    (
        "C:\\Windows\\System32\\SearchProtocolHost.exe",
        "SearchProtocolHost.exe Global\\UsGthrFltPipeMssGthrPipe1_",
        "C:\\Windows\\System32\\SearchIndexer.exe",
    ),
    (
        "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
        '"firefox.exe" -contentproc -childID 7',
        "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
    ),
    ("C:\\Windows\\System32\\taskhostw.exe", "taskhostw.exe Install $(Arg0)", "C:\\Windows\\System32\\svchost.exe"),
    (
        "C:\\Users\\{u}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
        '"Code.exe" --type=utility',
        "C:\\Windows\\explorer.exe",
    ),
    ("C:\\Windows\\System32\\msiexec.exe", "msiexec.exe /V", "C:\\Windows\\System32\\services.exe"),
)
# Where each source can carry pe.original_file_name (so a renamed client32 is caught).
_HAS_ORIGINAL_NAME = frozenset({"endpoint", "windows_sysmon", "winlogbeat", "m365_defender", "endgame"})
# Where each source can say "process ended" for a near-miss.
_HAS_END = frozenset({"endpoint", "crowdstrike_fdr", "system_security", "sentinel_one_cloud_funnel", "endgame"})
# Where each source can say "not Windows".
_HAS_OS = frozenset({"endpoint", "crowdstrike_fdr", "sentinel_one_cloud_funnel", "endgame"})


@dataclass(frozen=True, slots=True)
class Generated:
    source: str
    raw: bytes  # one JSON line, no newline
    kind: str  # benign | positive | near_miss | malformed
    expect_alert: bool | None  # None for malformed records
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Proc:
    """What happened, before a vendor writes it down."""

    ts: datetime
    host: str
    user: str
    executable: str
    command_line: str
    parent_executable: str
    pid: int
    ppid: int
    original_name: str | None = None
    ended: bool = False
    os: str = "windows"

    @property
    def name(self) -> str:
        return self.executable.replace("/", "\\").rsplit("\\", 1)[-1]

    @property
    def parent_name(self) -> str:
        return self.parent_executable.replace("/", "\\").rsplit("\\", 1)[-1]


def _iso(ts: datetime, digits: int = 7) -> str:
    text = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: 20 + min(digits, 6)] + ("0" * (digits - 6) if digits > 6 else "") + "Z"


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _guid(rng: random.Random) -> str:
    h = _hex(rng, 32).upper()
    return f"{{{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}}}"


def _basename(path: str) -> str:
    return path.rsplit("\\", 1)[-1]


def _device_path(path: str, volume: int) -> str:
    """C:\\x -> \\Device\\HarddiskVolumeN\\x, as CrowdStrike writes image paths."""
    return f"\\Device\\HarddiskVolume{volume}" + path[2:] if path[1:2] == ":" else path


# -- one writer per source: Proc -> the vendor's raw record -------------------------------------------------
def _endpoint(p: Proc, rng: random.Random) -> dict[str, Any]:
    ts = _iso(p.ts)
    proc: dict[str, Any] = {
        "name": p.name,
        "executable": p.executable,
        "pid": p.pid,
        "entity_id": _hex(rng, 40),
        "command_line": p.command_line,
        "args": p.command_line.split(" "),
        "args_count": len(p.command_line.split(" ")),
        "working_directory": f"C:\\Users\\{p.user}\\",
        "hash": {"md5": _hex(rng, 32), "sha1": _hex(rng, 40), "sha256": _hex(rng, 64)},
        "code_signature": {
            "exists": True,
            "trusted": True,
            "status": "trusted",
            "subject_name": "Microsoft Corporation",
        },
        "parent": {"name": p.parent_name, "executable": p.parent_executable, "pid": p.ppid, "entity_id": _hex(rng, 40)},
        "Ext": {"token": {"integrity_level_name": "medium", "elevation_level": "default"}, "ancestry": [_hex(rng, 40)]},
    }
    if p.original_name:
        proc["pe"] = {"original_file_name": p.original_name}
    etype = "end" if p.ended else "start"
    return {
        "@timestamp": ts,
        "agent": {"type": "endpoint", "version": "8.15.3", "id": _hex(rng, 32)},
        "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.11.0"},
        "event": {
            "action": etype,
            "category": ["process"],
            "type": [etype],
            "kind": "event",
            "module": "endpoint",
            "dataset": "endpoint.events.process",
            "id": _hex(rng, 24),
            "created": ts,
            "sequence": rng.randint(1, 10**7),
        },
        "host": {
            "name": p.host.lower(),
            "hostname": p.host.lower(),
            "id": _hex(rng, 32),
            "os": {
                "type": p.os,
                "family": p.os,
                "name": "Windows" if p.os == "windows" else "Ubuntu",
                "version": "22H2",
            },
            "architecture": "x86_64",
            "ip": [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"],
        },
        "user": {
            "name": p.user,
            "domain": "CORP",
            "id": f"S-1-5-21-1004336348-1177238915-682003330-{rng.randint(1000, 9999)}",
        },
        "process": proc,
        "message": "Endpoint process event",
    }


def _endgame(p: Proc, rng: random.Random) -> dict[str, Any]:
    doc = _endpoint(p, rng)
    doc["agent"] = {"type": "endgame", "id": _hex(rng, 32), "version": "3.53.1"}
    doc.pop("data_stream")
    doc["event"].update(
        {"module": "endgame", "dataset": "esensor", "action": "creation_event" if not p.ended else "termination_event"}
    )
    doc["event"]["category"] = "process"
    doc["event"]["type"] = "end" if p.ended else "start"
    doc["process"].pop("Ext")
    return doc


def _crowdstrike(p: Proc, rng: random.Random) -> dict[str, Any]:
    volume = (
        int(p.executable.split("HarddiskVolume", 1)[1].split("\\", 1)[0]) if "HarddiskVolume" in p.executable else 3
    )
    image = p.executable if p.executable.startswith("\\Device\\") else _device_path(p.executable, volume)
    name = "EndOfProcess" if p.ended else "ProcessRollup2"
    rec: dict[str, Any] = {
        "event_simpleName": name,
        "event_platform": {"windows": "Win", "linux": "Lin", "macos": "Mac"}[p.os],
        "name": f"{name}V19",
        "aid": _hex(rng, 32),
        "cid": _hex(rng, 32),
        "id": f"{_hex(rng, 8)}-{_hex(rng, 4)}-11ef-{_hex(rng, 4)}-{_hex(rng, 12)}",
        "timestamp": str(int(p.ts.timestamp() * 1000)),
        "ConfigBuild": "1007.3.0019107.1",
        "ConfigStateHash": str(rng.randint(10**8, 10**9)),
        "ComputerName": p.host,
        "UserName": p.user,
        "UserSid": f"S-1-5-21-3623811015-3361044348-30300820-{rng.randint(1000, 9999)}",
        "RawProcessId": str(p.pid),
        "TargetProcessId": str(rng.randint(10**11, 10**12)),
        "ParentProcessId": str(rng.randint(10**11, 10**12)),
        "SourceProcessId": str(rng.randint(10**11, 10**12)),
        "ParentBaseFileName": p.parent_name,
        "ImageFileName": image,
        "CommandLine": p.command_line,
        "SHA256HashData": _hex(rng, 64),
        "MD5HashData": _hex(rng, 32),
        "SHA1HashData": _hex(rng, 40),
        "AuthenticationId": str(rng.randint(100, 999)),
        "IntegrityLevel": "8192",
        "SessionId": "1",
        "TokenType": "1",
        "ProcessStartTime": f"{p.ts.timestamp():.3f}",
        "ProcessCreateFlags": "1024",
        "ImageSubsystem": "2",
        "EffectiveTransmissionClass": "3",
        "Entitlements": "15",
        "aip": f"81.2.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    }
    return rec


def _m365_record(p: Proc, rng: random.Random) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ActionType": "ProcessCreated",
        "DeviceId": _hex(rng, 40),
        "DeviceName": f"{p.host.lower()}.corp.example",
        "AccountDomain": "corp",
        "AccountName": p.user,
        "AccountSid": f"S-1-5-21-1874808502-2282282112-3464708742-{rng.randint(1000, 9999)}",
        "AccountObjectId": None,
        "AccountUpn": None,
        "AdditionalFields": "[]",
        "AppGuardContainerId": None,
        "FileName": p.name,
        "FolderPath": p.executable,
        "FileSize": rng.randint(10**4, 10**7),
        "ProcessId": p.pid,
        "ProcessCommandLine": p.command_line,
        "ProcessCreationTime": _iso(p.ts),
        "ProcessIntegrityLevel": "Medium",
        "ProcessTokenElevation": "TokenElevationTypeDefault",
        "ProcessVersionInfoCompanyName": "Microsoft Corporation",
        "ProcessVersionInfoFileDescription": "Application",
        "ProcessVersionInfoInternalFileName": p.name,
        "ProcessVersionInfoOriginalFileName": p.original_name or p.name,
        "ProcessVersionInfoProductName": "Microsoft Windows Operating System",
        "ProcessVersionInfoProductVersion": "10.0.19041.2251",
        "InitiatingProcessAccountDomain": "corp",
        "InitiatingProcessAccountName": p.user,
        "InitiatingProcessAccountObjectId": None,
        "InitiatingProcessAccountSid": f"S-1-5-21-1874808502-2282282112-3464708742-{rng.randint(1000, 9999)}",
        "InitiatingProcessAccountUpn": None,
        "InitiatingProcessCommandLine": p.parent_name,
        "InitiatingProcessCreationTime": _iso(p.ts - timedelta(minutes=20)),
        "InitiatingProcessFileName": p.parent_name,
        "InitiatingProcessFileSize": rng.randint(10**4, 10**7),
        "InitiatingProcessFolderPath": p.parent_executable.lower(),
        "InitiatingProcessId": p.ppid,
        "InitiatingProcessIntegrityLevel": "Medium",
        "InitiatingProcessLogonId": rng.randint(10**5, 10**7),
        "InitiatingProcessMD5": _hex(rng, 32),
        "InitiatingProcessSHA1": _hex(rng, 40),
        "InitiatingProcessSHA256": _hex(rng, 64),
        "InitiatingProcessParentCreationTime": _iso(p.ts - timedelta(hours=2)),
        "InitiatingProcessParentFileName": "userinit.exe",
        "InitiatingProcessParentId": rng.randint(100, 9999),
        "InitiatingProcessSignatureStatus": "Valid",
        "InitiatingProcessSignerType": "OsVendor",
        "InitiatingProcessTokenElevation": "TokenElevationTypeDefault",
        "InitiatingProcessVersionInfoCompanyName": "Microsoft Corporation",
        "InitiatingProcessVersionInfoFileDescription": "Windows Explorer",
        "InitiatingProcessVersionInfoInternalFileName": p.parent_name,
        "InitiatingProcessVersionInfoOriginalFileName": p.parent_name,
        "InitiatingProcessVersionInfoProductName": "Microsoft Windows Operating System",
        "InitiatingProcessVersionInfoProductVersion": "10.0.19041.1806",
        "LogonId": rng.randint(10**5, 10**7),
        "MD5": _hex(rng, 32),
        "SHA1": _hex(rng, 40),
        "SHA256": _hex(rng, 64),
        "MachineGroup": "UnassignedGroup",
        "ReportId": rng.randint(1, 10**6),
        "Timestamp": _iso(p.ts),
    }
    return {
        "Tenant": "DefaultTenant",
        "category": "AdvancedHunting-DeviceProcessEvents",
        "operationName": "Publish",
        "properties": props,
        "tenantId": "4f1a2b3c-0000-4d5e-9f00-123456789abc",
        "time": _iso(p.ts + timedelta(minutes=3)),
    }


def _m365(p: Proc, rng: random.Random) -> dict[str, Any]:
    return {"records": [_m365_record(p, rng)]}


def _sentinel_one(p: Proc, rng: random.Random) -> dict[str, Any]:
    ms = int(p.ts.timestamp() * 1000)
    story = _hex(rng, 16).upper()
    return {
        "timestamp": p.ts.strftime("%H:%M:%S.") + f"{p.ts.microsecond // 1000:03d}",
        "event.time": ms,
        "event.id": f"01J{_hex(rng, 23).upper()}_41",
        "event.category": "process",
        "event.type": "Process Termination" if p.ended else "Process Creation",
        "meta.event.name": "PROCESSTERMINATION" if p.ended else "PROCESSCREATION",
        "dataSource.name": "SentinelOne",
        "dataSource.category": "security",
        "dataSource.vendor": "SentinelOne",
        "endpoint.name": p.host,
        "endpoint.os": p.os,
        "endpoint.type": "desktop",
        "agent.uuid": _hex(rng, 32),
        "agent.version": "23.4.2.14",
        "account.id": str(rng.randint(10**17, 10**18)),
        "site.id": str(rng.randint(10**17, 10**18)),
        "site.name": "HQ",
        "mgmt.url": "corp-001.sentinelone.net",
        "i.scheme": "edr",
        "i.version": "preprocess-lib-1.0",
        "tgt.process.name": p.name,
        "tgt.process.displayName": p.name,
        "tgt.process.image.path": p.executable,
        "tgt.process.cmdline": p.command_line,
        "tgt.process.pid": p.pid,
        "tgt.process.uid": _hex(rng, 16).upper(),
        "tgt.process.storyline.id": story,
        "tgt.process.integrityLevel": "MEDIUM",
        "tgt.process.image.sha1": _hex(rng, 40),
        "tgt.process.image.sha256": _hex(rng, 64),
        "tgt.process.image.md5": _hex(rng, 32),
        "tgt.process.publisher": "MICROSOFT CORPORATION",
        "tgt.process.verifiedStatus": "verified",
        "tgt.process.subsystem": "SYS_WIN32",
        "tgt.process.isNative64Bit": True,
        "tgt.file.isSigned": "signed",
        "src.process.name": p.parent_name,
        "src.process.displayName": p.parent_name,
        "src.process.image.path": p.parent_executable,
        "src.process.cmdline": p.parent_executable,
        "src.process.pid": p.ppid,
        "src.process.uid": _hex(rng, 16).upper(),
        "src.process.user": f"CORP\\{p.user}",
        "src.process.storyline.id": story,
        "src.process.integrityLevel": "MEDIUM",
        "src.process.image.sha1": _hex(rng, 40),
        "src.process.image.sha256": _hex(rng, 64),
        "src.process.image.md5": _hex(rng, 32),
        "src.process.publisher": "MICROSOFT CORPORATION",
        "src.process.signedStatus": "signed",
        "src.process.childProcCount": rng.randint(0, 10**5),
        "src.process.moduleCount": rng.randint(0, 10**5),
        "src.process.netConnInCount": rng.randint(0, 100),
        "src.process.tgtFileCreationCount": rng.randint(0, 10**4),
        "src.process.indicatorReconnaissanceCount": rng.randint(0, 10**3),
        "src.process.parent.name": "userinit.exe",
        "src.process.parent.image.path": "C:\\Windows\\System32\\userinit.exe",
        "sca:atlantisIngestTime": ms + 45000,
        "sca:ingestTime": ms // 1000 + 45,
    }


_4688_MESSAGE = (
    "A new process has been created.\n\nCreator Subject:\n\tSecurity ID:\t\t{sid}\n\tAccount Name:\t\t{user}\n"
    "\tAccount Domain:\t\tCORP\n\tLogon ID:\t\t0x3e7a2\n\nTarget Subject:\n\tSecurity ID:\t\tS-1-0-0\n"
    "\tAccount Name:\t\t-\n\tAccount Domain:\t\t-\n\tLogon ID:\t\t0x0\n\nProcess Information:\n"
    "\tNew Process ID:\t\t{pid:#x}\n\tNew Process Name:\t{exe}\n"
    "\tToken Elevation Type:\tTokenElevationTypeDefault (1)\n"
    "\tMandatory Label:\t\tS-1-16-8192\n\tCreator Process ID:\t{ppid:#x}\n\tCreator Process Name:\t{parent}\n"
    "\tProcess Command Line:\t{cmd}\n\nToken Elevation Type indicates the type of token that was assigned to the "
    "new process in accordance with User Account Control policy.\n\nType 1 is a full token with no privileges "
    "removed or groups disabled.  A full token is only used if User Account Control is disabled or if the user is "
    "the built-in Administrator account or a service account.\n\nType 2 is an elevated token with no privileges "
    "removed or groups disabled.  An elevated token is used when User Account Control is enabled and the user "
    "chooses to start the program using Run as administrator.\n\nType 3 is a limited token with administrative "
    "privileges removed and administrative groups disabled."
)


def _winlog_security(p: Proc, rng: random.Random) -> dict[str, Any]:
    sid = f"S-1-5-21-1610636575-2290000098-1654242922-{rng.randint(1000, 9999)}"
    code = "4689" if p.ended else "4688"
    data: dict[str, Any] = {
        "SubjectUserSid": sid,
        "SubjectUserName": p.user,
        "SubjectDomainName": "CORP",
        "SubjectLogonId": "0x3e7a2",
    }
    if p.ended:
        data.update({"ProcessId": f"{p.pid:#x}", "ProcessName": p.executable, "Status": "0x0"})
    else:
        data.update(
            {
                "NewProcessId": f"{p.pid:#x}",
                "NewProcessName": p.executable,
                "TokenElevationType": "%%1938",
                "ProcessId": f"{p.ppid:#x}",
                "CommandLine": p.command_line,
                "TargetUserSid": "S-1-0-0",
                "TargetUserName": "-",
                "TargetDomainName": "-",
                "TargetLogonId": "0x0",
                "ParentProcessName": p.parent_executable,
                "MandatoryLabel": "S-1-16-8192",
            }
        )
    message = _4688_MESSAGE.format(
        sid=sid, user=p.user, pid=p.pid, ppid=p.ppid, exe=p.executable, parent=p.parent_executable, cmd=p.command_line
    )
    return {
        "@timestamp": _iso(p.ts),
        "agent": {"type": "filebeat", "version": "8.15.3", "id": _hex(rng, 32)},
        "data_stream": {"dataset": "system.security", "namespace": "default", "type": "logs"},
        "event": {
            "action": "Process Termination" if p.ended else "Process Creation",
            "code": code,
            "kind": "event",
            "outcome": "success",
            "provider": "Microsoft-Windows-Security-Auditing",
        },
        "host": {
            "name": f"{p.host.lower()}.corp.example",
            "hostname": p.host.lower(),
            "id": _hex(rng, 32),
            "os": {"type": "windows", "family": "windows", "platform": "windows", "name": "Windows 10 Enterprise"},
        },
        "log": {"level": "information"},
        "message": message,
        "winlog": {
            "channel": "Security",
            "computer_name": f"{p.host}.corp.example",
            "event_data": data,
            "event_id": code,
            "keywords": ["Audit Success"],
            "opcode": "Info",
            "process": {"pid": 4, "thread": {"id": rng.randint(100, 9999)}},
            "provider_guid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "record_id": rng.randint(10**4, 10**7),
            "task": "Process Termination" if p.ended else "Process Creation",
        },
    }


def _winlog_sysmon(p: Proc, rng: random.Random) -> dict[str, Any]:
    guid, pguid = _guid(rng), _guid(rng)
    data = {
        "RuleName": "-",
        "UtcTime": p.ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{p.ts.microsecond // 1000:03d}",
        "ProcessGuid": guid,
        "ProcessId": str(p.pid),
        "Image": p.executable,
        "FileVersion": "10.0.19041.1",
        "Description": "Application",
        "Product": "Product",
        "Company": "Vendor",
        "OriginalFileName": p.original_name or p.name,
        "CommandLine": p.command_line,
        "CurrentDirectory": f"C:\\Users\\{p.user}\\",
        "User": f"CORP\\{p.user}",
        "LogonGuid": _guid(rng),
        "LogonId": "0x2c9e7",
        "TerminalSessionId": "1",
        "IntegrityLevel": "Medium",
        "Hashes": f"SHA256={_hex(rng, 64).upper()}",
        "ParentProcessGuid": pguid,
        "ParentProcessId": str(p.ppid),
        "ParentImage": p.parent_executable,
        "ParentCommandLine": p.parent_executable,
        "ParentUser": f"CORP\\{p.user}",
    }
    lines = "\n".join(f"{k}: {v}" for k, v in data.items())
    return {
        "@timestamp": _iso(p.ts),
        "agent": {"type": "filebeat", "version": "8.15.3", "id": _hex(rng, 32)},
        "data_stream": {"dataset": "windows.sysmon_operational", "namespace": "default", "type": "logs"},
        "event": {
            "code": "1",
            "kind": "event",
            "provider": "Microsoft-Windows-Sysmon",
            "action": "Process Create (rule: ProcessCreate)",
        },
        "host": {"name": p.host.lower(), "os": {"type": "windows", "family": "windows", "platform": "windows"}},
        "log": {"level": "information"},
        "message": "Process Create:\n" + lines,
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "computer_name": f"{p.host}.corp.example",
            "event_data": data,
            "event_id": "1",
            "opcode": "Info",
            "process": {"pid": 2212, "thread": {"id": rng.randint(100, 9999)}},
            "provider_guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
            "provider_name": "Microsoft-Windows-Sysmon",
            "record_id": rng.randint(10**4, 10**7),
            "task": "Process Create (rule: ProcessCreate)",
            "user": {"domain": "NT AUTHORITY", "identifier": "S-1-5-18", "name": "SYSTEM", "type": "Well Known Group"},
            "version": 5,
        },
    }


def _winlogbeat(p: Proc, rng: random.Random) -> dict[str, Any]:
    # Winlogbeat 8.x unprocessed documents, as its Kafka output writes them: half Security 4688, half Sysmon 1.
    doc = _winlog_sysmon(p, rng) if p.original_name or rng.random() < 0.5 else _winlog_security(p, rng)
    doc.pop("data_stream")
    doc["agent"] = {"type": "winlogbeat", "version": "8.15.3", "name": p.host, "id": _hex(rng, 32)}
    doc["@metadata"] = {"beat": "winlogbeat", "type": "_doc", "version": "8.15.3"}
    doc["ecs"] = {"version": "8.0.0"}
    return doc


WRITERS: dict[str, Callable[[Proc, random.Random], dict[str, Any]]] = {
    "endgame": _endgame,
    "endpoint": _endpoint,
    "crowdstrike_fdr": _crowdstrike,
    "m365_defender": _m365,
    "sentinel_one_cloud_funnel": _sentinel_one,
    "system_security": _winlog_security,
    "windows_sysmon": _winlog_sysmon,
    "winlogbeat": _winlogbeat,
}


# -- what happens on the hosts --------------------------------------------------------------------------------
def _base(rng: random.Random, ts: datetime) -> Proc:
    user = rng.choice(_USERS)
    exe, cmd, parent = rng.choice(_BENIGN)
    exe, parent = exe.format(u=user), parent.format(u=user)
    return Proc(ts, rng.choice(_HOSTS), user, exe, cmd, parent, rng.randint(1000, 60000), rng.randint(500, 9000))


_ROAMING = ("NSM", "Microsoft\\Update", "Intel", "sysdrv")


def _nsm_dir(rng: random.Random, user: str) -> str:
    roaming = rng.choice(_ROAMING)
    return rng.choice(
        (
            f"C:\\Users\\{user}\\AppData\\Roaming\\{roaming}",
            f"C:\\Users\\{user}\\AppData\\Local\\Temp\\{_hex(rng, 6)}",
            f"C:\\Users\\{user}\\Downloads\\support",
            f"C:\\ProgramData\\{rng.choice(('SoftwareUpdate', 'nsm', 'WindowsDefenderUpdate'))}",
        )
    )


def _positive(source: str, rng: random.Random, p: Proc) -> tuple[Proc, str]:
    folder = _nsm_dir(rng, p.user)
    client = f"{folder}\\client32.exe"
    variants = ["user_folder", "mixed_case", "child_of_client32"]
    if source in _HAS_ORIGINAL_NAME:
        variants.append("renamed")
    variant = rng.choice(variants)
    if variant == "user_folder":
        p = replace(p, executable=client, command_line=f'"{client}"', parent_executable="C:\\Windows\\explorer.exe")
    elif variant == "mixed_case":
        exe = rng.choice((client.upper(), client.replace("client32", "Client32"), client.lower()))
        p = replace(
            p, executable=exe, command_line=f'"{exe}" /S', parent_executable="C:\\Windows\\System32\\wscript.exe"
        )
    elif variant == "renamed":
        exe = f"{folder}\\{rng.choice(('update.exe', 'svchost.exe', 'msedgeupdate.exe'))}"
        p = replace(p, executable=exe, command_line=f'"{exe}"', original_name="client32.exe")
    elif source == "crowdstrike_fdr":
        # FDR has no parent path: a child of client32.exe matches when the child itself runs from Users.
        child = f"C:\\Users\\{p.user}\\AppData\\Local\\Temp\\{_hex(rng, 6)}\\run.exe"
        p = replace(p, executable=child, command_line=f'"{child}"', parent_executable=client)
    else:
        shell = rng.choice(
            ("C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
        )
        p = replace(p, executable=shell, command_line=f"{_basename(shell)} /c whoami /all", parent_executable=client)
    if source == "crowdstrike_fdr":
        p = replace(p, executable=_device_path(p.executable, rng.randint(1, 9)))
    return p, variant


def _near_miss(source: str, rng: random.Random, p: Proc) -> tuple[Proc, str]:
    variants = ["program_files", "command_line_only", "client32_lookalike"]
    if source in _HAS_END:
        variants.append("process_end")
    if source in _HAS_OS:
        variants.append("not_windows")
    if source == "crowdstrike_fdr":
        variants.append("volume_two_digits")
    variant = rng.choice(variants)
    nsm = f"C:\\Users\\{p.user}\\AppData\\Roaming\\NSM\\client32.exe"
    if variant == "program_files":
        exe = "C:\\Program Files (x86)\\NetSupport\\NetSupport Manager\\client32.exe"
        p = replace(p, executable=exe, command_line=f'"{exe}"', parent_executable="C:\\Windows\\System32\\services.exe")
    elif variant == "command_line_only":
        p = replace(p, executable="C:\\Windows\\System32\\notepad.exe", command_line=f"notepad.exe {nsm[:-4]}.ini")
    elif variant == "client32_lookalike":
        exe = nsm.replace("client32.exe", "client32.exe.bak")
        p = replace(p, executable=exe, command_line=f'"{exe}"')
    elif variant == "process_end":
        p = replace(p, executable=nsm, command_line=f'"{nsm}"', ended=True)
    elif variant == "not_windows":
        p = replace(p, executable=nsm, command_line=f'"{nsm}"', os="linux")
    else:  # `HarddiskVolume?` is exactly one character: volume 10 and more do not match the seed rule
        p = replace(p, executable=nsm)
    if source == "crowdstrike_fdr":
        volume = rng.randint(10, 19) if variant == "volume_two_digits" else rng.randint(1, 9)
        p = replace(p, executable=_device_path(p.executable, volume))
    return p, variant


def _malformed(source: str, rng: random.Random, p: Proc) -> tuple[bytes, str]:
    variant = rng.choice(("truncated", "not_object", "bad_field_type", "unknown_source", "too_deep"))
    client = f"C:\\Users\\{p.user}\\AppData\\Roaming\\NSM\\client32.exe"
    good = orjson.dumps(WRITERS[source](replace(p, executable=client), rng))
    if variant == "truncated":
        return good[: len(good) // 2], variant
    if variant == "not_object":
        return rng.choice((b'["client32.exe", 1]', b'"client32.exe"', b"42")), variant
    if variant == "unknown_source":
        return orjson.dumps({"vendor": "acme", "msg": f"started {client}"}), variant
    if variant == "too_deep":
        return b'{"client32":' * 1100 + b"1" + b"}" * 1100, variant
    doc = WRITERS[source](replace(p, executable=client), rng)
    _corrupt_pid(source, doc)
    return orjson.dumps(doc), variant


def _corrupt_pid(source: str, doc: dict[str, Any]) -> None:
    if source in ("endpoint", "endgame"):
        doc["process"]["pid"] = ["not", "a", "pid"]
    elif source == "crowdstrike_fdr":
        doc["RawProcessId"] = {"value": 1}
    elif source == "m365_defender":
        doc["records"][0]["properties"]["ProcessId"] = "pid-unknown"
    elif source == "sentinel_one_cloud_funnel":
        doc["tgt.process.pid"] = "pid-unknown"
    else:
        data = doc["winlog"]["event_data"]
        key = "NewProcessId" if "NewProcessId" in data else "ProcessId"
        data[key] = "zz-not-hex"


def generate(
    n: int,
    *,
    seed: int,
    netsupport_rate: float = 0.001,
    near_miss_rate: float | None = None,
    malformed_rate: float = 0.0,
    sources: Sequence[str] | None = None,
) -> Iterator[Generated]:
    """`n` records, deterministic for a seed, mixing `sources` (default: all eight) round-robin at random."""
    rng = random.Random(seed)
    chosen = tuple(sources or SOURCE_NAMES)
    unknown = set(chosen) - set(SOURCE_NAMES)
    if unknown:
        raise ValueError(f"unknown source(s): {', '.join(sorted(unknown))}")
    near_rate = netsupport_rate if near_miss_rate is None else near_miss_rate
    for i in range(n):
        source = chosen[rng.randrange(len(chosen))]
        base = _base(rng, _EPOCH + timedelta(milliseconds=137 * i + rng.randint(0, 136)))
        roll = rng.random()
        if roll < malformed_rate:
            raw, variant = _malformed(source, rng, base)
            yield Generated(source, raw, "malformed", None, variant)
            continue
        roll -= malformed_rate
        if roll < netsupport_rate:
            proc, variant = _positive(source, rng, base)
            yield Generated(source, orjson.dumps(WRITERS[source](proc, rng)), "positive", True, variant)
        elif roll < netsupport_rate + near_rate:
            proc, variant = _near_miss(source, rng, base)
            yield Generated(source, orjson.dumps(WRITERS[source](proc, rng)), "near_miss", False, variant)
        else:
            yield Generated(source, orjson.dumps(WRITERS[source](base, rng)), "benign", False, "benign")


def write_demo(directory: Path, seed: int = 11) -> dict[str, int]:
    """samples/demo/<source>.ndjson: per source ~190 benign, ~6 positives, ~6 near-misses, ~4 malformed (gzipped)."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, source in enumerate(SOURCE_NAMES):
        records = list(generate(200, seed=seed + i, netsupport_rate=0.03, malformed_rate=0.02, sources=[source]))
        data = b"".join(r.raw + b"\n" for r in records)
        (directory / f"{source}.ndjson.gz").write_bytes(gzip.compress(data, mtime=0))
        counts[source] = len(records)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m detector.synth",
        description="Generate synthetic raw telemetry (NDJSON) for the eight sources, with NetSupport positives, "
        "near-misses and malformed records in chosen proportions. Deterministic for a seed.",
    )
    ap.add_argument("--count", type=int, default=10000, help="records to generate (default 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--netsupport-rate", type=float, default=0.001, help="share of positives (default 0.001)")
    ap.add_argument("--near-miss-rate", type=float, help="share of near-misses (default: the netsupport rate)")
    ap.add_argument("--malformed-rate", type=float, default=0.0, help="share of malformed records (default 0)")
    ap.add_argument("--source", action="append", choices=SOURCE_NAMES, help="only these sources (repeatable)")
    ap.add_argument("--out", default="-", help="output file, or - for stdout (default)")
    ap.add_argument("--manifest", help="also write a JSON list of {line, source, kind, variant, expect_alert}")
    ap.add_argument("--demo", metavar="DIR", help="write the per-source demo corpus into DIR instead")
    args = ap.parse_args(argv)
    if args.demo:
        counts = write_demo(Path(args.demo))
        print(f"wrote {sum(counts.values())} records into {args.demo}: {counts}", file=sys.stderr)
        return 0
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    manifest = []
    try:
        gen = generate(
            args.count,
            seed=args.seed,
            netsupport_rate=args.netsupport_rate,
            near_miss_rate=args.near_miss_rate,
            malformed_rate=args.malformed_rate,
            sources=args.source,
        )
        for line, g in enumerate(gen, start=1):
            out.write(g.raw + b"\n")
            if args.manifest:
                manifest.append(
                    {
                        "line": line,
                        "source": g.source,
                        "kind": g.kind,
                        "variant": g.variant,
                        "expect_alert": g.expect_alert,
                    }
                )
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.manifest:
        Path(args.manifest).write_bytes(orjson.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
