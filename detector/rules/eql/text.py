"""Elasticsearch's rules for text: string literals and their escapes, ASCII-only case folding, wildcards.

Case folding and wildcards are compiled to regexes that match in time linear in the value's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from detector.rules.eql.errors import EqlError

__all__ = ["case_variants", "compile_patterns", "read_string", "wildcard_match"]


# ---------------------------------------------------------------------------------------- string literals

# Exactly the escapes Elasticsearch's EqlBase.g4 lexes (STRING_ESCAPE: '\\' [btnfr"'\\]) and
# AbstractBuilder.unquoteString turns into characters; any other backslash sequence is a lexer error there.
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
# UNICODE_ESCAPE is '\\u' '{' HEX_DIGIT+ '}'; unquoteString then requires 2 to 8 digits.
_UNICODE_ESCAPE = re.compile(r"\{([0-9A-Fa-f]+)\}")
# A raw string's closing """ may be followed by at most two more quotes, which belong to the text.
_RAW_EXTRA_QUOTES = 2


def read_string(text: str, start: int) -> tuple[str, int]:
    """The string literal whose opening quote is at `start`: its text, and the position just after it."""
    if text.startswith('"""', start):
        end = text.find('"""', start + 3)
        if end < 0:
            raise EqlError("unterminated string", text, start)
        body = text[start + 3 : end]
        if "\n" in body or "\r" in body:
            # Elasticsearch's raw-string token excludes line breaks too.
            raise EqlError('unterminated string (a """ string cannot span lines)', text, start)
        # A raw string may end in quotes: `""""a""""` is the text `"a"`.
        extra = 0
        while extra < _RAW_EXTRA_QUOTES and text.startswith('"', end + 3):
            end += 1
            extra += 1
        return text[start + 3 : end], end + 3
    out: list[str] = []
    i, n = start + 1, len(text)
    while True:
        if i >= n:
            raise EqlError("unterminated string", text, start)
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\n" or c == "\r":
            raise EqlError("unterminated string (newline inside a string)", text, start)
        if c != "\\":
            out.append(c)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
            continue
        if esc == "u":
            m = _UNICODE_ESCAPE.match(text, i + 2)
            if m is None:
                raise EqlError("invalid unicode escape (expected \\u{2 to 8 hex digits})", text, i)
            digits = m.group(1)
            if not 2 <= len(digits) <= 8:
                raise EqlError(f"invalid unicode escape '\\u{{{digits}}}' (2 to 8 hex digits are allowed)", text, i)
            cp = int(digits, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise EqlError(f"invalid unicode escape '\\u{{{digits}}}' (not a character)", text, i)
            out.append(chr(cp))
            i = m.end()
            continue
        shown = "\\" + esc if esc else "\\"
        raise EqlError(f"invalid escape sequence '{shown}' in string", text, i)


# ------------------------------------------------------------------------------------- case & wildcards


def case_variants(c: str) -> frozenset[str]:
    """The value characters a pattern character matches under `:`, `in~` and `like~`.

    Elasticsearch builds these queries with AutomatonQueries.toCaseInsensitiveChar, which returns the
    code point unchanged when it is above 128: only ASCII letters fold, so `é` does not match `É` and
    `k` does not match the Kelvin sign.
    """
    if c.isascii() and c.isalpha():
        return frozenset((c.lower(), c.upper()))
    return frozenset((c,))


def _char_regex(c: str, insensitive: bool) -> str:
    if not insensitive:
        return re.escape(c)
    variants = case_variants(c)
    if len(variants) == 1:
        return re.escape(c)
    return "[" + "".join(re.escape(v) for v in sorted(variants)) + "]"


_STARS = re.compile(r"\*+")


def _segment_regex(segment: str, insensitive: bool, wildcards: bool) -> str:
    return "".join("." if wildcards and c == "?" else _char_regex(c, insensitive) for c in segment)


def _pattern_regex(pattern: str, insensitive: bool, wildcards: bool) -> str:
    """A regex for `fullmatch` that runs in O(len(value) * len(pattern)) whatever the value.

    A plain `.*` per star lets the regex engine retry every way of splitting the value between the
    stars: a crafted 360 KB path took seconds against `\\Device\\HarddiskVolume*\\Users\\*.exe`,
    and `*a*a*a*a*a*b` took 17 s on 100 characters. Between two stars a segment has a fixed length (`?`
    is one code point), so matching each middle segment at its leftmost occurrence after the previous
    one is exact (a later occurrence only leaves less room for the rest). `(?>.*?segment)` is that
    leftmost search as an atomic group: once found, the engine never comes back to try another split.
    Only the last star stays a backtracking `.*`, and one `.*` before a fixed-length tail backs off at
    most once over the value.
    """
    if not wildcards:
        return _segment_regex(pattern, insensitive, wildcards)
    head, *middle = _STARS.sub("*", pattern).split("*")
    if not middle:
        return _segment_regex(head, insensitive, wildcards)
    *middle, tail = middle
    return (
        _segment_regex(head, insensitive, wildcards)
        + "".join(f"(?>.*?{_segment_regex(m, insensitive, wildcards)})" for m in middle)
        + ".*"
        + _segment_regex(tail, insensitive, wildcards)
    )


def compile_patterns(patterns: Iterable[str], insensitive: bool, wildcards: bool) -> re.Pattern[str]:
    # An alternation under fullmatch tries each alternative from position 0 only: still linear.
    alts = sorted({_pattern_regex(p, insensitive, wildcards) for p in patterns})
    body = alts[0] if len(alts) == 1 else "|".join(f"(?:{a})" for a in alts)
    return re.compile(body, re.DOTALL)


_wildcard_cache: dict[str, re.Pattern[str]] = {}


def wildcard_match(pattern: str, value: str) -> bool:
    """`value : pattern` for one string value: ASCII case-insensitive, `*` and `?` wildcards."""
    rx = _wildcard_cache.get(pattern)
    if rx is None:
        rx = compile_patterns((pattern,), insensitive=True, wildcards=True)
        if len(_wildcard_cache) < 4096:
            _wildcard_cache[pattern] = rx
    return rx.fullmatch(value) is not None
