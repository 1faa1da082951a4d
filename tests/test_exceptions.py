"""Rule exceptions in Kibana's export format: parsing, Kibana's entry semantics, and `detector scan --exceptions`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli.main import main
from detector.engine import Engine
from detector.rules.exceptions import ExceptionsError, load_exceptions, parse_exceptions, wildcard_regex
from detector.rules.model import load_rules

FIXTURE = Path(__file__).parent / "fixtures" / "exceptions" / "netsupport_tuning.ndjson"
NOW = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
DETAILS = {"exported_exception_list_count": 1, "exported_exception_list_item_count": 1}


def container(list_id: str = "l1", kind: str = "detection") -> dict[str, Any]:
    return {"list_id": list_id, "id": "x", "name": "n", "type": kind, "namespace_type": "single", "os_types": []}


def item(*entries: dict[str, Any], item_id: str = "i1", **extra: Any) -> dict[str, Any]:
    return {"item_id": item_id, "list_id": "l1", "type": "simple", "name": item_id, "entries": list(entries), **extra}


def ndjson(*docs: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


def excludes(entry_or_item: dict[str, Any], event: dict[str, Any], now: float = NOW) -> bool:
    it = entry_or_item if "item_id" in entry_or_item else item(entry_or_item)
    lists = parse_exceptions(ndjson(container(), it))
    return lists.excluded_by(event, now) is not None


def m(field: str, value: Any, op: str = "included", kind: str = "match") -> dict[str, Any]:
    return {"field": field, "operator": op, "type": kind, "value": value}


EVENT = {
    "host": {"name": "WS-1", "os": {"type": "windows"}},
    "user": {"name": ["alice", "svc-backup"]},
    "process": {"executable": "C:\\Users\\alice\\NetSupport\\client32.exe", "pid": 4711, "name": "client32.exe"},
}


# ------------------------------------------------------------------------------------------- semantics


def test_match_is_exact_and_case_sensitive() -> None:
    assert excludes(m("host.name", "WS-1"), EVENT)
    assert not excludes(m("host.name", "ws-1"), EVENT)
    assert not excludes(m("host.name", "WS"), EVENT)


def test_multi_valued_fields_match_any_of() -> None:
    assert excludes(m("user.name", "svc-backup"), EVENT)
    assert excludes(m("user.name", ["bob", "alice"], kind="match_any"), EVENT)
    assert not excludes(m("user.name", ["bob", "Alice"], kind="match_any"), EVENT)


def test_match_on_a_long_field_reads_the_value_as_a_number() -> None:
    assert excludes(m("process.pid", "4711"), EVENT)
    assert not excludes(m("process.pid", "47"), EVENT)


def test_excluded_negates_and_is_true_on_a_missing_field() -> None:
    assert not excludes(m("host.name", "WS-1", "excluded"), EVENT)
    assert excludes(m("host.name", "OTHER", "excluded"), EVENT)
    assert excludes(m("process.parent.name", "x", "excluded"), EVENT)  # must_not of nothing
    # excluded match_any on a multi-valued field: excluded when no value is listed
    assert not excludes(m("user.name", ["alice"], "excluded", "match_any"), EVENT)


def test_exists() -> None:
    assert excludes({"field": "process.pid", "operator": "included", "type": "exists"}, EVENT)
    assert not excludes({"field": "process.parent.pid", "operator": "included", "type": "exists"}, EVENT)
    assert excludes({"field": "process.parent.pid", "operator": "excluded", "type": "exists"}, EVENT)


def test_wildcard_is_lucene_case_sensitive_with_backslash_escapes() -> None:
    assert excludes(m("process.executable", "C:\\\\Users\\\\*\\\\client32.exe", kind="wildcard"), EVENT)
    assert not excludes(m("process.executable", "c:\\\\users\\\\*", kind="wildcard"), EVENT)  # case-sensitive
    # Unescaped backslashes escape the next letter, as in Lucene: this pattern has no backslash left in it.
    assert not excludes(m("process.executable", "C:\\Users\\*", kind="wildcard"), EVENT)
    assert excludes(m("process.executable", "C:?Users*", kind="wildcard"), EVENT)
    assert excludes(m("process.name", "client??.exe", kind="wildcard"), EVENT)
    assert not excludes(m("process.name", "client?.exe", kind="wildcard"), EVENT)
    assert not excludes(m("process.pid", "47*", kind="wildcard"), EVENT)  # a wildcard on a number matches nothing
    assert wildcard_regex("a\\*b").fullmatch("a*b") and not wildcard_regex("a\\*b").fullmatch("axb")
    assert wildcard_regex("tail\\").fullmatch("tail\\")


def test_wildcard_is_linear_on_hostile_values() -> None:
    import time

    rx = wildcard_regex("*a*a*a*a*a*b")
    started = time.perf_counter()
    assert rx.fullmatch("a" * 100_000) is None
    assert time.perf_counter() - started < 1.0


def test_an_item_matches_when_all_its_entries_do() -> None:
    both = item(m("host.name", "WS-1"), m("user.name", "alice"))
    one = item(m("host.name", "WS-1"), m("user.name", "bob"))
    assert excludes(both, EVENT) and not excludes(one, EVENT)


def test_nested_entries_match_within_one_object() -> None:
    event = {
        "threat": {
            "enrichments": [
                {"indicator": {"type": "file"}, "matched": {"field": "a"}},
                {"indicator": {"type": "url"}, "matched": {"field": "b"}},
            ]
        }
    }
    nested = {
        "field": "threat.enrichments",
        "type": "nested",
        "entries": [m("indicator.type", "file"), m("matched.field", "a")],
    }
    crossed = {
        "field": "threat.enrichments",
        "type": "nested",
        "entries": [m("indicator.type", "file"), m("matched.field", "b")],
    }
    assert excludes(nested, event) and not excludes(crossed, event)


def test_os_types_require_the_host_os() -> None:
    windows = item(m("host.name", "WS-1"), os_types=["windows"])
    linux = item(m("host.name", "WS-1"), os_types=["linux", "macos"])
    assert excludes(windows, EVENT) and not excludes(linux, EVENT)
    assert excludes(windows, {**EVENT, "host": {"name": "WS-1", "os": {"name": {"caseless": "windows"}}}})


def test_expired_items_are_not_applied() -> None:
    it = item(m("host.name", "WS-1"), expire_time="2026-11-20T00:00:00.000Z")
    assert excludes(it, EVENT, now=NOW - 1)
    assert not excludes(it, EVENT, now=NOW)


def test_the_first_matching_item_is_reported() -> None:
    lists = parse_exceptions(
        ndjson(container(), item(m("host.name", "x"), item_id="a"), item(m("host.name", "WS-1"), item_id="b"))
    )
    assert lists.excluded_by(EVENT, NOW) == ("l1", "b")


# ------------------------------------------------------------------------------------------- the file


def test_the_handwritten_kibana_export_loads() -> None:
    lists = load_exceptions([FIXTURE])
    assert lists.lists == ("netsupport-tuning",)
    assert [i.item_id for i in lists.items] == ["approved-install", "helpdesk-jump-hosts", "vendor-trial"]
    assert lists.items[0].os_types == ("windows",)
    assert lists.items[2].expires == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        (
            (
                container(),
                item(
                    {
                        "field": "host.name",
                        "operator": "included",
                        "type": "list",
                        "list": {"id": "jump-hosts.txt", "type": "keyword"},
                    }
                ),
            ),
            "value list 'jump-hosts.txt'",
        ),
        ((container(kind="endpoint"),), "endpoint lists are applied by Elastic Defend"),
        ((container(), item(m("host.name", "a", "is"))), "operator must be"),
        ((container(), item(m("host.name", "a", kind="regex"))), "unknown type 'regex'"),
        ((container(), item()), "'entries' must be a non-empty list"),
        (
            (container(), item(m("host.name", "a")), {**DETAILS, "exported_exception_list_item_count": 2}),
            "exported_exception_list_item_count 2, the file holds 1",
        ),
        ((container(), item(m("host.name", "a")), item(m("host.name", "b"))), "appears twice"),
        (({"rule_id": "abc", "name": "a rule"},), "a rule, not an exception list"),
        ((container(), item(m("host.name", "a"), expire_time="tomorrow")), "not an ISO 8601 date"),
    ],
)
def test_what_kibana_could_not_apply_is_refused_with_the_line(docs: tuple[dict[str, Any], ...], message: str) -> None:
    with pytest.raises(ExceptionsError, match=r"x\.ndjson:") as err:
        parse_exceptions(ndjson(*docs), "x.ndjson")
    assert message in str(err.value)


def test_broken_json_is_refused() -> None:
    with pytest.raises(ExceptionsError, match=r"x\.ndjson:2: not valid JSON"):
        parse_exceptions(ndjson(container()) + b'{"item_id": \n', "x.ndjson")


# ------------------------------------------------------------------------------------------- engine and scan


def endpoint(host: str, executable: str, user: str = "alice") -> bytes:
    from tests.test_engine import endpoint_record

    doc = orjson.loads(endpoint_record(executable))
    doc["host"]["name"] = host
    doc["user"]["name"] = user
    return orjson.dumps(doc)


APPROVED = endpoint("WS-7", "C:\\ProgramData\\NetSupport\\client32.exe")
JUMP = endpoint("HELPDESK-JUMP-01", "C:\\Users\\tech1\\NetSupport\\client32.exe")
JUMP_ADMIN = endpoint("HELPDESK-JUMP-01", "C:\\Users\\tech1\\NetSupport\\client32.exe", user="Administrator")
OTHER = endpoint("WS-9", "C:\\Users\\bob\\AppData\\Roaming\\nsm\\client32.exe")


def test_the_engine_drops_and_records_excluded_alerts() -> None:
    engine = Engine(load_rules(), exceptions=load_exceptions([FIXTURE]))
    out = engine.process(APPROVED)
    assert out.alerts == [] and out.excluded == [("netsupport-tuning", "approved-install")]
    assert len(engine.process(JUMP_ADMIN).alerts) == 1
    assert engine.process(JUMP).excluded == [("netsupport-tuning", "helpdesk-jump-hosts")]
    assert len(engine.process(OTHER).alerts) == 1
    engine.exceptions = None
    assert len(engine.process(APPROVED).alerts) == 1


def test_scan_applies_exceptions_and_counts_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.ndjson"
    data.write_bytes(b"\n".join([APPROVED, JUMP, JUMP, JUMP_ADMIN, OTHER]) + b"\n")
    summary = tmp_path / "summary.json"
    assert main(["scan", "--no-progress", "--exceptions", str(FIXTURE), "--summary-json", str(summary), str(data)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert "excluded by rule exceptions (not written): 3" in err
    assert "netsupport-tuning / helpdesk-jump-hosts: 2" in err
    assert "netsupport-tuning / approved-install: 1" in err
    doc = json.loads(summary.read_text())
    assert doc["alerts"] == 2 and doc["excluded"] == 3
    assert {"list_id": "netsupport-tuning", "item_id": "approved-install", "alerts": 1} in doc["excluded_by_item"]


def test_scan_honours_expire_time_at_run_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    exc = tmp_path / "expired.ndjson"
    exc.write_bytes(ndjson(container(), item(m("host.name", "WS-9"), expire_time=past), DETAILS))
    data = tmp_path / "in.ndjson"
    data.write_bytes(OTHER + b"\n")
    assert main(["scan", "--no-progress", "--exceptions", str(exc), str(data)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_scan_refuses_a_value_list_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exc = tmp_path / "lists.ndjson"
    entry = {"field": "host.name", "operator": "included", "type": "list", "list": {"id": "hosts", "type": "keyword"}}
    exc.write_bytes(ndjson(container(), item(entry)))
    data = tmp_path / "in.ndjson"
    data.write_bytes(OTHER + b"\n")
    assert main(["scan", "--no-progress", "--exceptions", str(exc), str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "value lists are not supported" in err
