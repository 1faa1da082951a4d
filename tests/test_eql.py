"""The EQL compiler: parsing, Elasticsearch's evaluation semantics, and refusals."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from detector.rules.eql import (
    And,
    Compare,
    CompiledQuery,
    EqlError,
    Not,
    Or,
    compile_query,
    get_values,
    wildcard_match,
)

RULE_FILE = Path(__file__).parents[1] / "detector" / "rules" / "builtin" / "netsupport_manager_unusual_path.toml"

# The seed rule's query as the TOML file spells it (`\\` in the EQL text is one backslash).
SEED = (
    'process where host.os.type == "windows" and event.type == "start" and (process.name : "client32.exe" '
    'or ?process.pe.original_file_name == "client32.exe" or process.parent.name : "client32.exe") and '
    '( process.executable : ("?:\\\\Users\\\\*.exe", "?:\\\\ProgramData\\\\*.exe", '
    '"\\\\Device\\\\HarddiskVolume?\\\\Users\\\\*.exe", "\\\\Device\\\\HarddiskVolume?\\\\ProgramData\\\\*.exe") '
    'or ?process.parent.executable : ("?:\\\\Users\\\\*\\\\client32.exe", "?:\\\\ProgramData\\\\*\\\\client32.exe") )'
)
# A later revision: any volume number.
REVISED = SEED.replace("HarddiskVolume?", "HarddiskVolume*")


def proc(**fields: Any) -> dict[str, Any]:
    """A process-start event on a Windows host; keyword arguments are dotted ECS paths (`__` = `.`)."""
    event: dict[str, Any] = {
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"os": {"type": "windows"}},
    }
    for key, value in fields.items():
        parts = key.split("__")
        node = event
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return event


def q(condition: str, category: str = "any") -> CompiledQuery:
    return compile_query(f"{category} where {condition}")


# (query condition, event, expected)
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # `:` is case-insensitive
    ("colon-ci-lower", 'process.name : "client32.exe"', {"process": {"name": "CLIENT32.EXE"}}, True),
    ("colon-ci-mixed", 'process.name : "CLIENT32.exe"', {"process": {"name": "Client32.Exe"}}, True),
    ("colon-literal-mismatch", 'process.name : "client32.exe"', {"process": {"name": "client33.exe"}}, False),
    ("colon-whole-value", 'process.name : "client32"', {"process": {"name": "client32.exe"}}, False),
    # `*` spans backslashes, matches zero characters
    ("star-spans-backslash", 'f : "?:\\\\Users\\\\*.exe"', {"f": "C:\\Users\\bob\\AppData\\x.exe"}, True),
    ("star-zero", 'f : "a*b"', {"f": "ab"}, True),
    ("star-only", 'f : "*"', {"f": ""}, True),
    # `?` is exactly one character
    ("qmark-one", 'f : "a?c"', {"f": "abc"}, True),
    ("qmark-not-zero", 'f : "a?c"', {"f": "ac"}, False),
    ("qmark-not-two", 'f : "a?c"', {"f": "abbc"}, False),
    ("qmark-backslash", 'f : "a?c"', {"f": "a\\c"}, True),
    ("qmark-non-ascii", 'f : "a?c"', {"f": "aßc"}, True),
    # `==` is case-sensitive, no wildcards
    ("eq-exact", 'f == "Client32.exe"', {"f": "Client32.exe"}, True),
    ("eq-case", 'f == "client32.exe"', {"f": "Client32.exe"}, False),
    ("eq-no-wildcard", 'f == "c*"', {"f": "client32.exe"}, False),
    ("eq-star-literal", 'f == "c*"', {"f": "c*"}, True),
    # `!=`
    ("ne-differs", 'f != "a"', {"f": "b"}, True),
    ("ne-equal", 'f != "a"', {"f": "a"}, False),
    ("ne-missing", 'f != "a"', {}, False),
    ("ne-null", 'f != "a"', {"f": None}, False),
    ("ne-array-contains", 'f != "a"', {"f": ["a", "b"]}, False),
    ("ne-array-without", 'f != "a"', {"f": ["b", "c"]}, True),
    ("ne-empty-array", 'f != "a"', {"f": []}, False),
    ("not-eq-missing", 'not f == "a"', {}, True),  # must_not: a missing field satisfies `not`
    ("ne-null-literal", "f != null", {"f": "x"}, True),
    ("ne-null-literal-missing", "f != null", {}, False),
    ("eq-null-literal-missing", "f == null", {}, True),
    ("eq-null-literal-present", "f == null", {"f": "x"}, False),
    # optional field
    ("optional-missing", '?a.b == "x"', {}, False),
    ("optional-missing-or", '?a.b == "x" or c == "y"', {"c": "y"}, True),
    ("optional-present", '?a.b == "x"', {"a": {"b": "x"}}, True),
    ("nonoptional-missing", 'a.b == "x"', {"a": {}}, False),
    ("optional-missing-colon", '?a.b : "*"', {}, False),
    # arrays: any element
    ("array-any", 'f : "b*"', {"f": ["a", "bc"]}, True),
    ("array-none", 'f : "b*"', {"f": ["a", "c"]}, False),
    ("array-of-objects", 'a.b == "x"', {"a": [{"b": "y"}, {"b": "x"}]}, True),
    ("array-nested", 'f == "x"', {"f": [["y"], ["x"]]}, True),
    ("array-with-null", 'f == "x"', {"f": [None, "x"]}, True),
    # literal dotted keys
    ("dotted-key-root", 'process.name == "x"', {"process.name": "x"}, True),
    ("dotted-key-inner", 'process.parent.name == "x"', {"process": {"parent.name": "x"}}, True),
    ("dotted-and-nested", 'a.b == "x"', {"a": {"b": "y"}, "a.b": "x"}, True),
    # escapes
    ("escape-emoji", 'f == "\\u{1F600}"', {"f": "\U0001f600"}, True),
    ("escape-short-u", 'f == "\\u{41}"', {"f": "A"}, True),
    ("escape-quote", 'f == "say \\"hi\\""', {"f": 'say "hi"'}, True),
    ("escape-tab-newline", 'f == "a\\tb\\nc\\r"', {"f": "a\tb\nc\r"}, True),
    # Elasticsearch's EqlBase.g4 STRING_ESCAPE is '\\' [btnfr"'\\]
    ("escape-single-quote", 'f : "*\\\'s*"', {"f": "Bob's folder"}, True),
    ("escape-backspace-formfeed", 'f == "a\\bb\\fc"', {"f": "a\bb\fc"}, True),
    ("escape-u-two-digits-nul", 'f == "a\\u{00}b"', {"f": "a\x00b"}, True),
    ("escape-u-eight-digits", 'f == "\\u{0001F600}"', {"f": "\U0001f600"}, True),
    ("escape-u-max", 'f == "\\u{10FFFF}"', {"f": "\U0010ffff"}, True),
    ("raw-string-two-trailing-quotes", 'f == """a' + '"' * 5, {"f": 'a""'}, True),
    ("raw-string", 'f : """C:\\Users\\*"""', {"f": "c:\\users\\x"}, True),
    # a backslash is ordinary after unescaping: it does not escape the wildcard
    ("backslash-before-star", 'f : "a\\\\*"', {"f": "a\\anything"}, True),
    ("backslash-before-star-literal", 'f : "a\\\\*"', {"f": "a*"}, False),
    ("backslash-before-qmark", 'f : "a\\\\?"', {"f": "a\\x"}, True),
    # in / in~ / like / like~
    ("in-hit", 'f in ("a", "b")', {"f": "b"}, True),
    ("in-case-sensitive", 'f in ("a", "b")', {"f": "B"}, False),
    ("in-no-wildcards", 'f in ("a*")', {"f": "ab"}, False),
    ("in-ci-hit", 'f in~ ("abc", "def")', {"f": "DeF"}, True),
    ("in-ci-no-wildcards", 'f in~ ("a*")', {"f": "ab"}, False),
    ("not-in", 'f not in ("a", "b")', {"f": "c"}, True),
    ("not-in-hit", 'f not in ("a", "b")', {"f": "a"}, False),
    ("like-case-sensitive", 'f like "A*"', {"f": "abc"}, False),
    ("like-hit", 'f like "a*"', {"f": "abc"}, True),
    ("like-ci", 'f like~ "A*"', {"f": "abc"}, True),
    ("colon-list", 'f : ("x*", "*y")', {"f": "ay"}, True),
    # not / parentheses / precedence (not > and > or)
    ("prec-and-over-or", 'a == "1" or b == "1" and c == "1"', {"a": "1"}, True),
    ("prec-paren", '(a == "1" or b == "1") and c == "1"', {"a": "1"}, False),
    ("prec-not-and", 'not a == "1" and b == "1"', {"a": "2", "b": "1"}, True),
    ("prec-not-binds-tight", 'not a == "1" and b == "1"', {"a": "1", "b": "2"}, False),
    ("not-paren", 'not (a == "1" and b == "1")', {"a": "1", "b": "2"}, True),
    ("double-not", 'not not a == "1"', {"a": "1"}, True),
    ("true-literal", "true", {}, True),
    ("false-literal", "false", {}, False),
    # Elasticsearch folds ASCII letters only (toCaseInsensitiveChar leaves code points >= 128 alone)
    ("turkish-i-pattern-i", 'f : "i"', {"f": "\u0130"}, False),
    ("turkish-i-pattern-i-dotless", 'f : "i"', {"f": "\u0131"}, False),
    ("turkish-i-pattern-I", 'f : "i"', {"f": "I"}, True),
    ("turkish-dotted-capital-pattern", 'f : "\u0130"', {"f": "i"}, False),
    ("turkish-dotted-capital-self", 'f : "\u0130"', {"f": "\u0130"}, True),
    ("turkish-dotless-pattern", 'f : "\u0131"', {"f": "I"}, False),
    ("kelvin-pattern-k", 'f : "k"', {"f": "\u212a"}, False),
    ("kelvin-pattern-kelvin", 'f : "\u212a"', {"f": "k"}, False),
    ("sharp-s-not-ss", 'f : "\u00df"', {"f": "SS"}, False),
    ("sharp-s-not-capital", 'f : "\u00df"', {"f": "\u1e9e"}, False),
    ("sharp-s-self", 'f : "\u00df"', {"f": "\u00df"}, True),
    ("greek-sigma", 'f : "\u03c3"', {"f": "\u03a3"}, False),
    ("e-acute-not-capital", 'f : "caf\u00e9"', {"f": "CAF\u00c9"}, False),
    ("e-acute-capital-not-small", 'f : "CAF\u00c9"', {"f": "caf\u00e9"}, False),
    ("e-acute-ascii-still-folds", 'f : "caf\u00e9"', {"f": "CAF\u00e9"}, True),
    ("e-acute-wildcard", 'f : "*\u00e9*.exe"', {"f": "x\u00c9y.EXE"}, False),
    ("e-acute-wildcard-hit", 'f : "*\u00e9*.exe"', {"f": "X\u00e9Y.EXE"}, True),
    ("in-ci-non-ascii", 'f in~ ("caf\u00e9")', {"f": "CAF\u00c9"}, False),
    ("in-ci-non-ascii-hit", 'f in~ ("caf\u00e9")', {"f": "Caf\u00e9"}, True),
    ("like-ci-non-ascii", 'f like~ "\u00e9*"', {"f": "\u00c9x"}, False),
    ("like-ci-non-ascii-hit", 'f like~ "\u00e9*"', {"f": "\u00e9X"}, True),
    # non-string values
    ("number-colon", 'f : "12*"', {"f": 1234}, True),
    ("number-eq-literal", "f == 123", {"f": 123}, True),
    ("number-eq-float", "f == 123", {"f": 123.0}, True),
    ("number-literal-string-value", "f == 123", {"f": "123"}, True),
    ("number-neg", "f == -5", {"f": -5}, True),
    ("string-literal-number-value", 'f == "5"', {"f": 5}, True),
    ("bool-literal", "f == true", {"f": True}, True),
    ("bool-literal-false", "f == true", {"f": False}, False),
    ("bool-colon", 'f : "TRUE"', {"f": True}, True),
    ("dict-never-matches", 'f : "*"', {"f": {"x": "y"}}, False),
    ("dict-eq", 'f == "x"', {"f": {"x": "y"}}, False),
    # whitespace, comments and line breaks between tokens
    ("comment", 'f == "x" // trailing\n', {"f": "x"}, True),
    ("block-comment", '/* c */ f == "x"', {"f": "x"}, True),
    ("backtick-field", '`f` == "x"', {"f": "x"}, True),
    # literals that look like generated code stay data
    ("codegen-braces", 'f == "{0}(v) in x"', {"f": ["{0}(v) in x"]}, True),
    ("codegen-quote", 'f : ("\\"\\\\*", "\'")', {"f": '"\\z'}, True),
]


