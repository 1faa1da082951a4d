"""wildcard_match against an independent reference: a dynamic-programming matcher over code points.

The reference applies Elasticsearch's per-character rule directly (pattern char c matches value char d
iff d is c, Java's Character.toLowerCase(c) or Character.toUpperCase(c)), written from a small explicit
table for the non-ASCII letters in the alphabet so it does not share the implementation's case mapping.
"""

from __future__ import annotations

from functools import cache

from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.rules.eql import compile_query, wildcard_match

# Java's simple (1:1) case mappings for the letters drawn below; ASCII is computed.
_JAVA_LOWER = {"\u0130": "i", "\u212a": "k", "\u00c9": "\u00e9", "\u03a3": "\u03c3"}
_JAVA_UPPER = {"\u0131": "I", "\u00e9": "\u00c9", "\u03c3": "\u03a3", "\u03c2": "\u03a3", "\u00df": "\u00df"}


def _lower(c: str) -> str:
    if c in _JAVA_LOWER:
        return _JAVA_LOWER[c]
    return c.lower() if "A" <= c <= "Z" else c


def _upper(c: str) -> str:
    if c in _JAVA_UPPER:
        return _JAVA_UPPER[c]
    return c.upper() if "a" <= c <= "z" else c


def char_matches(p: str, d: str) -> bool:
    return d in (p, _lower(p), _upper(p))


def reference(pattern: str, value: str) -> bool:
    @cache
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        c = pattern[i]
        if c == "*":
            return m(i + 1, j) or (j < len(value) and m(i, j + 1))
        if j == len(value):
            return False
        if c == "?":
            return m(i + 1, j + 1)
        return char_matches(c, value[j]) and m(i + 1, j + 1)

    return m(0, 0)


LETTERS = "aAbBiIkKsS\\.:\u0130\u0131\u212a\u00df\u00e9\u00c9\u03c3\u03a3\u03c2"
PATTERN_ALPHABET = LETTERS + "*?"
VALUE_ALPHABET = LETTERS + "*?x"

patterns = st.text(alphabet=PATTERN_ALPHABET, max_size=8)
values = st.text(alphabet=VALUE_ALPHABET, max_size=10)


@settings(max_examples=1500, deadline=None)
@given(patterns, values)
@example("i", "\u0130")
@example("\u0130", "i")
@example("k", "\u212a")
@example("\u212a", "k")
@example("\u0131", "I")
@example("\u00df", "SS")
@example("*\\*", "a\\b")
@example("?", "\u00df")
def test_wildcard_match_agrees_with_reference(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) == reference(pattern, value)


@settings(max_examples=500, deadline=None)
@given(patterns, values)
def test_value_matches_itself_when_pattern_is_literal(pattern: str, value: str) -> None:
    literal = pattern.replace("*", "").replace("?", "")
    assert wildcard_match(literal, literal)
    assert wildcard_match("*", value)
    assert wildcard_match("?" * len(value), value)


@settings(max_examples=300, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=4), values)
def test_pattern_list_is_any_of(pats: list[str], value: str) -> None:
    # The compiler folds a list into one alternation regex; it must equal any() over the items.
    items = ", ".join('"' + p.replace("\\", "\\\\") + '"' for p in pats)
    compiled = compile_query(f"any where f : ({items})")
    assert compiled.matches({"f": value}) == any(reference(p, value) for p in pats)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=LETTERS, max_size=6), values)
def test_in_insensitive_is_literal_case_match(literal: str, value: str) -> None:
    quoted = literal.replace("\\", "\\\\")
    compiled = compile_query(f'any where f in~ ("{quoted}")')
    expected = len(literal) == len(value) and all(char_matches(p, d) for p, d in zip(literal, value, strict=True))
    assert compiled.matches({"f": value}) == expected
