"""Synthetic raw telemetry for all eight sources: benign noise, NetSupport positives, near-misses, garbage.

Used by the tests (the differential prefilter proof, streaming tests), the benchmarks and the bundled
samples. Each record says what the generator meant it to be (`kind`, `expect_alert`); the tests check that
the engine agrees, which cross-checks normalisers, EQL compiler and generator against each other. Field
values are our own; only the SHAPES and SIZES follow the vendors' real records (1.5-5 KB).

Regenerate the bundled samples (deterministic; gzipped because realistic records are 1.5-5 KB each):

    python -m tools.synth --count 2000 --seed 7 --netsupport-rate 0.01 --malformed-rate 0.005 \
        --out samples/corpus.ndjson.gz
    python -m tools.synth --demo samples/demo

Other uses:

    python -m tools.synth --count 100000 --seed 1 --out mix.ndjson --manifest mix.manifest.json
    python -m tools.synth --count 5000 --seed 3 --netsupport-rate 0.02 --split-dir /tmp/by-source
"""

from __future__ import annotations

import argparse
import base64
import gzip
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import orjson

from detector.sources import SOURCES

SOURCE_NAMES = tuple(SOURCES)
KINDS = ("benign", "positive", "near_miss", "malformed")
_EPOCH = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
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
    (
        "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\MsMpEng.exe",
        '"MsMpEng.exe"',
        "C:\\Windows\\System32\\services.exe",
    ),
)
# Benign files written and hosts contacted, for the file and network events that surround process starts.
_FILES = (
    "C:\\Users\\{u}\\Downloads\\Q3-report.xlsx",
    "C:\\Users\\{u}\\AppData\\Local\\Temp\\chrome_BITS_{h}\\update.tmp",
    "C:\\Windows\\Prefetch\\SVCHOST.EXE-{h}.pf",
    "C:\\Users\\{u}\\AppData\\Roaming\\Microsoft\\Windows\\Recent\\notes.lnk",
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\{h}.log",
)
_REMOTES = ("142.250.74.110:443", "52.96.165.18:443", "10.20.0.5:445", "10.20.0.10:53", "13.107.42.14:443")

# Sources that carry a PE original file name (so a renamed client32.exe is caught). CrowdStrike's
# ProcessRollup2 and S1 Cloud Funnel do not; Security 4688 has no version information at all.
_HAS_ORIGINAL_NAME = frozenset({"endpoint", "windows_sysmon", "winlogbeat", "m365_defender", "endgame"})
# Sources that report process ends (M365 Advanced Hunting has no process-end table).
_HAS_END = frozenset(set(SOURCE_NAMES) - {"m365_defender"})
# Sources that can say "not Windows" (winlog channels and M365 device tables here are Windows-only).
_HAS_OS = frozenset({"endpoint", "crowdstrike_fdr", "sentinel_one_cloud_funnel", "endgame"})

# malformed_pid: a positive whose process id has a wrong type. Elastic indexes it without that field
# (ignore_malformed) and alerts, and so must we.
POSITIVE_VARIANTS = ("user_folder", "programdata", "mixed_case", "child_of_client32", "renamed", "malformed_pid")
NEAR_MISS_VARIANTS = (
    "program_files",
    "command_line_only",
    "client32_lookalike",
    "process_end",
    "not_windows",
    "volume_two_digits",
    "file_written",
    "network_from_client32",
    "original_name_case",
)
MALFORMED_VARIANTS = ("truncated", "not_object", "bad_structure", "unknown_source", "too_deep", "too_large")


@dataclass(frozen=True, slots=True)
class Generated:
    source: str
    raw: bytes  # one JSON line, no newline
    kind: str  # benign | positive | near_miss | malformed
    expect_alert: bool | None  # None for malformed records
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Proc:
    """What happened on a host, before a vendor writes it down.

    `activity` is "start", "end", "file" (the process wrote `target`) or "network" (it connected to
    `target`, "ip:port").
    """

    ts: datetime
    host: str
    user: str
    executable: str
    command_line: str
    parent_executable: str
    pid: int
    ppid: int
    original_name: str | None = None
    activity: str = "start"
    target: str = ""
    os: str = "windows"

    @property
    def ended(self) -> bool:
        return self.activity == "end"

    @property
    def name(self) -> str:
        return _basename(self.executable)

    @property
    def parent_name(self) -> str:
        return _basename(self.parent_executable)


def _iso(ts: datetime, digits: int = 7) -> str:
    text = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: 20 + min(digits, 6)] + ("0" * (digits - 6) if digits > 6 else "") + "Z"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _guid(rng: random.Random) -> str:
    h = _hex(rng, 32).upper()
    return f"{{{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}}}"


