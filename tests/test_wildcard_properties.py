"""Wildcard matching against an independent reference: a dynamic-programming glob matcher.

The reference is the textbook O(len(pattern) * len(value)) table over code points, with Elasticsearch's
case rule written out directly: a pattern character matches a value character iff they are equal or
both are ASCII letters that differ only in case (AutomatonQueries.toCaseInsensitiveChar folds nothing
at or above 128). It shares no code with the implementation, which compiles every star but the last
to an atomic leftmost search.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.rules.eql import compile_query, wildcard_match


def char_matches(p: str, d: str, insensitive: bool = True) -> bool:
    if p == d:
        return True
    ascii_letters = p.isascii() and d.isascii() and p.isalpha() and d.isalpha()
    return insensitive and ascii_letters and p.lower() == d.lower()


def reference(pattern: str, value: str, insensitive: bool = True) -> bool:
    # row[j]: pattern[:i] matches value[:j]
    row = [True] + [False] * len(value)
    for c in pattern:
        nxt = [False] * (len(value) + 1)
        if c == "*":
            nxt[0] = row[0]
            for j in range(1, len(value) + 1):
                nxt[j] = row[j] or nxt[j - 1]
        else:
            for j in range(1, len(value) + 1):
                nxt[j] = row[j - 1] and (c == "?" or char_matches(c, value[j - 1], insensitive))
        row = nxt
    return row[len(value)]


def test_reference_itself() -> None:
    # The reference must be right for the test to mean anything.
    assert reference("a*b*c", "aXbYc") and not reference("a*b*c", "aXcYb")
    assert reference("*", "") and reference("**", "x") and not reference("?", "")
    assert reference("A?c", "abC") and not reference("A?c", "abC", insensitive=False)
    assert not reference("\u00e9", "\u00c9") and not reference("k", "\u212a") and not reference("\u0130", "i")


LETTERS = "aAbBiIkKsSeE\\.:\u0130\u0131\u212a\u00df\u1e9e\u00e9\u00c9\u03c3\u03a3\u03c2"
PATTERN_ALPHABET = LETTERS + "*?"
VALUE_ALPHABET = LETTERS + "*?x"

patterns = st.text(alphabet=PATTERN_ALPHABET, max_size=8)
values = st.text(alphabet=VALUE_ALPHABET, max_size=12)
# Patterns with several stars compile to atomic groups; draw them often, not by luck.
segments = st.text(alphabet=LETTERS + "?", max_size=3)
star_patterns = st.lists(segments, min_size=3, max_size=6).map("*".join)
any_pattern = st.one_of(patterns, star_patterns)


@settings(max_examples=2000, deadline=None)
@given(any_pattern, values)
@example("i", "\u0130")
@example("\u0130", "i")
@example("k", "\u212a")
@example("\u212a", "k")
@example("\u0131", "I")
@example("\u00e9", "\u00c9")
@example("\u00c9", "\u00e9")
@example("\u00df", "SS")
@example("\u00df", "\u1e9e")
@example("*\\*", "a\\b")
@example("?", "\u00df")
@example("a*b*a", "aba")  # head and tail must not overlap
@example("a*a*a", "aa")
@example("*a*a*", "a")
@example("*ab*ab*", "abab")
@example("?*?*?", "xy")
def test_wildcard_match_agrees_with_reference(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) == reference(pattern, value)


@settings(max_examples=1000, deadline=None)
@given(star_patterns, st.data())
def test_star_patterns_on_values_built_to_match(pattern: str, data: st.DataObject) -> None:
    # Random values rarely match a long pattern; fill the wildcards in (and flip ASCII case) to get hits,
    # plus near misses from dropping or changing one character.
    pieces: list[str] = []
    for c in pattern:
        if c == "*":
            pieces.append(data.draw(st.text(alphabet=VALUE_ALPHABET, max_size=4)))
        elif c == "?":
            pieces.append(data.draw(st.sampled_from(VALUE_ALPHABET)))
        else:
            pieces.append(c.swapcase() if c.isascii() and data.draw(st.booleans()) else c)
    value = "".join(pieces)
    assert wildcard_match(pattern, value) == reference(pattern, value)
    if value:
        k = data.draw(st.integers(0, len(value) - 1))
        for near in (
            value[:k] + value[k + 1 :],
            value[:k] + data.draw(st.sampled_from(VALUE_ALPHABET)) + value[k + 1 :],
        ):
            assert wildcard_match(pattern, near) == reference(pattern, near)


@settings(max_examples=500, deadline=None)
@given(any_pattern, values)
def test_like_is_case_sensitive_glob(pattern: str, value: str) -> None:
    quoted = pattern.replace("\\", "\\\\")
    compiled = compile_query(f'any where f like "{quoted}"')
    assert compiled.matches({"f": value}) == reference(pattern, value, insensitive=False)


@settings(max_examples=500, deadline=None)
@given(patterns, values)
def test_value_matches_itself_when_pattern_is_literal(pattern: str, value: str) -> None:
    literal = pattern.replace("*", "").replace("?", "")
    assert wildcard_match(literal, literal)
    assert wildcard_match("*", value)
    assert wildcard_match("?" * len(value), value)


@settings(max_examples=500, deadline=None)
@given(st.lists(any_pattern, min_size=1, max_size=4), values, st.booleans())
def test_pattern_list_is_any_of(pats: list[str], value: str, as_list_value: bool) -> None:
    # A list compiles to one alternation; it must equal any() over the items, on the inline str path and
    # on the list path alike.
    items = ", ".join('"' + p.replace("\\", "\\\\") + '"' for p in pats)
    compiled = compile_query(f"any where f : ({items})")
    event = {"f": ["zz", value] if as_list_value else value}
    assert compiled.matches(event) == any(reference(p, value) or (as_list_value and reference(p, "zz")) for p in pats)
    negated = compile_query(f"any where not f : ({items})")
    assert negated.matches(event) != compiled.matches(event)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=LETTERS, max_size=6), values)
def test_in_insensitive_is_literal_case_match(literal: str, value: str) -> None:
    quoted = literal.replace("\\", "\\\\")
    compiled = compile_query(f'any where f in~ ("{quoted}")')
    expected = len(literal) == len(value) and all(char_matches(p, d) for p, d in zip(literal, value, strict=True))
    assert compiled.matches({"f": value}) == expected
