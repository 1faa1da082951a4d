"""The detection core: bytes in, alerts or a rejection reason out, never an exception."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.engine import REASONS, Engine, parse_record
from detector.rules.model import load_rules

RULES = load_rules()


def endpoint_record(executable: str, *, os_type: str = "windows", etype: str = "start", pid: Any = 4242) -> bytes:
    """An Elastic Defend process event, as the endpoint writes it."""
    return orjson.dumps(
        {
            "@timestamp": "2026-11-20T10:00:00.000Z",
            "agent": {"type": "endpoint", "version": "8.15.0"},
            "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
            "event": {
                "action": "start",
                "category": ["process"],
                "dataset": "endpoint.events.process",
                "kind": "event",
                "module": "endpoint",
                "type": [etype],
                "id": "NWQ1Y2Q0",
            },
            "host": {"name": "WS-042", "id": "h-42", "os": {"type": os_type, "family": os_type, "name": "Windows 11"}},
            "user": {"name": "alice", "domain": "CORP"},
            "process": {
                "name": executable.rsplit("\\", 1)[-1],
                "executable": executable,
                "pid": pid,
                "entity_id": "e-1",
                "parent": {"name": "explorer.exe", "executable": "C:\\Windows\\explorer.exe", "pid": 100},
            },
        }
    )


POSITIVE = endpoint_record("C:\\Users\\alice\\AppData\\Roaming\\nsm\\client32.exe")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(RULES)


def test_positive_gives_one_alert(engine: Engine) -> None:
    out = engine.process(POSITIVE)
    assert out.rejection is None and not out.prefiltered
    assert out.source == "endpoint"
    assert len(out.alerts) == 1
    assert out.alerts[0]["process"]["name"] == "client32.exe"


@pytest.mark.parametrize(
    "raw",
    [
        endpoint_record("C:\\Program Files (x86)\\NetSupport\\NetSupport Manager\\client32.exe"),
        endpoint_record("C:\\Users\\alice\\client32.exe", os_type="linux"),
        endpoint_record("C:\\Users\\alice\\client32.exe", etype="end"),
    ],
    ids=["program-files", "not-windows", "not-start"],
)
def test_negatives_parse_but_do_not_alert(engine: Engine, raw: bytes) -> None:
    out = engine.process(raw)
    assert out.rejection is None and not out.prefiltered and out.alerts == []


def test_benign_record_is_prefiltered_without_parsing(engine: Engine) -> None:
    out = engine.process(endpoint_record("C:\\Windows\\System32\\svchost.exe"))
    assert out.prefiltered and out.alerts == [] and out.rejection is None


def test_same_bytes_same_alert_id(engine: Engine) -> None:
    a = engine.process(POSITIVE).alerts[0]
    b = engine.process(POSITIVE + b"\n").alerts[0]
    assert a["kibana.alert.uuid"] == b["kibana.alert.uuid"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"process": {"name": "client32.exe"', "not_json"),
        (b"hello client32", "not_json"),
        (b"garbage", "not_json"),  # not framed like an object: parsed even though it lacks the needle
        (b"[1, 2, 3]", "not_object"),
        (b'"client32.exe"', "not_object"),
        (b"[" * 2000 + b"]" * 2000, "too_deep"),
        (b'{"foo": "bar", "note": "client32.exe"}', "unknown_source"),
        (b'{"category": "AdvancedHunting-DeviceProcessEvents", "properties": "client32.exe"}', "bad_field_type"),
        (b'{"process": "\xff\xfe client32"}', "not_utf8"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(engine: Engine, raw: bytes, reason: str) -> None:
    out = engine.process(raw)
    assert out.rejection is not None, out
    assert out.rejection.reason == reason
    assert out.rejection.reason in REASONS and out.rejection.detail
    assert out.alerts == []


def test_huge_record_is_rejected_before_parsing() -> None:
    small = Engine(RULES, max_record_bytes=1000)
    out = small.process(POSITIVE + b" " * 2000)
    assert out.rejection is not None and out.rejection.reason == "too_large"


def test_pinned_source_must_exist(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown source"):
        engine.process(POSITIVE, "nosuch")


def test_without_prefilter_every_record_is_parsed() -> None:
    full = Engine(RULES, use_prefilter=False)
    out = full.process(endpoint_record("C:\\Windows\\System32\\svchost.exe"))
    assert not out.prefiltered and out.source == "endpoint" and out.alerts == []


# -- hostile input: what Elasticsearch indexes and alerts on, we alert on -------------------------------------


@pytest.mark.parametrize(
    "pid",
    [b"1.2345678901234568e29", b"9223372036854775808", b"-9223372036854775809", b"18446744073709551615", b"9" * 30],
)
def test_a_number_beyond_64_bits_is_dropped_not_fatal(engine: Engine, pid: bytes) -> None:
    # Once a poison pill: the alert could not be serialised, and the stream stopped on it forever.
    raw = endpoint_record("C:\\Users\\alice\\client32.exe").replace(b'"pid":4242', b'"pid":' + pid)
    assert pid in raw
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1
    assert "pid" not in out.alerts[0]["process"]
    assert [f for f, _ in out.ignored] == ["process.pid"]
    orjson.dumps(out.alerts[0])


def test_huge_integer_literal_in_the_record(engine: Engine) -> None:
    raw = POSITIVE[:-1] + b', "sequence": ' + b"9" * 5000 + b"}"
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1


def test_a_utf8_byte_order_mark_is_skipped_as_jackson_does(engine: Engine) -> None:
    out = engine.process(b"\xef\xbb\xbf" + POSITIVE)
    assert out.rejection is None and len(out.alerts) == 1
    plain = engine.process(POSITIVE).alerts[0]
    assert out.alerts[0]["kibana.alert.uuid"] != plain["kibana.alert.uuid"]  # different bytes, different record


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\udc00\\ud800"])
def test_unpaired_surrogate_escapes_become_replacement_characters(engine: Engine, escape: bytes) -> None:
    # An attacker who controls a logged string cannot turn a true positive into a dead letter.
    raw = POSITIVE.replace(b'"entity_id":"e-1"', b'"entity_id":"e-1","command_line":"client32.exe ' + escape + b'"')
    assert raw != POSITIVE
    out = engine.process(raw)
    assert out.rejection is None, out.rejection
    assert len(out.alerts) == 1
    command_line = out.alerts[0]["process"]["command_line"]
    assert "\ufffd" in command_line and not any(0xD800 <= ord(c) <= 0xDFFF for c in command_line)
    orjson.dumps(out.alerts[0])


def test_lenient_parse_keeps_json_rules(engine: Engine) -> None:
    # The fallback parser accepts lone surrogates, nothing else orjson refuses.
    for raw in (
        b'{"a": "client32 \\ud800", "b": NaN}',
        b'{"a": "client32 \\ud800", "b": Infinity}',
        b'{"a": "client32 \\ud800",}',
        b'{"a": "client32", "b": 1e400, "c": [}',
    ):
        out = engine.process(raw)
        assert out.rejection is not None and out.rejection.reason == "not_json", raw


def test_an_internal_error_is_a_rejection_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(RULES)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("detector.engine.build_alert", boom)
    out = engine.process(POSITIVE)
    assert out.rejection is not None and out.rejection.reason == "internal_error"
    assert "RuntimeError: bug" in out.rejection.detail and out.alerts == []


def test_rejection_details_are_bounded(engine: Engine) -> None:
    out = engine.process(b'{"client32' + b"k" * 100_000 + b'": 1}')
    assert out.rejection is not None and out.rejection.reason == "unknown_source"
    assert len(out.rejection.detail) <= 300


def test_an_escaped_backslash_is_not_a_surrogate_escape(engine: Engine) -> None:
    # "\\\\ud800" in JSON is a backslash followed by the letters ud800: kept as text, never rewritten.
    raw = POSITIVE.replace(b'"entity_id":"e-1"', b'"entity_id":"e-1","command_line":"client32 \\\\ud800 \\ud800"')
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1
    assert out.alerts[0]["process"]["command_line"] == "client32 \\ud800 \ufffd"


def test_a_lone_surrogate_and_a_huge_number_together(engine: Engine) -> None:
    raw = POSITIVE.replace(
        b'"entity_id":"e-1"', b'"entity_id":"e-1","command_line":"client32 \\udc00","n":1' + b"0" * 400
    )
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1
    assert out.alerts[0]["process"]["command_line"] == "client32 \ufffd"


@pytest.mark.parametrize("depth", [50, 500, 990])
def test_deep_nesting_below_the_parser_limit_is_evaluated(engine: Engine, depth: int) -> None:
    # Deep values the rule reads (arrays of arrays) or that the normaliser reports (objects) must not
    # exhaust Python's stack: the record is evaluated like any other.
    deep_list = b'"process":{"name":' + b"[" * depth + b'"client32.exe"' + b"]" * depth + b","
    raw = POSITIVE.replace(b'"process":{"name":"client32.exe",', deep_list)
    assert raw != POSITIVE
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1
    deep_object = b'"user":' + b'{"a":' * depth + b"1" + b"}" * depth
    raw = POSITIVE.replace(b'"user":{"name":"alice","domain":"CORP"}', deep_object)
    assert raw != POSITIVE
    out = engine.process(raw)
    assert out.rejection is None and len(out.alerts) == 1


_PIECES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\\", '"', "a", "u", "d800", "é"])


@settings(max_examples=300)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_lone_surrogates_are_replaced_exactly_where_jackson_would(text: str) -> None:
    # json.dumps writes every non-ASCII character, lone surrogates included, as \\u escapes: the record
    # orjson refuses and Jackson reads. Lucene indexes each lone surrogate as U+FFFD; pairs stay characters.
    raw = json.dumps({"cmd": text}).encode()
    value, rejection = parse_record(raw)
    assert rejection is None
    expected = "".join(
        c if not 0xD800 <= ord(c) <= 0xDFFF else "\ufffd"
        for c in text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    )
    assert value == {"cmd": expected}


def test_a_recognised_record_without_an_event_says_why(engine: Engine) -> None:
    logon = orjson.dumps({"winlog": {"channel": "Security", "event_id": "4624", "event_data": {"x": "client32"}}})
    out = engine.process(logon)
    assert out.rejection is None and out.source == "system_security" and out.no_event == "not_covered"
    unknown = orjson.dumps({"winlog": {"channel": "Security", "event_data": {"x": "client32"}}})
    assert engine.process(unknown).no_event == "shape_not_understood"
    assert engine.process(POSITIVE).no_event is None


@pytest.mark.parametrize(("depth", "accepted"), [(1023, True), (1024, True), (1025, False), (5000, False)])
def test_the_fallback_parser_has_orjsons_nesting_limit(depth: int, accepted: bool) -> None:
    # A number beyond a double sends the record to Python's parser; it must refuse exactly what orjson
    # refuses (deeper than 1024 levels), whatever the caller's own stack depth.
    raw = b'{"n":1e400,"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    _value, rejection = parse_record(raw)
    assert (rejection is None) is accepted, rejection
    if not accepted:
        assert rejection is not None and rejection.reason == "too_deep"
    plain = b'{"n":1,"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    assert (parse_record(plain)[1] is None) is accepted  # orjson's own verdict, for comparison


_PIECES = st.sampled_from(
    [b"{", b"}", b'"a":', b"client32", b"CLIENT32.exe", b"c\\u006cient32", b"\\u0041", b"32", b" ", b"\r", b"\n", b"x"]
)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(st.lists(_PIECES | st.binary(max_size=4), max_size=10).map(b"".join), max_size=20))
def test_to_parse_picks_exactly_the_records_process_would_not_skip(records: list[bytes]) -> None:
    # The worker decides a whole batch in one prefilter pass (Engine.to_parse); it must agree with process().
    engine = Engine(RULES, max_record_bytes=64)
    parse = engine.to_parse(records)
    assert parse is not None
    assert parse == {i for i, raw in enumerate(records) if not engine.process(raw).prefiltered}


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([b'{"a":1}', b'{"b":2}\n'], set()),  # a trailing newline: the endswith check, not the per-record loop
        ([b'{"a":1}', b""], {1}),  # an empty record: no first byte to look at
        ([b'{"a":1}', b'x{"a":1}'], {1}),
        ([b'{"a":1}', b'{"a":1}x'], {1}),
        ([b'{"a":1}', b' {"a":1} '], set()),  # whitespace around the object: framed, as process() sees it
        ([b"{", b"}"], {0, 1}),
    ],
)
def test_to_parse_framing_of_a_batch(records: list[bytes], expected: set[int]) -> None:
    engine = Engine(RULES)
    assert engine.to_parse(records) == expected
    assert expected == {i for i, raw in enumerate(records) if not engine.process(raw).prefiltered}


def test_to_parse_is_none_without_the_prefilter() -> None:
    assert Engine(RULES, use_prefilter=False).to_parse([b"{}"]) is None