def _entity_id(rng: random.Random, pid: int) -> str:
    # Elastic Defend's entity ids are base64 of "<agent id>-<pid>-<start time>": long, opaque, unique.
    agent = f"{_hex(rng, 8)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 12)}"
    raw = f"{agent}-{pid}-{rng.randint(10**16, 10**17)}"
    return base64.b64encode(raw.encode()).decode()


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _basename(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


def _dirname(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[0]


def _device_path(path: str, volume: int) -> str:
    """C:\\x -> \\Device\\HarddiskVolumeN\\x, as CrowdStrike (and WFP events) write image paths."""
    return f"\\Device\\HarddiskVolume{volume}" + path[2:] if path[1:2] == ":" else path


def _remote(p: Proc) -> tuple[str, int]:
    ip, _, port = p.target.rpartition(":")
    return ip, int(port)


def _event_type(p: Proc) -> tuple[str, list[str], str]:
    """(ECS category, ECS types, Defend-style action) for the activity."""
    return {
        "start": ("process", ["start"], "start"),
        "end": ("process", ["end"], "end"),
        "file": ("file", ["creation"], "creation"),
        "network": ("network", ["start", "connection"], "connection_attempted"),
    }[p.activity]


# -- one writer per source: Proc -> the vendor's raw record -------------------------------------------------
def _endpoint(p: Proc, rng: random.Random) -> dict[str, Any]:
    ts = _iso(p.ts)
    category, types, action = _event_type(p)
    entity = _entity_id(rng, p.pid)
    parent_entity = _entity_id(rng, p.ppid)
    proc: dict[str, Any] = {
        "name": p.name,
        "executable": p.executable,
        "pid": p.pid,
        "entity_id": entity,
        "Ext": {"ancestry": [parent_entity, _entity_id(rng, rng.randint(4, 900))]},
    }
    if category == "process":
        args = p.command_line.split(" ")
        proc.update(
            {
                "command_line": p.command_line,
                "args": args,
                "args_count": len(args),
                "working_directory": f"C:\\Users\\{p.user}\\",
                "hash": {"md5": _hex(rng, 32), "sha1": _hex(rng, 40), "sha256": _hex(rng, 64)},
                "code_signature": {
                    "exists": True,
                    "trusted": True,
                    "status": "trusted",
                    "subject_name": "Microsoft Windows Publisher",
                },
                # Defend reads the version resource of every Windows image: the original name is always there.
                "pe": {
                    "original_file_name": p.original_name or p.name,
                    "company": "Microsoft Corporation",
                    "description": "Application",
                    "file_version": "10.0.19041.4355",
                    "product": "Microsoft® Windows® Operating System",
                },
                "parent": {
                    "name": p.parent_name,
                    "executable": p.parent_executable,
                    "command_line": p.parent_executable,
                    "args": [p.parent_executable],
                    "args_count": 1,
                    "pid": p.ppid,
                    "entity_id": parent_entity,
                },
            }
        )
        proc["Ext"].update(
            {
                "code_signature": [{"trusted": True, "subject_name": "Microsoft Windows Publisher", "exists": True}],
                "authentication_id": f"{rng.randint(0x10000, 0xFFFFFF):#x}",
                "token": {
                    "integrity_level_name": "medium",
                    "elevation_level": "default",
                    "security_attributes": ["TSA://ProcUnique"],
                },
            }
        )
        if p.ended:
            proc["exit_code"] = 0
    doc: dict[str, Any] = {
        "@timestamp": ts,
        "agent": {"type": "endpoint", "version": "8.15.3", "id": _hex(rng, 32)},
        "data_stream": {"dataset": f"endpoint.events.{category}", "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.11.0"},
        "elastic": {"agent": {"id": _hex(rng, 32)}},
        "event": {
            "action": action,
            "agent_id_status": "verified",
            "category": [category],
            "type": types,
            "kind": "event",
            "module": "endpoint",
            "dataset": f"endpoint.events.{category}",
            "id": base64.b64encode(rng.randbytes(18)).decode(),
            "created": ts,
            "ingested": _iso(p.ts + timedelta(seconds=rng.randint(2, 30)), 0).replace(".Z", "Z"),
            "sequence": rng.randint(1, 10**7),
        },
        "host": {
            "name": p.host.lower(),
            "hostname": p.host.lower(),
            "id": _hex(rng, 32),
            "os": {
                "type": p.os,
                "family": p.os if p.os == "windows" else "ubuntu",
                "platform": p.os if p.os == "windows" else "ubuntu",
                "name": "Windows" if p.os == "windows" else "Linux",
                "full": "Windows 10 Enterprise 22H2 (10.0.19045.4894)" if p.os == "windows" else "Ubuntu 22.04.4 LTS",
                "kernel": "22H2 (10.0.19045.4894)" if p.os == "windows" else "5.15.0-118-generic",
                "version": "22H2 (10.0.19045.4894)" if p.os == "windows" else "22.04.4",
            },
            "architecture": "x86_64",
            "ip": [_ip(rng), "fe80::" + ":".join(_hex(rng, 4) for _ in range(4)), "127.0.0.1", "::1"],
            "mac": ["-".join(_hex(rng, 2) for _ in range(6))],
        },
        "user": {
            "name": p.user,
            "domain": "CORP",
            "id": f"S-1-5-21-1004336348-1177238915-682003330-{rng.randint(1000, 9999)}",
        },
        "process": proc,
        "message": f"Endpoint {category} event",
    }
    if p.activity == "file":
        name = _basename(p.target)
        doc["file"] = {
            "path": p.target,
            "name": name,
            "directory": _dirname(p.target),
            "extension": name.rsplit(".", 1)[-1] if "." in name else "",
            "size": rng.randint(10**3, 10**7),
            "Ext": {"header_bytes": _hex(rng, 32), "entropy": round(rng.uniform(3, 8), 4)},
        }
    elif p.activity == "network":
        ip, port = _remote(p)
        doc["destination"] = {"address": ip, "ip": ip, "port": port}
        src = doc["host"]["ip"][0]
        doc["source"] = {"address": src, "ip": src, "port": rng.randint(49152, 65535)}
        doc["network"] = {"direction": "egress", "transport": "tcp", "type": "ipv4"}
    return doc


def _endgame_native(p: Proc, rng: random.Random) -> dict[str, Any]:
    """Endgame's own schema (as in the eql project's test data): flat keys, FILETIME timestamps."""
    filetime = int((p.ts - _FILETIME_EPOCH).total_seconds() * 10**7)
    return {
        "event_type_full": "process_event",
        "event_subtype_full": "termination_event" if p.ended else "creation_event",
        "opcode": 2 if p.ended else 1,
        "serial_event_id": rng.randint(1, 10**6),
        "timestamp": filetime,
        "hostname": p.host,
        "pid": p.pid,
        "ppid": p.ppid,
        "unique_pid": rng.randint(10**4, 10**6),
        "unique_ppid": rng.randint(10**4, 10**6),
        "process_name": p.name,
        "process_path": p.executable,
        "command_line": p.command_line,
        "parent_process_name": p.parent_name,
        "parent_process_path": p.parent_executable,
        "user_name": p.user,
        "user_domain": "CORP",
        "user_sid": f"S-1-5-21-2047949552-857980807-821054962-{rng.randint(1000, 9999)}",
        "md5": _hex(rng, 32),
        "sha1": _hex(rng, 40),
        "sha256": _hex(rng, 64),
        "signature_signer": "Microsoft Windows",
        "signature_status": "trusted",
        "integrity_level": "medium",
        "session_id": 1,
        "authentication_id": rng.randint(10**5, 10**6),
    }


def _endgame(p: Proc, rng: random.Random) -> dict[str, Any]:
    # Mostly the ECS documents indexed in endgame-*; some native-schema events, which cannot carry an
    # original file name or a non-Windows host (the normaliser infers Windows from the path).
    native_ok = p.activity in ("start", "end") and p.original_name is None and p.os == "windows"
    if native_ok and rng.random() < 0.3:
        return _endgame_native(p, rng)
    doc = _endpoint(p, rng)
    category, types, _ = _event_type(p)
    doc["agent"] = {"type": "endgame", "id": _hex(rng, 32), "version": "3.53.1", "name": p.host}
    doc.pop("data_stream")
    doc.pop("elastic")
    action = {"start": "creation_event", "end": "termination_event", "file": "file_create_event"}
    doc["event"].update(
        {
            "module": "endgame",
            "dataset": f"esensor.{category}",
            "action": action.get(p.activity, "ipv4_connection_attempt_event"),
            "category": category,  # endgame-* documents hold single strings, not lists
            "type": types[0],
        }
    )
    doc["process"]["Ext"].pop("ancestry")
    if not doc["process"]["Ext"]:
        doc["process"].pop("Ext")
    if p.original_name is None:
        doc["process"].pop("pe", None)  # older sensors do not send it; keep both shapes
    return doc


def _crowdstrike(p: Proc, rng: random.Random) -> dict[str, Any]:
    volume = rng.randint(1, 5)
    image = p.executable if p.executable.startswith("\\Device\\") else _device_path(p.executable, volume)
    name = {"start": "ProcessRollup2", "end": "EndOfProcess", "file": "PeFileWritten", "network": "NetworkConnectIP4"}[
        p.activity
    ]
    platform = {"windows": "Win", "linux": "Lin", "macos": "Mac"}[p.os]
    common: dict[str, Any] = {
        "event_simpleName": name,
        "event_platform": platform,
        "name": f"{name}V{rng.randint(5, 19)}",
        "aid": _hex(rng, 32),
        "cid": _hex(rng, 32),
        "id": f"{_hex(rng, 8)}-{_hex(rng, 4)}-11ef-{_hex(rng, 4)}-{_hex(rng, 12)}",
        "timestamp": str(int(p.ts.timestamp() * 1000)),
        "ConfigBuild": "1007.3.0019107.1",
        "ConfigStateHash": str(rng.randint(10**8, 10**9)),
        "EffectiveTransmissionClass": "3",
        "Entitlements": "15",
        "aip": f"81.2.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    }
    context = str(rng.randint(10**11, 10**12))
    if p.activity == "file":
        target = _device_path(p.target, volume)
        return common | {
            "ContextProcessId": context,
            "ContextThreadId": str(rng.randint(10**11, 10**12)),
            "ContextTimeStamp": f"{p.ts.timestamp():.3f}",
            "TargetFileName": target,
            "FileIdentifier": _hex(rng, 48),
            "FileObject": str(rng.randint(10**13, 10**14)),
            "IsOnNetwork": "0",
            "IsOnRemovableDisk": "0",
            "Size": str(rng.randint(10**3, 10**7)),
            "PeFileType": "1",
            "SHA256HashData": _hex(rng, 64),
        }
    if p.activity == "network":
        ip, port = _remote(p)
        return common | {
            "ContextProcessId": context,
            "ContextThreadId": str(rng.randint(10**11, 10**12)),
            "ContextTimeStamp": f"{p.ts.timestamp():.3f}",
            "ConnectionDirection": "0",
            "ConnectionFlags": "0",
            "InContext": "0",
            "LocalAddressIP4": _ip(rng),
            "LocalPort": str(rng.randint(49152, 65535)),
            "RemoteAddressIP4": ip,
            "RemotePort": str(port),
            "Protocol": "6",
        }
    return common | {
        "ComputerName": p.host,
        "UserName": p.user,
        "UserSid": f"S-1-5-21-3623811015-3361044348-30300820-{rng.randint(1000, 9999)}",
        "RawProcessId": str(p.pid),
        "TargetProcessId": str(rng.randint(10**11, 10**12)),
        "ParentProcessId": str(rng.randint(10**11, 10**12)),
        "SourceProcessId": str(rng.randint(10**11, 10**12)),
        "SourceThreadId": str(rng.randint(10**11, 10**12)),
        "ParentBaseFileName": p.parent_name,
        "ImageFileName": image,
        "CommandLine": p.command_line,
        "SHA256HashData": _hex(rng, 64),
        "MD5HashData": _hex(rng, 32),
        "SHA1HashData": "0" * 40,
        "AuthenticodeHashData": _hex(rng, 64),
        "AuthenticationId": str(rng.randint(100, 999)),
        "ParentAuthenticationId": str(rng.randint(100, 999)),
        "IntegrityLevel": "8192",
        "SessionId": "1",
        "TokenType": "1",
        "ProcessStartTime": f"{p.ts.timestamp():.3f}",
        "ProcessEndTime": f"{p.ts.timestamp() + rng.randint(1, 600):.3f}" if p.ended else "",
        "ProcessCreateFlags": "1024",
        "ProcessParameterFlags": "24577",
        "ProcessSxsFlags": "1600",
        "SignInfoFlags": "8683538",
        "ImageSubsystem": "2",
        "EventOrigin": "1",
        "WindowFlags": "129",
        "Tags": ", ".join(str(rng.randint(10**12, 10**13)) for _ in range(3)),
    }


def _m365_record(p: Proc, rng: random.Random) -> dict[str, Any]:
    # Process events describe the new process and its initiator; file and network events describe what
    # the initiating process did, so p plays the initiator there.
    actor = p if p.activity in ("file", "network") else None
    init_exe = actor.executable if actor else p.parent_executable
    init_name = _basename(init_exe)
    props: dict[str, Any] = {
        "DeviceId": _hex(rng, 40),
        "DeviceName": f"{p.host.lower()}.corp.example",
        "InitiatingProcessAccountDomain": "corp",
        "InitiatingProcessAccountName": p.user,
        "InitiatingProcessAccountObjectId": None,
        "InitiatingProcessAccountSid": f"S-1-5-21-1874808502-2282282112-3464708742-{rng.randint(1000, 9999)}",
        "InitiatingProcessAccountUpn": None,
        "InitiatingProcessCommandLine": actor.command_line if actor else init_name,
        "InitiatingProcessCreationTime": _iso(p.ts - timedelta(minutes=20)),
        "InitiatingProcessFileName": init_name,
        "InitiatingProcessFileSize": rng.randint(10**4, 10**7),
        "InitiatingProcessFolderPath": init_exe.lower(),
        "InitiatingProcessId": actor.pid if actor else p.ppid,
        "InitiatingProcessIntegrityLevel": "Medium",
        "InitiatingProcessLogonId": rng.randint(10**5, 10**7),
        "InitiatingProcessMD5": _hex(rng, 32),
        "InitiatingProcessSHA1": _hex(rng, 40),
        "InitiatingProcessSHA256": _hex(rng, 64),
        "InitiatingProcessParentCreationTime": _iso(p.ts - timedelta(hours=2)),
        "InitiatingProcessParentFileName": p.parent_name if actor else "userinit.exe",
        "InitiatingProcessParentId": rng.randint(100, 9999),
        "InitiatingProcessSignatureStatus": "Valid",
        "InitiatingProcessSignerType": "OsVendor",
        "InitiatingProcessTokenElevation": "TokenElevationTypeDefault",
        "InitiatingProcessVersionInfoCompanyName": "Microsoft Corporation",
        "InitiatingProcessVersionInfoFileDescription": "Application",
        "InitiatingProcessVersionInfoInternalFileName": init_name,
        "InitiatingProcessVersionInfoOriginalFileName": init_name,
        "InitiatingProcessVersionInfoProductName": "Microsoft Windows Operating System",
        "InitiatingProcessVersionInfoProductVersion": "10.0.19041.1806",
        "MachineGroup": "UnassignedGroup",
        "ReportId": rng.randint(1, 10**6),
        "Timestamp": _iso(p.ts),
    }
    if p.activity == "file":
        table = "DeviceFileEvents"
        props |= {
            "ActionType": "FileCreated",
            "FileName": _basename(p.target),
            "FolderPath": p.target,
            "FileSize": rng.randint(10**3, 10**7),
            "FileOriginUrl": None,
            "FileOriginIP": None,
            "FileOriginReferrerUrl": None,
            "PreviousFileName": None,
            "PreviousFolderPath": None,
            "RequestAccountDomain": "corp",
            "RequestAccountName": p.user,
            "RequestAccountSid": f"S-1-5-21-1874808502-2282282112-3464708742-{rng.randint(1000, 9999)}",
            "RequestProtocol": "Local",
            "SensitivityLabel": None,
            "ShareName": None,
            "IsAzureInfoProtectionApplied": False,
            "MD5": _hex(rng, 32),
            "SHA1": _hex(rng, 40),
            "SHA256": _hex(rng, 64),
        }
    elif p.activity == "network":
        table = "DeviceNetworkEvents"
        ip, port = _remote(p)
        props |= {
            "ActionType": "ConnectionSuccess",
            "LocalIP": _ip(rng),
            "LocalIPType": "Private",
            "LocalPort": rng.randint(49152, 65535),
            "RemoteIP": ip,
            "RemoteIPType": "Public" if not ip.startswith("10.") else "Private",
            "RemotePort": port,
            "RemoteUrl": "",
            "Protocol": "Tcp",
            "AdditionalFields": '{"direction":"Out"}',
        }
    else:
        table = "DeviceProcessEvents"
        props |= {
            "ActionType": "ProcessCreated",
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
            "LogonId": rng.randint(10**5, 10**7),
            "MD5": _hex(rng, 32),
            "SHA1": _hex(rng, 40),
            "SHA256": _hex(rng, 64),
        }
    return {
        "Tenant": "DefaultTenant",
        "category": f"AdvancedHunting-{table}",
        "operationName": "Publish",
        "properties": props,
        "tenantId": "4f1a2b3c-0000-4d5e-9f00-123456789abc",
        "time": _iso(p.ts + timedelta(minutes=3)),
    }


def _m365(p: Proc, rng: random.Random) -> dict[str, Any]:
    return {"records": [_m365_record(p, rng)]}


def _s1_process(prefix: str, exe: str, cmd: str, pid: int, user: str, story: str, rng: random.Random) -> dict[str, Any]:
    name = _basename(exe)
    return {
        f"{prefix}.name": name,
        f"{prefix}.displayName": name,
        f"{prefix}.image.path": exe,
        f"{prefix}.image.binaryIsExecutable": True,
        f"{prefix}.cmdline": cmd,
        f"{prefix}.pid": pid,
        f"{prefix}.uid": _hex(rng, 16).upper(),
        f"{prefix}.user": f"CORP\\{user}",
        f"{prefix}.sessionId": 1,
        f"{prefix}.startTime": rng.randint(1_700_000_000_000, 1_760_000_000_000),
        f"{prefix}.storyline.id": story,
        f"{prefix}.isStorylineRoot": False,
        f"{prefix}.isNative64Bit": True,
        f"{prefix}.isRedirectCmdProcessor": False,
        f"{prefix}.integrityLevel": "MEDIUM",
        f"{prefix}.subsystem": "SYS_WIN32",
        f"{prefix}.image.sha1": _hex(rng, 40),
        f"{prefix}.image.sha256": _hex(rng, 64),
        f"{prefix}.image.md5": _hex(rng, 32),
        f"{prefix}.publisher": "MICROSOFT WINDOWS",
        f"{prefix}.signedStatus": "signed",
        f"{prefix}.verifiedStatus": "verified",
    }


_S1_COUNTERS = (
    "childProcCount",
    "moduleCount",
    "netConnCount",
    "netConnInCount",
    "netConnOutCount",
    "dnsCount",
    "registryChangeCount",
    "tgtFileCreationCount",
    "tgtFileModificationCount",
    "tgtFileDeletionCount",
    "crossProcessCount",
    "crossProcessOpenProcessCount",
    "crossProcessThreadCreateCount",
    "crossProcessDupRemoteProcessHandleCount",
    "crossProcessDupThreadHandleCount",
    "crossProcessOutOfStorylineCount",
    "indicatorGeneralCount",
    "indicatorReconnaissanceCount",
    "indicatorEvasionCount",
    "indicatorExploitationCount",
    "indicatorInjectionCount",
    "indicatorInfostealerCount",
    "indicatorPersistenceCount",
    "indicatorPostExploitationCount",
    "indicatorRansomwareCount",
    "indicatorBootConfigurationUpdateCount",
)


def _sentinel_one(p: Proc, rng: random.Random) -> dict[str, Any]:
    ms = int(p.ts.timestamp() * 1000)
    story = _hex(rng, 16).upper()
    trace = f"01J{_hex(rng, 23).upper()}"
    doc: dict[str, Any] = {
        "timestamp": p.ts.strftime("%H:%M:%S.") + f"{p.ts.microsecond // 1000:03d}",
        "event.time": ms,
        "event.id": f"{trace}_{rng.randint(1, 99)}",
        "trace.id": trace,
        "packet.id": _hex(rng, 32).upper(),
        "dataSource.name": "SentinelOne",
        "dataSource.category": "security",
        "dataSource.vendor": "SentinelOne",
        "endpoint.name": p.host,
        "endpoint.os": p.os,
        "endpoint.type": "desktop",
        "os.name": "Windows 10 Enterprise" if p.os == "windows" else "Ubuntu 22.04",
        "agent.uuid": _hex(rng, 32),
        "agent.version": "23.4.2.14",
        "account.id": str(rng.randint(10**17, 10**18)),
        "site.id": str(rng.randint(10**17, 10**18)),
        "site.name": "HQ",
        "group.id": str(rng.randint(10**17, 10**18)),
        "mgmt.id": "1337",
        "mgmt.url": "corp-001.sentinelone.net",
        "mgmt.osRevision": "19045",
        "i.scheme": "edr",
        "i.version": "preprocess-lib-1.0",
        "sca:atlantisIngestTime": ms + 45000,
        "sca:ingestTime": ms // 1000 + 45,
    }
    if p.activity in ("start", "end"):
        doc |= {
            "event.category": "process",
            "event.type": "Process Termination" if p.ended else "Process Creation",
            "meta.event.name": "PROCESSTERMINATION" if p.ended else "PROCESSCREATION",
            "tgt.file.isSigned": "signed",
            "process.unique.key": _hex(rng, 16).upper(),
        }
        doc |= _s1_process("tgt.process", p.executable, p.command_line, p.pid, p.user, story, rng)
        doc |= _s1_process("src.process", p.parent_executable, p.parent_executable, p.ppid, p.user, story, rng)
    else:
        # The acting process is src.process; tgt is the file, or the peer is dst.
        doc |= _s1_process("src.process", p.executable, p.command_line, p.pid, p.user, story, rng)
        if p.activity == "file":
            doc |= {
                "event.category": "file",
                "event.type": "File Creation",
                "meta.event.name": "FILECREATION",
                "tgt.file.path": p.target,
                "tgt.file.id": _hex(rng, 40).upper(),
                "tgt.file.size": rng.randint(10**3, 10**7),
                "tgt.file.extension": p.target.rsplit(".", 1)[-1],
                "tgt.file.type": "PE" if p.target.lower().endswith(".exe") else "Unknown",
                "tgt.file.sha1": _hex(rng, 40),
                "tgt.file.isExecutable": p.target.lower().endswith(".exe"),
            }
        else:
            ip, port = _remote(p)
            doc |= {
                "event.category": "ip",
                "event.type": "IP Connect",
                "meta.event.name": "TCPV4",
                "event.network.direction": "OUTGOING",
                "event.network.protocolName": "tcp",
                "event.network.connectionStatus": "SUCCESS",
                "dst.ip.address": ip,
                "dst.port.number": port,
                "src.ip.address": _ip(rng),
                "src.port.number": rng.randint(49152, 65535),
            }
    doc |= {
        "src.process.parent.name": "userinit.exe",
        "src.process.parent.displayName": "Userinit Logon Application",
        "src.process.parent.image.path": "C:\\Windows\\System32\\userinit.exe",
        "src.process.parent.cmdline": "C:\\Windows\\system32\\userinit.exe",
        "src.process.parent.pid": rng.randint(100, 9000),
        "src.process.parent.uid": _hex(rng, 16).upper(),
        "src.process.parent.user": f"CORP\\{p.user}",
        "src.process.parent.sessionId": 1,
        "src.process.parent.storyline.id": story,
        "src.process.parent.startTime": ms - rng.randint(10**6, 10**8),
        "src.process.parent.integrityLevel": "MEDIUM",
        "src.process.parent.isNative64Bit": True,
        "src.process.parent.isStorylineRoot": True,
        "src.process.parent.isRedirectCmdProcessor": False,
        "src.process.parent.subsystem": "SYS_WIN32",
        "src.process.parent.publisher": "MICROSOFT WINDOWS",
        "src.process.parent.signedStatus": "signed",
        "src.process.parent.image.sha1": _hex(rng, 40),
        "src.process.parent.image.sha256": _hex(rng, 64),
        "src.process.parent.image.md5": _hex(rng, 32),
    }
    doc |= {f"src.process.{c}": rng.randint(0, 10**4) for c in _S1_COUNTERS}
    return doc


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
_4689_MESSAGE = (
    "A process has exited.\n\nSubject:\n\tSecurity ID:\t\t{sid}\n\tAccount Name:\t\t{user}\n"
    "\tAccount Domain:\t\tCORP\n\tLogon ID:\t\t0x3e7a2\n\nProcess Information:\n\tProcess ID:\t{pid:#x}\n"
    "\tProcess Name:\t{exe}\n\tExit Status:\t0x0"
)
_4663_MESSAGE = (
    "An attempt was made to access an object.\n\nSubject:\n\tSecurity ID:\t\t{sid}\n\tAccount Name:\t\t{user}\n"
    "\tAccount Domain:\t\tCORP\n\tLogon ID:\t\t0x3e7a2\n\nObject:\n\tObject Server:\t\tSecurity\n"
    "\tObject Type:\t\tFile\n\tObject Name:\t\t{target}\n\tHandle ID:\t\t0x1a4\n\tResource Attributes:\t-\n\n"
    "Process Information:\n\tProcess ID:\t\t{pid:#x}\n\tProcess Name:\t\t{exe}\n\nAccess Request Information:\n"
    "\tAccesses:\t\tWriteData (or AddFile)\n\t\t\t\tAppendData (or AddSubdirectory or CreatePipeInstance)\n\n"
    "\tAccess Mask:\t\t0x6"
)
_5156_MESSAGE = (
    "The Windows Filtering Platform has permitted a connection.\n\nApplication Information:\n\tProcess ID:\t\t{pid}\n"
    "\tApplication Name:\t{app}\n\nNetwork Information:\n\tDirection:\t\tOutbound\n\tSource Address:\t\t{src}\n"
    "\tSource Port:\t\t{sport}\n\tDestination Address:\t{ip}\n\tDestination Port:\t\t{port}\n\tProtocol:\t\t6\n\n"
    "Filter Information:\n\tFilter Run-Time ID:\t{fid}\n\tLayer Name:\t\tConnect\n\tLayer Run-Time ID:\t48"
)
_SECURITY_TASKS = {
    "4688": "Process Creation",
    "4689": "Process Termination",
    "4663": "File System",
    "5156": "Filtering Platform Connection",
}


def _winlog_security(p: Proc, rng: random.Random) -> dict[str, Any]:
    sid = f"S-1-5-21-1610636575-2290000098-1654242922-{rng.randint(1000, 9999)}"
    code = {"start": "4688", "end": "4689", "file": "4663", "network": "5156"}[p.activity]
    subject = {
        "SubjectUserSid": sid,
        "SubjectUserName": p.user,
        "SubjectDomainName": "CORP",
        "SubjectLogonId": "0x3e7a2",
    }
    data: dict[str, Any]
    if code == "4688":
        data = subject | {
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
        message = _4688_MESSAGE.format(
            sid=sid,
            user=p.user,
            pid=p.pid,
            ppid=p.ppid,
            exe=p.executable,
            parent=p.parent_executable,
            cmd=p.command_line,
        )
    elif code == "4689":
        data = subject | {"ProcessId": f"{p.pid:#x}", "ProcessName": p.executable, "Status": "0x0"}
        message = _4689_MESSAGE.format(sid=sid, user=p.user, pid=p.pid, exe=p.executable)
    elif code == "4663":
        data = subject | {
            "ObjectServer": "Security",
            "ObjectType": "File",
            "ObjectName": p.target,
            "HandleId": "0x1a4",
            "AccessList": "%%4417\n\t\t\t\t%%4418\n\t\t\t\t",
            "AccessMask": "0x6",
            "ProcessId": f"{p.pid:#x}",
            "ProcessName": p.executable,
            "ResourceAttributes": "-",
        }
        message = _4663_MESSAGE.format(sid=sid, user=p.user, target=p.target, pid=p.pid, exe=p.executable)
    else:
        ip, port = _remote(p)
        app = _device_path(p.executable, rng.randint(1, 5)).lower()
        src, sport, fid = _ip(rng), rng.randint(49152, 65535), rng.randint(60000, 90000)
        data = {
            "ProcessID": str(p.pid),
            "Application": app,
            "Direction": "%%14593",
            "SourceAddress": src,
            "SourcePort": str(sport),
            "DestAddress": ip,
            "DestPort": str(port),
            "Protocol": "6",
            "FilterRTID": str(fid),
            "LayerName": "%%14611",
            "LayerRTID": "48",
        }
        message = _5156_MESSAGE.format(pid=p.pid, app=app, src=src, sport=sport, ip=ip, port=port, fid=fid)
    task = _SECURITY_TASKS[code]
    return {
        "@timestamp": _iso(p.ts),
        "agent": {"type": "filebeat", "version": "8.15.3", "id": _hex(rng, 32), "name": p.host},
        "data_stream": {"dataset": "system.security", "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.0.0"},
        "elastic_agent": {"id": _hex(rng, 32), "snapshot": False, "version": "8.15.3"},
        "event": {
            "action": task,
            "code": code,
            "kind": "event",
            "outcome": "success",
            "provider": "Microsoft-Windows-Security-Auditing",
            "created": _iso(p.ts + timedelta(seconds=1), 3),
            "dataset": "system.security",
            "module": "system",
        },
        "host": {
            "name": f"{p.host.lower()}.corp.example",
            "hostname": p.host.lower(),
            "id": _hex(rng, 32),
            "architecture": "x86_64",
            "os": {
                "type": "windows",
                "family": "windows",
                "platform": "windows",
                "name": "Windows 10 Enterprise",
                "kernel": "10.0.19041.4894 (WinBuild.160101.0800)",
                "build": "19045.4894",
                "version": "10.0",
            },
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
            "task": task,
        },
    }


_SYSMON_TASKS = {
    "1": "Process Create (rule: ProcessCreate)",
    "3": "Network connection detected (rule: NetworkConnect)",
    "5": "Process terminated (rule: ProcessTerminate)",
    "11": "File created (rule: FileCreate)",
}


def _winlog_sysmon(p: Proc, rng: random.Random) -> dict[str, Any]:
    code = {"start": "1", "end": "5", "file": "11", "network": "3"}[p.activity]
    utc = p.ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{p.ts.microsecond // 1000:03d}"
    head = {"RuleName": "-", "UtcTime": utc, "ProcessGuid": _guid(rng), "ProcessId": str(p.pid), "Image": p.executable}
    data: dict[str, Any]
    if code == "1":
        data = head | {
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
            "Hashes": f"SHA256={_hex(rng, 64).upper()},IMPHASH={_hex(rng, 32).upper()}",
            "ParentProcessGuid": _guid(rng),
            "ParentProcessId": str(p.ppid),
            "ParentImage": p.parent_executable,
            "ParentCommandLine": p.parent_executable,
            "ParentUser": f"CORP\\{p.user}",
        }
    elif code == "5":
        data = head | {"User": f"CORP\\{p.user}"}
    elif code == "11":
        data = head | {"TargetFilename": p.target, "CreationUtcTime": utc, "User": f"CORP\\{p.user}"}
    else:
        ip, port = _remote(p)
        data = head | {
            "User": f"CORP\\{p.user}",
            "Protocol": "tcp",
            "Initiated": "true",
            "SourceIsIpv6": "false",
            "SourceIp": _ip(rng),
            "SourceHostname": f"{p.host}.corp.example",
            "SourcePort": str(rng.randint(49152, 65535)),
            "SourcePortName": "-",
            "DestinationIsIpv6": "false",
            "DestinationIp": ip,
            "DestinationHostname": "-",
            "DestinationPort": str(port),
            "DestinationPortName": "https" if port == 443 else "-",
        }
    task = _SYSMON_TASKS[code]
    lines = "\n".join(f"{k}: {v}" for k, v in data.items())
    return {
        "@timestamp": _iso(p.ts),
        "agent": {"type": "filebeat", "version": "8.15.3", "id": _hex(rng, 32), "name": p.host},
        "data_stream": {"dataset": "windows.sysmon_operational", "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.0.0"},
        "event": {"code": code, "kind": "event", "provider": "Microsoft-Windows-Sysmon", "action": task},
        "host": {
            "name": p.host.lower(),
            "hostname": p.host.lower(),
            "os": {"type": "windows", "family": "windows", "platform": "windows", "name": "Windows 10 Enterprise"},
        },
        "log": {"level": "information"},
        "message": task.split(" (", 1)[0] + ":\n" + lines,
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "computer_name": f"{p.host}.corp.example",
            "event_data": data,
            "event_id": code,
            "opcode": "Info",
            "process": {"pid": 2212, "thread": {"id": rng.randint(100, 9999)}},
            "provider_guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
            "provider_name": "Microsoft-Windows-Sysmon",
            "record_id": rng.randint(10**4, 10**7),
            "task": task,
            "user": {"domain": "NT AUTHORITY", "identifier": "S-1-5-18", "name": "SYSTEM", "type": "Well Known Group"},
            "version": 5,
        },
    }


def _winlogbeat7(p: Proc, rng: random.Random, sysmon: bool) -> dict[str, Any]:
    """Winlogbeat 7.x: its security/sysmon module already turned the winlog record into ECS."""
    doc = _winlog_sysmon(p, rng) if sysmon else _winlog_security(p, rng)
    category, types, _ = _event_type(p)
    doc.pop("data_stream")
    doc.pop("elastic_agent", None)
    doc["event"] = doc["event"] | {
        "category": [category],
        "type": types,
        "module": "sysmon" if sysmon else "security",
        "created": _iso(p.ts + timedelta(seconds=1), 3),
    }
    doc["event"].pop("dataset", None)
    proc: dict[str, Any] = {"pid": p.pid, "executable": p.executable, "name": p.name}
    if p.activity == "start":
        args = p.command_line.split(" ")
        proc |= {
            "command_line": p.command_line,
            "args": args,
            "args_count": len(args),
            "parent": {"pid": p.ppid, "executable": p.parent_executable, "name": p.parent_name},
        }
        if sysmon:
            proc["entity_id"] = doc["winlog"]["event_data"]["ProcessGuid"]
            proc["working_directory"] = f"C:\\Users\\{p.user}\\"
            proc["pe"] = {
                "original_file_name": p.original_name or p.name,
                "company": "Vendor",
                "description": "Application",
                "file_version": "10.0.19041.1",
                "product": "Product",
            }
            proc["hash"] = {"sha256": _hex(rng, 64)}
    doc["process"] = proc
    doc["user"] = {"name": p.user, "domain": "CORP"}
    doc["related"] = {"user": [p.user]}
    if p.activity == "file":
        doc["file"] = {"path": p.target, "name": _basename(p.target), "directory": _dirname(p.target)}
    elif p.activity == "network":
        ip, port = _remote(p)
        doc["destination"] = {"ip": ip, "port": port}
        doc["network"] = {"transport": "tcp", "direction": "egress", "type": "ipv4"}
    return doc


def _winlogbeat(p: Proc, rng: random.Random) -> dict[str, Any]:
    # Kafka output of Winlogbeat: 8.x ships raw winlog documents (processing moved to ingest pipelines),
    # 7.x ran the modules in the Beat. Half Sysmon, half Security; a renamed binary needs Sysmon's
    # OriginalFileName, and the Security channel here has no file/network events the rule could see anyway.
    sysmon = p.original_name is not None or rng.random() < 0.5
    legacy = rng.random() < 0.3
    if legacy:
        doc = _winlogbeat7(p, rng, sysmon)
        version = "7.17.24"
    else:
        doc = _winlog_sysmon(p, rng) if sysmon else _winlog_security(p, rng)
        doc.pop("data_stream")
        doc.pop("elastic_agent", None)
        doc["event"].pop("dataset", None)
        doc["event"].pop("module", None)
        version = "8.15.3"
    doc["agent"] = {
        "type": "winlogbeat",
        "version": version,
        "name": p.host,
        "id": _hex(rng, 32),
        "ephemeral_id": _hex(rng, 32),
    }
    doc["@metadata"] = {"beat": "winlogbeat", "type": "_doc", "version": version}
    doc["ecs"] = {"version": "1.12.0" if legacy else "8.0.0"}
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


def _benign(source: str, rng: random.Random, p: Proc) -> tuple[Proc, str]:
    # Mostly process starts (the telemetry the rule looks at), with the ends, file writes and connections
    # that surround them in a real feed.
    roll = rng.random()
    if roll < 0.12 and source in _HAS_END:
        return replace(p, activity="end"), "benign_end"
    if roll < 0.22:
        target = rng.choice(_FILES).format(u=p.user, h=_hex(rng, 8).upper())
        return replace(p, activity="file", target=target), "benign_file"
    if roll < 0.30:
        return replace(p, activity="network", target=rng.choice(_REMOTES)), "benign_network"
    return p, "benign"


_ROAMING = ("NSM", "Microsoft\\Update", "Intel", "sysdrv")


def _user_dir(rng: random.Random, user: str) -> str:
    roaming = rng.choice(_ROAMING)
    return rng.choice(
        (
            f"C:\\Users\\{user}\\AppData\\Roaming\\{roaming}",
            f"C:\\Users\\{user}\\AppData\\Local\\Temp\\{_hex(rng, 6)}",
            f"C:\\Users\\{user}\\Downloads\\support",
            f"C:\\Users\\Public\\Documents\\{_hex(rng, 4)}",
        )
    )


def _programdata_dir(rng: random.Random) -> str:
    return "C:\\ProgramData\\" + rng.choice(("SoftwareUpdate", "nsm", "WindowsDefenderUpdate", "Intel\\ICU"))


def _positive_variants(source: str) -> list[str]:
    return [v for v in POSITIVE_VARIANTS if v != "renamed" or source in _HAS_ORIGINAL_NAME]


def _near_miss_variants(source: str) -> list[str]:
    """The near-misses this source can express."""
    return [
        v
        for v in NEAR_MISS_VARIANTS
        if (v != "process_end" or source in _HAS_END)
        and (v != "not_windows" or source in _HAS_OS)
        and (v != "volume_two_digits" or source == "crowdstrike_fdr")
        and (v != "original_name_case" or source in _HAS_ORIGINAL_NAME)
    ]


def _positive(source: str, rng: random.Random, p: Proc, variant: str | None = None) -> tuple[Proc, str]:
    variants = _positive_variants(source)
    if variant not in variants:
        variant = rng.choice(variants)
    folder = _programdata_dir(rng) if variant == "programdata" or rng.random() < 0.25 else _user_dir(rng, p.user)
    client = f"{folder}\\client32.exe"
    if variant in ("user_folder", "programdata", "malformed_pid"):
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
        # FDR carries only the parent's base name, so a child of client32.exe matches on the child's own
        # path: a dropped helper in the same user folder.
        child = f"{folder}\\{rng.choice(('run.exe', 'pcicapi.exe', 'TCCTL32.exe'))}"
        p = replace(p, executable=child, command_line=f'"{child}"', parent_executable=client)
    else:
        shell = rng.choice(
            ("C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
        )
        p = replace(p, executable=shell, command_line=f"{_basename(shell)} /c whoami /all", parent_executable=client)
    if source == "crowdstrike_fdr":
        p = replace(p, executable=_device_path(p.executable, rng.randint(1, 9)))
    return p, variant


def _near_miss(source: str, rng: random.Random, p: Proc, variant: str | None = None) -> tuple[Proc, str]:
    variants = _near_miss_variants(source)
    if variant not in variants:
        variant = rng.choice(variants)
    nsm = f"{_user_dir(rng, p.user)}\\client32.exe"
    if variant == "program_files":
        exe = "C:\\Program Files (x86)\\NetSupport\\NetSupport Manager\\client32.exe"
        p = replace(
            p, executable=exe, command_line=f'"{exe}" /s', parent_executable="C:\\Windows\\System32\\services.exe"
        )
    elif variant == "command_line_only":
        p = replace(
            p,
            executable="C:\\Windows\\System32\\notepad.exe",
            command_line=f'"C:\\Windows\\system32\\notepad.exe" {nsm[:-4]}.ini',
            parent_executable="C:\\Windows\\explorer.exe",
        )
    elif variant == "client32_lookalike":
        exe = nsm.replace("client32.exe", rng.choice(("client32.exe.bak", "client32.exe.old", "client32.exe_")))
        p = replace(p, executable=exe, command_line=f'"{exe}"', parent_executable="C:\\Windows\\explorer.exe")
    elif variant == "process_end":
        p = replace(p, executable=nsm, command_line=f'"{nsm}"', activity="end")
    elif variant == "not_windows":
        p = replace(p, executable=nsm, command_line=f'"{nsm}"', os="linux")
    elif variant == "file_written":
        # The dropper writes client32.exe into a user folder: a file event, not a process start.
        p = replace(p, activity="file", target=nsm)
    elif variant == "network_from_client32":
        # client32.exe in a user folder phoning its gateway: a network event, not a process start.
        p = replace(p, executable=nsm, command_line=f'"{nsm}"', activity="network", target="185.118.0.9:443")
    elif variant == "original_name_case":
        # `==` is case-sensitive in Elasticsearch EQL (only `:` folds case): a renamed binary whose version
        # resource says CLIENT32.EXE escapes the seed rule's original_file_name clause.
        exe = f"{_user_dir(rng, p.user)}\\{rng.choice(('update.exe', 'msedgeupdate.exe'))}"
        p = replace(
            p, executable=exe, command_line=f'"{exe}"', original_name=rng.choice(("CLIENT32.EXE", "Client32.exe"))
        )
    else:  # volume_two_digits: `HarddiskVolume?` is exactly one character, so volume 10+ is outside the rule
        p = replace(p, executable=nsm, command_line=f'"{nsm}"')
    if source == "crowdstrike_fdr":
        volume = rng.randint(10, 19) if variant == "volume_two_digits" else rng.randint(1, 9)
        p = replace(p, executable=_device_path(p.executable, volume))
    return p, variant


def _malformed(source: str, rng: random.Random, p: Proc, variant: str | None = None) -> tuple[bytes, str]:
    variants = malformed_variants(source)
    if variant not in variants:
        variant = rng.choice(variants)
    # Every variant mentions client32, so the prefilter lets it through and the parser must refuse it.
    client = f"C:\\Users\\{p.user}\\AppData\\Roaming\\NSM\\client32.exe"
    bad = replace(p, executable=client, command_line=f'"{client}"', activity="start", original_name=None)
    if variant == "truncated":
        good = orjson.dumps(WRITERS[source](bad, rng))
        cut = good.find(b"client32") + rng.randint(9, 40)
        return good[: min(cut, len(good) - 2)], variant
    if variant == "not_object":
        return rng.choice((b"[1,2]", b'"client32.exe"', b'["client32.exe", 1]', b"42", b"null")), variant
    if variant == "unknown_source":
        return orjson.dumps({"foo": "bar", "message": f"started {client}"}), variant
    if variant == "too_deep":
        return b'{"client32":' * 2000 + b"1" + b"}" * 2000, variant
    if variant == "too_large":
        # A > 1 MiB line: an absurd encoded command line, refused before parsing.
        huge = replace(bad, command_line=f'"{client}" /ARGS ' + "QUFB" * (300_000 + rng.randint(0, 1000)))
        return orjson.dumps(WRITERS[source](huge, rng)), variant
    doc = WRITERS[source](bad, rng)
    if "records" in doc:
        doc["records"] = {"category": "AdvancedHunting-DeviceProcessEvents", "note": "client32.exe"}
    else:
        doc["winlog"]["event_data"] = ["client32.exe"]
    return orjson.dumps(doc), variant


# Sources whose records hold an object the normaliser must read (an Event Hub `records` list, winlog's
# event_data): only there can a record's structure be wrong. Flat vendor records and ECS documents have
# values only, and a malformed value is dropped (ignore_malformed), not a reason to refuse the record.
_HAS_STRUCTURE = frozenset({"m365_defender", "system_security", "windows_sysmon"})


def malformed_variants(source: str) -> tuple[str, ...]:
    return tuple(v for v in MALFORMED_VARIANTS if v != "bad_structure" or source in _HAS_STRUCTURE)


def _corrupt_pid(doc: dict[str, Any], rng: random.Random) -> None:
    """Give the process id a type no pipeline can index (a list of words, an object, a non-numeric string)."""
    wrong: Any = rng.choice((["not", "a", "pid"], {"value": 1}, "abc"))
    if "records" in doc:
        doc["records"][0]["properties"]["ProcessId"] = wrong
    elif "RawProcessId" in doc:
        doc["RawProcessId"] = wrong
    elif "tgt.process.pid" in doc:
        doc["tgt.process.pid"] = wrong
    elif "event_type_full" in doc:
        doc["pid"] = wrong
    elif isinstance(doc.get("process"), dict):
        doc["process"]["pid"] = wrong
    else:
        data = doc["winlog"]["event_data"]
        key = "NewProcessId" if "NewProcessId" in data else "ProcessId"
        data[key] = "zz-not-hex" if isinstance(wrong, str) else wrong


def _one(source: str, kind: str, rng: random.Random, ts: datetime, variant: str | None = None) -> Generated:
    base = _base(rng, ts)
    if kind == "malformed":
        raw, name = _malformed(source, rng, base, variant)
        return Generated(source, raw, kind, None, name)
    if kind == "positive":
        proc, name = _positive(source, rng, base, variant)
    elif kind == "near_miss":
        proc, name = _near_miss(source, rng, base, variant)
    else:
        proc, name = _benign(source, rng, base)
    doc = WRITERS[source](proc, rng)
    if name == "malformed_pid":
        _corrupt_pid(doc, rng)
    return Generated(source, orjson.dumps(doc), kind, kind == "positive", name)


def _check_sources(sources: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(sources or SOURCE_NAMES)
    unknown = set(chosen) - set(SOURCE_NAMES)
    if unknown:
        raise ValueError(f"unknown source(s): {', '.join(sorted(unknown))}")
    return chosen


def generate(
    n: int,
    *,
    seed: int,
    netsupport_rate: float = 0.001,
    near_miss_rate: float | None = None,
    malformed_rate: float = 0.0,
    sources: Sequence[str] | None = None,
) -> Iterator[Generated]:
    """`n` records, deterministic for a seed, each from one of `sources` (default: all eight) at random.

    About `netsupport_rate` of them are positives, `near_miss_rate` (default: the netsupport rate)
    near-misses, `malformed_rate` malformed; the rest benign.
    """
    rng = random.Random(seed)
    chosen = _check_sources(sources)
    near_rate = netsupport_rate if near_miss_rate is None else near_miss_rate
    for i in range(n):
        source = chosen[rng.randrange(len(chosen))]
        ts = _EPOCH + timedelta(milliseconds=137 * i + rng.randint(0, 136))
        roll = rng.random()
        if roll < malformed_rate:
            kind = "malformed"
        elif roll < malformed_rate + netsupport_rate:
            kind = "positive"
        elif roll < malformed_rate + netsupport_rate + near_rate:
            kind = "near_miss"
        else:
            kind = "benign"
        yield _one(source, kind, rng, ts)


def generate_exact(
    source: str,
    *,
    seed: int,
    benign: int = 250,
    positive: int = 5,
    near_miss: int = 5,
    malformed: int = 3,
    malformed_kinds: Sequence[str] | None = None,
) -> list[Generated]:
    """Exact counts for one source, shuffled; positives, near-misses and malformed records cycle through
    their variants so that a small file still shows each (the demo corpus)."""
    rng = random.Random(seed)
    (source,) = _check_sources([source])
    pos = _positive_variants(source)
    near = _near_miss_variants(source)
    variants = [v for v in (malformed_kinds or MALFORMED_VARIANTS) if v in malformed_variants(source)]
    rng.shuffle(pos)
    rng.shuffle(near)
    none: str | None = None
    plan: list[tuple[str, str | None]] = (
        [("benign", none)] * benign
        + [("positive", pos[i % len(pos)]) for i in range(positive)]
        + [("near_miss", near[i % len(near)]) for i in range(near_miss)]
        + [("malformed", variants[i % len(variants)]) for i in range(malformed)]
    )
    rng.shuffle(plan)
    return [
        _one(source, kind, rng, _EPOCH + timedelta(milliseconds=250 * i + rng.randint(0, 249)), variant)
        for i, (kind, variant) in enumerate(plan)
    ]


# The demo replays onto Kafka, whose default message limit (1 MB) a > 1 MiB record would exceed.
DEMO_MALFORMED = ("truncated", "not_object", "bad_structure", "unknown_source", "too_deep")


def write_demo(directory: Path, seed: int = 11) -> dict[str, int]:
    """<directory>/<source>.ndjson.gz: per source 250 benign, 5 positives, 5 near-misses, 3 malformed."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, source in enumerate(SOURCE_NAMES):
        records = generate_exact(source, seed=seed + i, malformed_kinds=DEMO_MALFORMED)
        data = b"".join(r.raw + b"\n" for r in records)
        (directory / f"{source}.ndjson.gz").write_bytes(gzip.compress(data, mtime=0))
        counts[source] = len(records)
    return counts


def _open_out(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdout.buffer
    if path.endswith(".gz"):
        # mtime=0 and no file name in the header: the same seed gives the same bytes, a clean git diff.
        return cast(IO[bytes], gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0))
    return open(path, "wb")


def _close_out(out: IO[bytes]) -> None:
    if out is sys.stdout.buffer:
        out.flush()
        return
    inner = out.fileobj if isinstance(out, gzip.GzipFile) else None
    out.close()
    if inner is not None:
        inner.close()  # GzipFile leaves a passed-in file object open


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.synth",
        description="Generate synthetic raw telemetry (NDJSON, one record per line) for the eight sources, with "
        "NetSupport positives, near-misses and malformed records in chosen proportions. Deterministic for a seed. "
        "Output files ending in .gz are gzipped reproducibly.",
    )
    ap.add_argument("--count", type=int, default=10000, help="records to generate (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--netsupport-rate", type=float, default=0.001, help="share of positives (default 0.001)")
    ap.add_argument("--near-miss-rate", type=float, help="share of near-misses (default: the netsupport rate)")
    ap.add_argument("--malformed-rate", type=float, default=0.0, help="share of malformed records (default 0)")
    ap.add_argument(
        "--source", action="append", choices=SOURCE_NAMES, metavar="NAME", help="only this source (repeatable)"
    )
    dest = ap.add_mutually_exclusive_group()
    dest.add_argument("--out", default="-", help="output file (.gz: gzipped), or - for stdout (default)")
    dest.add_argument("--split-dir", metavar="DIR", help="write one <source>.ndjson per source into DIR instead")
    dest.add_argument(
        "--demo",
        metavar="DIR",
        help="write the demo corpus into DIR: per source 250 benign, 5 positives, 5 near-misses, 3 malformed "
        "(<source>.ndjson.gz; --count and the rates do not apply)",
    )
    ap.add_argument(
        "--manifest", metavar="FILE", help="also write a JSON list of {line, source, kind, variant, expect_alert}"
    )
    args = ap.parse_args(argv)
    if args.demo:
        counts = write_demo(Path(args.demo), seed=args.seed if args.seed != 1 else 11)
        print(f"wrote {sum(counts.values())} records into {args.demo}: {counts}", file=sys.stderr)
        return 0
    try:
        gen = generate(
            args.count,
            seed=args.seed,
            netsupport_rate=args.netsupport_rate,
            near_miss_rate=args.near_miss_rate,
            malformed_rate=args.malformed_rate,
            sources=args.source,
        )
    except ValueError as exc:
        ap.error(str(exc))
    manifest: list[dict[str, Any]] = []
    outs: dict[str, IO[bytes]] = {}
    lines: dict[str, int] = {}
    if args.split_dir:
        Path(args.split_dir).mkdir(parents=True, exist_ok=True)
    try:
        for g in gen:
            key = g.source if args.split_dir else "-"
            out = outs.get(key)
            if out is None:
                path = str(Path(args.split_dir) / f"{g.source}.ndjson") if args.split_dir else args.out
                out = outs[key] = _open_out(path)
            out.write(g.raw + b"\n")
            lines[key] = line = lines.get(key, 0) + 1
            if args.manifest:
                entry: dict[str, Any] = {"line": line, "source": g.source, "kind": g.kind, "variant": g.variant}
                if args.split_dir:
                    entry["file"] = f"{g.source}.ndjson"
                manifest.append(entry | {"expect_alert": g.expect_alert})
    finally:
        for out in outs.values():
            _close_out(out)
    if args.manifest:
        Path(args.manifest).write_bytes(orjson.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