@pytest.mark.parametrize(("condition", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantics(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert q(condition).matches(event) is expected


@pytest.mark.parametrize(
    ("category", "expected"),
    [(["process"], True), ("process", True), (["network", "process"], True), (["network"], False), (None, False)],
)
def test_category(category: Any, expected: bool) -> None:
    event: dict[str, Any] = {"process": {"name": "x"}}
    if category is not None:
        event["event"] = {"category": category}
    assert q('process.name == "x"', "process").matches(event) is expected
    assert q('process.name == "x"', "any").matches(event) is True


def test_category_is_case_sensitive_term() -> None:
    assert not q("true", "process").matches({"event": {"category": "Process"}})
    assert q("true", '"process"').matches({"event": {"category": "process"}})


# ------------------------------------------------------------------------------------- the seed rule


def test_seed_rule_file_text_is_the_brief_query() -> None:
    text = tomllib.loads(RULE_FILE.read_text())["rule"]["query"]
    assert compile_query(text).ast == compile_query(SEED).ast


def test_seed_ast_and_fields() -> None:
    c = compile_query(SEED)
    assert c.category == "process"
    assert isinstance(c.ast, And) and len(c.ast.children) == 4
    name_or = c.ast.children[2]
    assert isinstance(name_or, Or)
    assert name_or.children[1] == Compare(
        "process.pe.original_file_name", "==", ("client32.exe",), optional=True, position=SEED.index("?process.pe")
    )
    exe = c.ast.children[3]
    assert isinstance(exe, Or) and isinstance(exe.children[0], Compare)
    assert exe.children[0].values[0] == "?:\\Users\\*.exe"
    assert c.fields == {
        "event.category",
        "event.type",
        "host.os.type",
        "process.name",
        "process.pe.original_file_name",
        "process.parent.name",
        "process.executable",
        "process.parent.executable",
    }


USERS = "C:\\Users\\bob\\"
SYS32 = "C:\\Windows\\System32\\"
CASE = pytest.param


def seed_case(case_id: str, seed: bool, revised: bool, **fields: Any) -> Any:
    return CASE(proc(**fields), seed, revised, id=case_id)


# event, expected under the seed rule, expected under the revised rule (HarddiskVolume*)
SEED_EVENTS = [
    seed_case("user-folder", True, True, process__name="client32.exe", process__executable=USERS + "client32.exe"),
    seed_case("user-folder-case", True, True, process__name="CLIENT32.EXE", process__executable="c:\\users\\B\\x.EXE"),
    seed_case("programdata", True, True, process__name="client32.exe", process__executable="D:\\ProgramData\\n\\c.exe"),
    seed_case(
        "program-files",
        False,
        False,
        process__name="client32.exe",
        process__executable="C:\\Program Files (x86)\\NetSupport\\NetSupport Manager\\client32.exe",
    ),
    seed_case(
        "volume-3",
        True,
        True,
        process__name="client32.exe",
        process__executable="\\Device\\HarddiskVolume3\\Users\\x\\client32.exe",
    ),
    seed_case(
        "volume-12",
        False,
        True,
        process__name="client32.exe",
        process__executable="\\Device\\HarddiskVolume12\\Users\\x\\client32.exe",
    ),
    seed_case(
        "renamed",
        True,
        True,
        process__name="update.exe",
        process__pe__original_file_name="client32.exe",
        process__executable=USERS + "update.exe",
    ),
    seed_case(
        "renamed-ofn-case-sensitive",
        False,
        False,
        process__name="update.exe",
        process__pe__original_file_name="CLIENT32.EXE",
        process__executable=USERS + "update.exe",
    ),
    seed_case(
        "child-of-client32",
        True,
        True,
        process__name="cmd.exe",
        process__executable=SYS32 + "cmd.exe",
        process__parent__name="client32.exe",
        process__parent__executable=USERS + "AppData\\Roaming\\nsm\\client32.exe",
    ),
    seed_case(
        "child-of-client32-program-files",
        False,
        False,
        process__name="cmd.exe",
        process__executable=SYS32 + "cmd.exe",
        process__parent__name="client32.exe",
        process__parent__executable="C:\\Program Files\\NSM\\client32.exe",
    ),
    seed_case(
        "child-parent-exe-missing",
        False,
        False,
        process__name="cmd.exe",
        process__executable=SYS32 + "cmd.exe",
        process__parent__name="client32.exe",
    ),
    seed_case(
        "linux-host",
        False,
        False,
        host__os__type="linux",
        process__name="client32.exe",
        process__executable=USERS + "client32.exe",
    ),
    seed_case(
        "event-end",
        False,
        False,
        event__type=["end"],
        process__name="client32.exe",
        process__executable=USERS + "client32.exe",
    ),
    seed_case(
        "event-type-string",
        True,
        True,
        event__type="start",
        process__name="client32.exe",
        process__executable=USERS + "client32.exe",
    ),
    seed_case(
        "not-process-category",
        False,
        False,
        event__category=["file"],
        process__name="client32.exe",
        process__executable=USERS + "client32.exe",
    ),
    seed_case(
        "benign",
        False,
        False,
        process__name="svchost.exe",
        process__executable=SYS32 + "svchost.exe",
        process__parent__name="services.exe",
    ),
    seed_case(
        "windows-case-sensitive",
        False,
        False,
        host__os__type="Windows",
        process__name="client32.exe",
        process__executable=USERS + "client32.exe",
    ),
]


@pytest.mark.parametrize(("event", "seed", "revised"), SEED_EVENTS)
def test_seed_rule(event: dict[str, Any], seed: bool, revised: bool) -> None:
    assert compile_query(SEED).matches(event) is seed
    assert compile_query(REVISED).matches(event) is revised


def test_seed_rule_on_flattened_event() -> None:
    flat = {
        "event.category": "process",
        "event.type": "start",
        "host.os.type": "windows",
        "process.name": "client32.exe",
        "process.executable": "C:\\Users\\bob\\client32.exe",
    }
    assert compile_query(SEED).matches(flat)


def test_matches_accepts_non_dict_mapping() -> None:
    from types import MappingProxyType

    event = proc(process__name="client32.exe", process__executable="C:\\Users\\bob\\client32.exe")
    assert compile_query(SEED).matches(MappingProxyType(event))


# ------------------------------------------------------------------------------------------ get_values


@pytest.mark.parametrize(
    ("event", "field", "expected"),
    [
        ({"a": {"b": {"c": 1}}}, "a.b.c", [1]),
        ({"a.b.c": 1}, "a.b.c", [1]),
        ({"a": {"b.c": 1}}, "a.b.c", [1]),
        ({"a.b": {"c": 1}}, "a.b.c", [1]),
        ({"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}]}, "a.b", [1, 2, 3]),
        ({"a": {"b": 1}, "a.b": 2}, "a.b", [1, 2]),
        ({"a": {"b": None}}, "a.b", []),
        ({"a": "x"}, "a.b", []),
        ({}, "a", []),
        ({"a": {"b": {"c": 1}}}, "a.b", [{"c": 1}]),
    ],
)
def test_get_values(event: dict[str, Any], field: str, expected: list[Any]) -> None:
    assert get_values(event, field) == expected


def test_wildcard_match_exposed() -> None:
    assert wildcard_match("?:\\Users\\*.exe", "C:\\USERS\\a\\b.EXE")
    assert not wildcard_match("?:\\Users\\*.exe", "C:\\Program Files\\b.exe")


# --------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("query", "fragment", "line", "column"),
    [
        ("sequence [process where true] [network where true]", "unsupported construct 'sequence'", 1, 1),
        ("join [process where true] [network where true]", "unsupported construct 'join'", 1, 1),
        ("sample by host.id [process where true]", "unsupported construct 'sample'", 1, 1),
        ('process where process.name == "x" | head 5', "pipes ('| head')", 1, 35),
        ("process where true\n| tail 3", "pipes ('| tail')", 2, 1),
        ('process where startsWith(process.name, "cl")', "function calls ('startsWith(...)')", 1, 15),
        ('process where process.name : "abc', "unterminated string", 1, 30),
        ('process where process.name : "a\\qb"', "invalid escape sequence '\\q'", 1, 32),
        ('process where f == "\\u{110000}"', "invalid unicode escape", 1, 21),
        ('process where f == "\\u0041"', "invalid unicode escape", 1, 21),
        # \u{...} takes 2 to 8 hex digits (AbstractBuilder.handleUnicodePoints) and must name a character
        ('process where f == "\\u{D}"', "2 to 8 hex digits", 1, 21),
        ('process where f == "x\\u{123456789}"', "2 to 8 hex digits", 1, 22),
        ('process where f == "\\u{}"', "invalid unicode escape", 1, 21),
        ('process where f == "\\u{DA12"', "invalid unicode escape", 1, 21),
        ('process where f == "\\u{00AUF}"', "invalid unicode escape", 1, 21),
        ('process where f == "\\u{d800}"', "not a character", 1, 21),
        ('process where f == "\\u{FFFFFFFa}"', "not a character", 1, 21),
        # escapes the EQL grammar does not lex
        ('process where f == "\\a"', "invalid escape sequence '\\a'", 1, 21),
        ('process where f == "\\v"', "invalid escape sequence '\\v'", 1, 21),
        ('process where f == "\\0"', "invalid escape sequence '\\0'", 1, 21),
        ('process where f == "\\x41"', "invalid escape sequence '\\x'", 1, 21),
        ('process where f == "\\/"', "invalid escape sequence '\\/'", 1, 21),
        # a raw string cannot span lines, and takes at most two quotes after its closing """
        ('process where f == """a\nb"""', "unterminated string", 1, 20),
        ('process where f == """a' + '"' * 6, "unterminated string", 1, 29),
        ("process where f : 5", "':' needs string patterns", 1, 19),
        ('process where f regex "a.*"', "unsupported construct 'regex'", 1, 17),
        ('process where f > "a"', "range comparison", 1, 17),
        ("process where f == 'x'", "single-quoted strings", 1, 20),
        ('process where f == ?"x"', 'raw strings ?"..."', 1, 20),
        ('process where f = "x"', "unsupported operator '='", 1, 17),
        ("process where f == g", "field-to-field comparison", 1, 20),
        ("process where f", "bare field 'f'", 1, 15),
        ('process f == "x"', "expected 'where'", 1, 9),
        ('process where (f == "x"', "expected ')'", 1, 24),
        ('process where f == "x" g', "unexpected 'g'", 1, 24),
        ('process where f == "x" and', "expected a condition but found end of query", 1, 27),
        ('process where f == "x" # y', "unexpected character '#'", 1, 24),
        ('process where "x" == f', "on the left of a comparison", 1, 15),
        ('process where f in ("a", 1) and g in~ ("a", 1)', "'in~' takes string values only", 1, 35),
        ('process where f[0] == "x"', "array index", 1, 16),
        ("process where f + 1 == 2", "arithmetic", 1, 17),
        ("", "expected an event category but found end of query", 1, 1),
    ],
)
def test_refusals(query: str, fragment: str, line: int, column: int) -> None:
    with pytest.raises(EqlError) as info:
        compile_query(query)
    message = str(info.value)
    assert fragment in message
    assert message.endswith(f"at line {line}, column {column}")
    assert (info.value.line, info.value.column) == (line, column)
    lines = query.split("\n")
    assert info.value.position == sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def test_error_is_value_error() -> None:
    assert issubclass(EqlError, ValueError)


def test_not_in_is_negated_in() -> None:
    assert compile_query('any where f not in ("a")').ast == Not(Compare("f", "in", ("a",), position=10))


def test_compiled_query_pickles_and_constructs() -> None:
    import pickle

    c = compile_query(SEED)
    again = pickle.loads(pickle.dumps(c))
    event = proc(process__name="client32.exe", process__executable="C:\\Users\\bob\\client32.exe")
    assert again == c and again.matches(event)
    direct = CompiledQuery(c.text, c.category, c.ast, c.fields)
    assert direct.matches(event)
