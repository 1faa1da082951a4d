"""`detector scan`, `normalize` and `rules show` as a user runs them."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector.cli.main import main
from tests.test_engine import POSITIVE, endpoint_record

BENIGN = endpoint_record("C:\\Windows\\System32\\svchost.exe")
CHILD = endpoint_record("C:\\Users\\bob\\AppData\\Local\\Temp\\nsm\\client32.exe").replace(b"4242", b"4243")
FIXTURES = Path(__file__).parent / "fixtures" / "rules"


def _ndjson(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_scan_ndjson_reports_alerts_and_bad_lines(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    f = _ndjson(tmp_path / "mixed.ndjson", [BENIGN, POSITIVE, b"", b"{not json client32", b"[1]", BENIGN])
    assert main(["scan", str(f)]) == 0
    out, err = capsysbinary.readouterr()
    alerts = [orjson.loads(line) for line in out.splitlines()]
    assert len(alerts) == 1 and alerts[0]["kibana.alert.rule.rule_id"] == "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891"
    text = err.decode()
    assert "scanned 5 records" in text  # the blank line is not a record
    assert "alerts: 1" in text and "rejected: 2" in text
    assert f"not_json: 1 ({f}:4:" in text and f"not_object: 1 ({f}:5:" in text


def test_scan_gzip_json_array_and_stdin_give_the_same_alert_ids(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = tmp_path / "a.ndjson.gz"
    gz.write_bytes(gzip.compress(BENIGN + b"\n" + POSITIVE + b"\n"))
    arr = tmp_path / "a.json"
    arr.write_bytes(b"[" + BENIGN + b",\n" + POSITIVE + b"]")
    ids = []
    for args in (["scan", str(gz)], ["scan", str(arr)]):
        assert main(args) == 0
        out, _ = capsysbinary.readouterr()
        ids.append([orjson.loads(x)["kibana.alert.uuid"] for x in out.splitlines()])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(POSITIVE + b"\n")))
    assert main(["scan", "-"]) == 0
    out, _ = capsysbinary.readouterr()
    ids.append([orjson.loads(x)["kibana.alert.uuid"] for x in out.splitlines()])
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 1


def test_scan_with_another_rule_revision(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    assert main(["scan", "--rule", str(FIXTURES / "netsupport_v2_harddiskvolume_star.toml"), str(f)]) == 0
    out, _ = capsysbinary.readouterr()
    assert orjson.loads(out.splitlines()[0])["kibana.alert.rule.version"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "/no/such/file.ndjson"], "no such file: /no/such/file.ndjson"),
        (["scan", "--rule", "/no/rule.toml", "-"], "cannot read rule file /no/rule.toml"),
        (["scan", "--rule", str(FIXTURES / "sequence_rule.toml"), "-"], "sequence"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("detector: error: ") and message in err and err.count("\n") == 1


def test_scan_summary_json(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [BENIGN, POSITIVE, b"oops"])
    summary = tmp_path / "summary.json"
    assert main(["scan", "--summary-json", str(summary), "--source", "endpoint", str(f)]) == 0
    data = json.loads(summary.read_text())
    assert data["records"] == 3 and data["alerts"] == 1 and data["rejected_by_reason"] == {"not_json": 1}
    assert data["by_source"] == {"endpoint": 2}


def test_normalize_prints_ecs_events(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [BENIGN, b"nope"])
    assert main(["normalize", str(f)]) == 0
    out, err = capsysbinary.readouterr()
    (event,) = [orjson.loads(x) for x in out.splitlines()]
    assert event["process"]["name"] == "svchost.exe" and event["host"]["os"]["type"] == "windows"
    assert b"not_json: 1" in err and err.startswith(b"normalised 2 records") and b"alerts" not in err


def test_rules_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show"]) == 0
    out = capsys.readouterr().out
    assert "NetSupport Manager Execution from an Unusual Path" in out
    assert "TA0011 Command and Control" in out and "T1219 Remote Access Tools" in out
    assert 'prefilter: records must contain one of: "client32"' in out


def test_console_script_help() -> None:
    res = subprocess.run([sys.executable, "-m", "detector.cli.main", "scan", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--source" in res.stdout and "--rule" in res.stdout
