"""The literal prefilter: needle derivation, safety on raw bytes, and a differential property test."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.rules.eql import compile_query
from detector.rules.prefilter import Prefilter, _make_test, hyperscan, needles_for
from tests.test_eql import REVISED, SEED

VERBATIM = frozenset(
    {
        "process.name",
        "process.executable",
        "process.parent.name",
        "process.parent.executable",
        "process.pe.original_file_name",
        "process.command_line",
    }
)


def pf(*queries: str) -> Prefilter:
    return Prefilter.for_queries([compile_query(q) for q in queries], VERBATIM)


# ---------------------------------------------------------------------------------------- derivation


def test_seed_rule_needle() -> None:
    p = pf(SEED)
    assert p.literals == (b"client32",)
    assert p.describe() == 'records must contain one of: "client32" (case-insensitive)'


def test_revised_rule_needle() -> None:
    assert pf(REVISED).literals == (b"client32",)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # OR with a branch lacking a constraint: none
        ('process.name : "client32.exe" or host.os.type == "windows"', None),
        ('process.name : "client32.exe" or process.name != "x"', None),
        # non-verbatim fields never contribute
        ('host.os.type == "windows"', None),
        ('event.type == "start" and host.os.type == "windows"', None),
        ('event.type == "start" and process.name : "cmd.exe"', {"cmd"}),
        # NOT and != give nothing
        ('not process.name : "client32.exe"', None),
        ('process.name != "client32.exe"', None),
        # backslash patterns split on wildcards and punctuation; longest run wins
        ('process.executable : "?:\\\\Users\\\\*.exe"', {"users"}),
        ('process.executable : "\\\\Device\\\\HarddiskVolume?\\\\ProgramData\\\\*.exe"', {"harddiskvolume"}),
        ('process.executable : "C:\\\\Tools\\\\*\\\\x.exe"', {"tools"}),
        # == and in take the value as is (no wildcards), still split on punctuation
        ('process.name == "a*client32"', {"client32"}),
        ('process.name in ("psexec.exe", "paexec.exe")', {"psexec", "paexec"}),
        ('process.name in~ ("PsExec.exe")', {"psexec"}),
        ('process.name like "Rundll32*"', {"rundll32"}),
        # a value whose best run is shorter than 3 characters: no constraint
        ('process.name : "a*b"', None),
        ('process.name in ("cmd.exe", "sh")', None),
        ("process.name == 123", None),
        # AND picks the most selective conjunct
        ('process.name : "cmd.exe" and process.executable : "*\\\\powershell\\\\*"', {"powershell"}),
        ('process.name : ("aaaa", "bbbbb") and process.executable : "*ccccc*"', {"ccccc"}),
        # OR unions, and drops needles containing another needle
        ('process.name : "client32.exe" or process.parent.name : "client32"', {"client32"}),
        ('process.name : "abcd" or process.name : "xabcdx" or process.name : "zzz"', {"abcd", "zzz"}),
        # non-ASCII splits runs
        ('process.name : "caf\u00e9_long.exe"', {"_long"}),
        ("false", set()),
        ("true", None),
    ],
)
def test_needles(condition: str, expected: set[str] | None) -> None:
    got = needles_for(compile_query(f"any where {condition}").ast, VERBATIM)
    assert got == (None if expected is None else frozenset(expected))


def test_union_over_queries() -> None:
    p = pf('any where process.name : "psexec.exe"', 'any where process.name : "client32.exe"')
    assert p.literals == (b"client32", b"psexec")
    assert pf(SEED, "any where true").literals is None
    no_rules = Prefilter.for_queries([], VERBATIM)
    assert no_rules.literals == () and not no_rules(b'{"a": 1}')


def test_no_constraint_passes_everything() -> None:
    p = pf('any where host.os.type == "windows"')
    assert p.literals is None
    assert p(b"") and p(b"anything")
    assert "no constraint" in p.describe()


# --------------------------------------------------------------------------------------------- safety


BENIGN = orjson.dumps(
    {
        "winlog": {
            "event_id": 1,
            "event_data": {
                "Image": "C:\\Windows\\System32\\svchost.exe",
                "ParentImage": "C:\\Windows\\System32\\services.exe",
                "CommandLine": "C:\\Windows\\system32\\svchost.exe -k netsvcs -p",
                "Hashes": "SHA256=" + "A" * 64,
            },
        },
        "message": "Process Create: Image: C:\\Windows\\System32\\svchost.exe " * 20,
    }
)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"Image":"C:\\\\Users\\\\x\\\\client32.exe"}',
        b'{"Image":"C:\\\\Users\\\\x\\\\CLIENT32.EXE"}',
        b'{"Image":"C:\\\\Users\\\\x\\\\ClIeNt32.exe"}',
        b'{"Image":"C:\\\\Users\\\\x\\\\\\u0063lient32.exe"}',  # c escaped
        b'{"Image":"C:\\\\Users\\\\x\\\\cli\\u0045nt32.exe"}',  # E escaped
        b'{"x":"\\u002f"}',  # any printable-ASCII escape passes
    ],
)
def test_may_match(raw: bytes) -> None:
    assert pf(SEED)(raw) is True


@pytest.mark.parametrize(
    "raw",
    [
        BENIGN,
        b'{"Image":"C:\\\\Users\\\\x\\\\client31.exe"}',
        b'{"Image":"C:\\\\Users\\\\x\\\\cl\\u00e9ent32.exe"}',  # non-ASCII escape cannot spell an ASCII letter
        b'{"Image":"C:\\\\Users\\\\x\\\\c\\u0130ient32.exe"}',
        b"",
    ],
)
def test_cannot_match(raw: bytes) -> None:
    assert pf(SEED)(raw) is False


def test_benign_record_size() -> None:
    assert 1400 <= len(BENIGN) <= 2500


def test_many_needles() -> None:
    p = pf('any where process.name in ("psexec.exe", "client32.exe")')
    assert p(b'{"n":"PSEXEC.exe"}') and p(b'{"n":"Client32"}')
    assert not p(b'{"n":"cmd.exe"}')
    assert p(b'{"n":"\\u0070sexec"}')


# -------------------------------------------------------------------------------------- differential

NAMES = st.sampled_from(
    [
        "client32.exe",
        "CLIENT32.EXE",
        "Client32.exe",
        "cLiEnT32.ExE",
        "client32",
        "client32.exe.bak",
        "svchost.exe",
        "update.exe",
        "cmd.exe",
        "c\u0130ient32.exe",
        "\u212alient32.exe",
        "cl\u00efent32.exe",
        "CL\u00cfENT32.EXE",
        "caf\u00e9.exe",
        "CAF\u00c9.EXE",
        "Caf\u00e9.EXE",
        "stra\u00dfe.exe",
        "STRASSE.exe",
        "\u0130nstall.exe",
        "install.exe",
        "",
    ]
)
ROOTS = st.sampled_from(
    [
        "C:\\Users\\bob\\",
        "c:\\users\\",
        "D:\\ProgramData\\nsm\\",
        "C:\\PROGRAMDATA\\",
        "C:\\Program Files\\NetSupport\\",
        "C:\\Windows\\System32\\",
        "\\Device\\HarddiskVolume3\\Users\\x\\",
        "\\Device\\HarddiskVolume12\\ProgramData\\",
        "/home/user/",
        "C:\\Users\\Ren\u00e9e\\",
        "C:\\USERS\\REN\u00c9E\\",
        "C:\\Users\\ren\u00c9e\\Caf\u00e9\\",
    ]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(NAMES)
    exe = draw(ROOTS) + draw(st.sampled_from([name, "client32.exe", "x.exe", "Client32.EXE"]))
    event: dict[str, Any] = {
        "event": {
            "category": draw(st.sampled_from([["process"], ["process"], "process", ["file"]])),
            "type": draw(st.sampled_from([["start"], ["start"], "start", ["end"]])),
        },
        "host": {"os": {"type": draw(st.sampled_from(["windows", "windows", "windows", "linux", "Windows"]))}},
        "process": {"name": name, "executable": exe},
    }
    if draw(st.booleans()):
        event["process"]["pe"] = {"original_file_name": draw(NAMES)}
    if draw(st.booleans()):
        pname = draw(NAMES)
        event["process"]["parent"] = {"name": pname, "executable": draw(ROOTS) + pname}
    if draw(st.booleans()):
        event["message"] = draw(st.text(max_size=30))
    return event


def dumps_escaping_letters(value: Any) -> str:
    if isinstance(value, str):
        return (
            '"'
            + "".join(f"\\u{ord(c):04x}" if c.isascii() and c.isalpha() else json.dumps(c)[1:-1] for c in value)
            + '"'
        )
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{dumps_escaping_letters(k)}:{dumps_escaping_letters(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(dumps_escaping_letters(v) for v in value) + "]"
    return json.dumps(value)


# Non-ASCII letters in patterns: Elasticsearch folds only ASCII letters, so the needles (ASCII runs) must
# still be present, in some ASCII case, in every record these match, whichever way it is encoded.
NON_ASCII_QUERIES = [
    'process where process.name : ("cl\u00efent32*", "caf\u00e9.exe", "stra\u00dfe.*") and event.type == "start"',
    'any where process.executable : "*\\\\ren\u00e9e\\\\*.exe" '
    'or process.name in~ ("CAF\u00c9.EXE", "\u0130nstall.exe")',
    'any where process.name like~ "*\u00e9*.EXE" or process.parent.executable : "?:\\\\users\\\\*\\\\caf\u00e9\\\\*"',
]
QUERIES = [SEED, REVISED, *NON_ASCII_QUERIES]


def encode(event: dict[str, Any], encoding: str) -> bytes:
    if encoding == "orjson":
        return orjson.dumps(event)
    if encoding == "ascii":
        return json.dumps(event, ensure_ascii=True).encode()
    # An encoder that escapes every ASCII letter: the \u check must let these through.
    raw = dumps_escaping_letters(event).encode()
    assert json.loads(raw) == event
    return raw


def test_non_ascii_queries_have_ascii_needles() -> None:
    assert pf(NON_ASCII_QUERIES[0]).literals == (b"caf", b"ent32", b"stra")
    assert pf(NON_ASCII_QUERIES[1]).literals == (b"caf", b"nstall", b"ren")
    assert pf(NON_ASCII_QUERIES[2]).literals == (b"exe", b"users")


@pytest.mark.parametrize("encoding", ["orjson", "ascii", "ascii-all"])
@pytest.mark.parametrize(
    ("query", "fields"),
    [
        (NON_ASCII_QUERIES[0], {"name": "CL\u00efENT32.EXE"}),
        (NON_ASCII_QUERIES[0], {"name": "STRA\u00dfE.dll"}),
        (NON_ASCII_QUERIES[1], {"name": "x", "executable": "C:\\USERS\\REN\u00e9E\\x.EXE"}),
        (NON_ASCII_QUERIES[1], {"name": "caf\u00c9.exe"}),
        (NON_ASCII_QUERIES[1], {"name": "\u0130NSTALL.EXE"}),
        (NON_ASCII_QUERIES[2], {"name": "R\u00e9sum\u00e9.exe"}),
        (NON_ASCII_QUERIES[2], {"name": "x", "parent": {"executable": "D:\\USERS\\bob\\CAF\u00e9\\y"}}),
    ],
)
def test_non_ascii_pattern_matches_pass_the_prefilter(query: str, fields: dict[str, Any], encoding: str) -> None:
    # Known matches, so the property test below is not only ever checking non-matches.
    event = {"event": {"category": ["process"], "type": ["start"]}, "process": fields}
    compiled = compile_query(query)
    assert compiled.matches(event)
    assert Prefilter.for_queries([compiled], VERBATIM)(encode(event, encoding))


@pytest.mark.parametrize(
    ("query", "value"),
    [
        (NON_ASCII_QUERIES[0], "CL\u00cfENT32.EXE"),  # \u00ef does not fold to \u00cf
        (NON_ASCII_QUERIES[1], "caf\u00e9.exe"),  # in~ on \u00c9 wants \u00c9
        (NON_ASCII_QUERIES[1], "install.exe"),  # \u0130 is not I
    ],
)
def test_non_ascii_letters_do_not_fold(query: str, value: str) -> None:
    event = {"event": {"category": ["process"], "type": ["start"]}, "process": {"name": value}}
    assert not compile_query(query).matches(event)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.sampled_from(["orjson", "ascii", "ascii-all"]), st.sampled_from(QUERIES))
def test_prefilter_never_rejects_a_match(event: dict[str, Any], encoding: str, query: str) -> None:
    compiled = compile_query(query)
    prefilter = Prefilter.for_queries([compiled], VERBATIM)
    raw = encode(event, encoding)
    if compiled.matches(orjson.loads(raw)):
        assert prefilter(raw)


@settings(max_examples=300, deadline=None)
@given(events())
def test_prefilter_rejects_records_without_the_needle(event: dict[str, Any]) -> None:
    raw = orjson.dumps(event)
    escaped = re.search(rb"\\u00[2-7][0-9a-fA-F]", raw) is not None
    assert pf(SEED)(raw) == (b"client32" in raw.lower() or escaped)


# The anchored search (caseless run first, letters checked around it) must agree exactly with the
# straightforward `needle in raw.lower()` for every needle shape.
@given(
    needle=st.sampled_from(["client32", "ab12cd", "12ab", "abc", "x_y", "a1b2c3", "007"]),
    prefix=st.text(alphabet='aAbBcC12_3\\" xyz', max_size=30),
    middle=st.text(alphabet="aAbBcClLiIeEnNtT12_3x", max_size=12),
    suffix=st.text(alphabet="aAbBcC12_3 dD", max_size=30),
)
def test_anchored_search_agrees_with_lowercase_search(needle: str, prefix: str, middle: str, suffix: str) -> None:
    from detector.rules.prefilter import _make_test

    test, _ = _make_test((needle.encode(),))
    for raw in ((prefix + middle + suffix).encode(), (prefix + needle.upper() + suffix).encode()):
        assert test(raw) == (needle.encode() in raw.lower())


# Over a buffer of lines (detector scan's fast path): a line passes exactly when a search finds a match inside
# it; no match spans a newline, and letters of the line before or the line after never complete a needle.
_LINE_ALPHABET = st.sampled_from(
    [b"client", b"CLIENT", b"ClIeNt", b"32", b"3", b"2", b"\\u0063", b"\\u00", b"\\u002", b"\\u0045", b"\\u007f"]
)
_LINE_ALPHABET |= st.sampled_from([b"\\u001f", b"\\\\", b"x", b"{", b"}", b" ", b"\r", b'"', b"nt32", b"_"])
_SEVERAL = 'any where process.name : ("ps_exec.exe", "client32.exe")'


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.lists(_LINE_ALPHABET, max_size=12).map(b"".join), min_size=1, max_size=12),
    queries=st.sampled_from([(SEED,), (_SEVERAL,), ("any where false",)]),
)
def test_buffer_hits_agree_with_the_per_record_test(lines: list[bytes], queries: tuple[str, ...]) -> None:
    p = pf(*queries)
    assert p.hits is not None
    buf = b"\n".join(lines) + b"\n"
    for start in (0, len(lines[0]) + 1 if len(lines) > 1 else 0):  # from the first line, and from the second
        hits = p.hits(buf, start, len(buf))
        assert hits == sorted(hits) and all(start <= h < len(buf) and buf[h] != 0x0A for h in hits)
        first = buf.count(b"\n", 0, start)
        hit_lines = {buf.count(b"\n", 0, h) for h in hits}
        assert hit_lines == {i for i, line in enumerate(lines) if i >= first and p(line)}


def test_buffer_hits_exist_unless_there_is_no_constraint() -> None:
    assert pf('any where host.os.type == "windows"').hits is None
    assert pf("any where false").hits is not None and pf("any where false").hits(b"client32\n", 0, 9) == []
    # Without Hyperscan, a needle without any caseless character has no anchored re search: no buffer hits.
    assert _make_test((b"cmd",), fast=False)[1] is None
    if hyperscan is not None:
        assert pf('any where process.name : "cmd.exe"').hits is not None


@pytest.mark.skipif(hyperscan is None, reason="python-hyperscan has no wheel for this platform; re decides alone")
@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.lists(_LINE_ALPHABET | st.binary(max_size=3), max_size=12).map(b"".join), min_size=1, max_size=8),
    needles=st.sampled_from([(b"client32",), (b"client32", b"ps_exec"), (b"ps_exec",), (b"32_a", b"netsupport")]),
)
def test_hyperscan_and_re_decide_the_same(lines: list[bytes], needles: tuple[bytes, ...]) -> None:
    # The fast matcher is only a faster way to the same verdicts: per record, and per line over a buffer.
    fast_test, fast_hits = _make_test(needles)
    re_test, re_hits = _make_test(needles, fast=False)
    for line in lines:
        assert fast_test(line) == re_test(line), line
    buf = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    assert fast_hits is not None
    if re_hits is None:  # re has no buffer search for a needle without a caseless character ("netsupport")
        return
    fast_lines = {buf.count(b"\n", 0, h) for h in fast_hits(buf, 0, len(buf))}
    assert fast_lines == {buf.count(b"\n", 0, h) for h in re_hits(buf, 0, len(buf))}
