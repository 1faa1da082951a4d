"""`detector scan`, `normalize` and `rules show` as a user runs them."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from detector.cli.main import main
from detector.cli.scan import too_large_detail
from detector.engine import Engine
from detector.rules.model import load_rules
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


# --- hostile and messy input --------------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "detector.cli.main"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def _no_traceback_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr


def test_a_truncated_gzip_is_reported_and_the_next_file_is_still_scanned(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    body = b"".join(BENIGN.replace(b'"NWQ1Y2Q0"', b'"%d"' % i) + b"\n" for i in range(3000)) + POSITIVE + b"\n"
    cut = tmp_path / "cut.ndjson.gz"
    whole = gzip.compress(body)
    cut.write_bytes(whole[: len(whole) - 40])  # the positive record at the end is lost with the trailer
    good = _ndjson(tmp_path / "good.ndjson", [BENIGN, POSITIVE])
    summary = tmp_path / "summary.json"
    assert main(["scan", "--no-prefilter", "--summary-json", str(summary), str(cut), str(good)]) == 1
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 1  # the alert of the good file
    text = err.decode()
    data = json.loads(summary.read_text())
    assert data["records"] > 2900 + 2 and data["rejected"] == 0  # what came before the damage was scanned too
    (damage,) = data["damaged_inputs"]
    assert damage.startswith(f"{cut}: truncated: the compressed data ends before its end-of-stream marker")
    assert "complete lines" in damage and damage in text
    assert "damaged inputs: 1" in text
    assert text.rstrip().endswith("detector: error: 1 input file was damaged (see the summary); exit status 1")


def test_a_json_array_with_a_bad_element_gives_one_rejection_and_its_siblings_alerts(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    arr = tmp_path / "a.json"
    # The bad element names client32, so the prefilter cannot skip it: it is parsed and rejected.
    arr.write_bytes(b"[\n  " + POSITIVE + b',\n  {"broken": client32},\n  ' + CHILD + b"\n]\n")
    assert main(["scan", str(arr)]) == 0
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 2
    text = err.decode()
    assert "scanned 3 records" in text and "rejected: 1" in text and f"not_json: 1 ({arr}:2: " in text


def test_an_oversized_line_is_a_too_large_rejection_worded_as_the_engine_words_it(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    big = b'{"pad": "' + b"x" * 3000 + b'"}'
    f = _ndjson(tmp_path / "big.ndjson", [POSITIVE, big, CHILD])
    assert main(["scan", "--max-record-bytes", "2000", str(f)]) == 0
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 2
    detail = Engine(load_rules(), max_record_bytes=2000).process(big).rejection
    assert detail is not None and detail.detail == too_large_detail(len(big), 2000)
    assert f"too_large: 1 ({f}:2: {detail.detail})" in err.decode() and b"scanned 3 records" in err


def test_pretty_printed_documents_and_arrays_are_scanned_as_documents(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    pretty = tmp_path / "event.json"
    pretty.write_bytes(json.dumps(orjson.loads(POSITIVE), indent=2).encode())
    pretty_array = tmp_path / "events.json"
    pretty_array.write_bytes(json.dumps([orjson.loads(POSITIVE), orjson.loads(CHILD)], indent=4).encode())
    assert main(["scan", "--no-prefilter", str(pretty), str(pretty_array)]) == 0
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 3
    assert b"scanned 3 records" in err and b"rejected: 0" in err


def test_a_closed_stdin_is_one_line_and_status_2() -> None:
    res = subprocess.run(
        ["sh", "-c", 'exec "$0" -m detector.cli.main scan - <&-', sys.executable], capture_output=True, text=True
    )
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("detector: error: standard input is closed")
    _no_traceback_one_line(res.stderr)


def test_a_closed_stdout_is_one_line_and_status_2(tmp_path: Path) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    res = subprocess.run(
        ["sh", "-c", 'exec "$0" -m detector.cli.main scan "$1" >&-', sys.executable, str(f)],
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert res.returncode == 2 and res.stderr == "detector: error: standard output is closed\n"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing-dir/summary.json", "no such directory"),
        (".", "is a directory"),
    ],
)
def test_an_unwritable_summary_path_is_refused_before_the_scan(tmp_path: Path, where: str, message: str) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    target = tmp_path / where
    res = _run(["scan", "--summary-json", str(target), str(f)])
    assert res.returncode == 2 and res.stdout == ""  # refused before any alert went out
    assert res.stderr.startswith(f"detector: error: --summary-json {target}: ") and message in res.stderr
    _no_traceback_one_line(res.stderr)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_summary_path_where_files_cannot_be_created_is_refused_before_the_scan(tmp_path: Path) -> None:
    # /proc refuses new files even to root, for whom permission bits (and os.access) always say yes.
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    res = _run(["scan", "--summary-json", "/proc/detector-summary.json", str(f)])
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("detector: error: --summary-json /proc/detector-summary.json: ")
    _no_traceback_one_line(res.stderr)


def test_an_existing_summary_file_is_replaced_and_one_the_run_created_is_removed_if_it_stops(tmp_path: Path) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    summary = tmp_path / "summary.json"
    summary.write_text("x" * 10_000)
    assert main(["scan", "--summary-json", str(summary), str(f)]) == 0
    assert json.loads(summary.read_text())["alerts"] == 1
    fresh = tmp_path / "fresh.json"
    assert main(["scan", "--summary-json", str(fresh), "--rule", str(FIXTURES / "sequence_rule.toml"), str(f)]) == 2
    assert not fresh.exists()


def test_a_reader_closing_stdout_early_stops_the_scan_with_status_141(tmp_path: Path) -> None:
    # Enough alerts to overflow the pipe and our buffer after the reader has gone.
    f = _ndjson(tmp_path / "many.ndjson", [POSITIVE.replace(b"4242", b"%d" % i) for i in range(2000)])
    proc = subprocess.Popen([*CLI, "scan", str(f)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert orjson.loads(first)["kibana.alert.rule.rule_id"] == "5f73aef2-7abc-4fd9-ac0d-ab8ec3e13891"
    assert err == "detector: stdout was closed before the run finished (broken pipe); stopped\n"


def test_an_endless_line_on_stdin_is_scanned_in_bounded_memory() -> None:
    # The child reports its own peak RSS; a 50 MiB line held whole would show at least that much growth.
    code = (
        "import resource, sys\n"
        "from detector.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )

    def run(stdin: Iterator[bytes]) -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "scan", "--no-progress", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()) if proc.stdout else None)
        reader.start()
        for piece in stdin:
            proc.stdin.write(piece)
        proc.stdin.close()
        err = proc.stderr.read().decode()
        assert proc.wait(120) == 0, err
        reader.join()
        *summary, rss = err.splitlines()
        assert len(out[0].splitlines()) == 1  # the alert after the huge line
        return int(rss), "\n".join(summary)

    def huge() -> Iterator[bytes]:
        yield BENIGN + b"\n"
        block = b"x" * (1 << 16)
        for _ in range(800):
            yield block
        yield b"\n" + POSITIVE + b"\n"

    small_rss, _ = run(iter([BENIGN + b"\n", b'{"pad": "' + b"x" * 100 + b'"}\n', POSITIVE + b"\n"]))
    huge_rss, summary = run(huge())
    assert f"too_large: 1 (<stdin>:2: record is {800 << 16} bytes" in summary
    assert huge_rss - small_rss < 20 * 1024, (small_rss, huge_rss)  # KiB: far below the 50 MiB line


def test_normalize_reports_damage_with_status_1(tmp_path: Path) -> None:
    cut = tmp_path / "cut.gz"
    whole = gzip.compress(b"\n".join([BENIGN] * 50) + b"\n")
    cut.write_bytes(whole[:-4])  # half the trailer gone: all the data is there, the check is not
    res = _run(["normalize", str(cut)])
    assert res.returncode == 1 and len(res.stdout.splitlines()) == 50
    assert f"{cut}: truncated" in res.stderr and "Traceback" not in res.stderr


def test_help_documents_the_exit_statuses_and_input_shapes() -> None:
    res = _run(["scan", "--help"])
    assert res.returncode == 0
    for text in ("exit status:", "  1    the run completed, but a file was damaged", "  141  ", "pretty-printed"):
        assert text in res.stdout, text
    assert "byte-order mark is skipped" in " ".join(res.stdout.split())


def test_replay_reports_damage_and_oversized_records_without_sending_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from detector.stream import replay as replay_mod

    sent: list[bytes] = []

    class FakeProducer:
        def __init__(self, config: dict[str, object]) -> None:
            pass

        def produce(self, topic: str, value: bytes, on_delivery: object) -> None:
            sent.append(value)

        def poll(self, timeout: float) -> int:
            return 0

        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(replay_mod, "Producer", FakeProducer)
    monkeypatch.setattr("detector.stream.topics.connect", lambda cfg: None)  # no broker here
    cut = tmp_path / "cut.gz"
    whole = gzip.compress(b'{"a": 1}\n' * 100)
    cut.write_bytes(whole[:-4])
    big = _ndjson(tmp_path / "big.ndjson", [b'{"b": 1}', b'{"pad": "' + b"x" * (1 << 20) + b'"}', b'{"c": 1}'])
    assert main(["replay", "--topic", "t", str(cut), str(big)]) == 1
    err = capsys.readouterr().err
    assert sent == [b'{"a": 1}'] * 100 + [b'{"b": 1}', b'{"c": 1}']
    assert f"not sent: {big}:2: record is {(1 << 20) + 11} bytes, over the 1048576-byte limit" in err
    assert f"damaged input: {cut}: truncated" in err


def test_a_malformed_value_is_dropped_counted_and_the_record_still_alerts(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    bad_pid = endpoint_record("C:\\Users\\eve\\client32.exe").replace(b'"pid":4242', b'"pid":1e30')
    f = _ndjson(tmp_path / "in.ndjson", [bad_pid, POSITIVE])
    summary = tmp_path / "summary.json"
    assert main(["scan", "--summary-json", str(summary), str(f)]) == 0
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 2  # both records alert
    assert b"malformed values dropped, records still evaluated: 1 in 1 records" in err
    assert b"process.pid: 1 (" in err and b"in.ndjson:1: process.pid:" in err
    doc = json.loads(summary.read_text())
    assert doc["malformed_values_by_field"] == {"process.pid": 1} and doc["records_with_malformed_values"] == 1
    assert doc["rejected"] == 0


def test_scan_counts_records_recognised_without_an_event(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    logon = {  # a Security logon: recognised, but not process telemetry
        "@timestamp": "2024-01-01T00:00:00Z",
        "@metadata": {"beat": "winlogbeat", "version": "8.15.3"},
        "winlog": {"channel": "Security", "event_id": "4624", "event_data": {"ProcessName": "C:\\x\\client32.exe"}},
    }
    odd = {"@timestamp": "2024-01-01T00:00:00Z", "@metadata": {"beat": "winlogbeat", "version": "9.0.0"}}
    f = _ndjson(tmp_path / "x.ndjson", [orjson.dumps(logon), orjson.dumps(logon), orjson.dumps(odd), POSITIVE])
    summary = tmp_path / "summary.json"
    assert main(["scan", "--no-prefilter", "--summary-json", str(summary), str(f)]) == 0
    err = capsysbinary.readouterr().err.decode()
    assert "  recognised without an event: 3 (not_covered 2, shape_not_understood 1)" in err.splitlines()
    data = json.loads(summary.read_text())
    assert data["recognised_without_event"] == 3
    assert data["recognised_without_event_by_reason"] == {"not_covered": 2, "shape_not_understood": 1}
    assert data["by_source"] == {"winlogbeat": 3, "endpoint": 1} and data["alerts"] == 1


def test_scan_summary_has_no_without_event_line_when_every_record_gave_one(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    f = _ndjson(tmp_path / "x.ndjson", [POSITIVE])
    summary = tmp_path / "summary.json"
    assert main(["scan", "--summary-json", str(summary), str(f)]) == 0
    assert b"without an event" not in capsysbinary.readouterr().err
    assert json.loads(summary.read_text())["recognised_without_event"] == 0
