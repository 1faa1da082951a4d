"""The tokenizer: EQL text -> tokens (identifiers, keywords, strings, numbers, operators), with positions.

String literals are read by `text.read_string`, which owns Elasticsearch's escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detector.rules.eql.errors import EqlError
from detector.rules.eql.text import read_string

__all__ = ["Token", "tokenize"]

# Reserved words come out as `kw` tokens (not field names), so the parser can refuse full EQL's constructs by name.
_KEYWORDS = frozenset({"and", "or", "not", "where", "in", "like", "regex", "true", "false", "null", "any"})
_RESERVED = _KEYWORDS | {"sequence", "join", "sample", "until", "by", "with", "of"}

_IDENT_START = re.compile(r"[A-Za-z_@]")
_IDENT = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*(?:\.[A-Za-z0-9_@]+)*")
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)+", re.DOTALL)
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=")
_ONE_CHAR_OPS = "():,<>=|[]+-*/%!"


@dataclass(frozen=True)
class Token:
    kind: str  # ident, kw, str, num, op, eof
    value: Any
    pos: int
    optional: bool = False  # a `?field` identifier


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending in one `eof` token; raises EqlError at the first character it cannot read."""
    toks: list[Token] = []
    i, n = 0, len(text)
    while True:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
        if i >= n:
            break
        if text.startswith("/*", i):
            raise EqlError("unterminated comment", text, i)
        c = text[i]
        if c == '"':
            value, end = read_string(text, i)
            toks.append(Token("str", value, i))
            i = end
            continue
        if c == "'":
            raise EqlError("single-quoted strings are not supported (use double quotes)", text, i)
        if c == "?":
            nxt = text[i + 1 : i + 2]
            if nxt == '"':
                raise EqlError('raw strings ?"..." are not supported (use """...""")', text, i)
            if nxt == "`" or _IDENT_START.match(nxt):
                name, end = _read_ident(text, i + 1)
                toks.append(Token("ident", name, i, True))
                i = end
                continue
            raise EqlError("unexpected '?' (expected an optional field name)", text, i)
        if c == "`" or _IDENT_START.match(c):
            word, end = _read_ident(text, i)
            if c != "`" and word in _RESERVED:
                if text.startswith("~", end) and word in ("in", "like", "regex"):
                    word += "~"
                    end += 1
                toks.append(Token("kw", word, i))
            else:
                toks.append(Token("ident", word, i))
            i = end
            continue
        m = _NUMBER.match(text, i)
        if m:
            s = m.group()
            toks.append(Token("num", float(s) if any(ch in s for ch in ".eE") else int(s), i))
            i = m.end()
            continue
        two = text[i : i + 2]
        if two in _TWO_CHAR_OPS:
            toks.append(Token("op", two, i))
            i += 2
            continue
        if c in _ONE_CHAR_OPS:
            toks.append(Token("op", c, i))
            i += 1
            continue
        raise EqlError(f"unexpected character {c!r}", text, i)
    toks.append(Token("eof", None, n))
    return toks


def _read_ident(text: str, i: int) -> tuple[str, int]:
    if text[i] == "`":
        end = text.find("`", i + 1)
        if end < 0:
            raise EqlError("unterminated `quoted` field name", text, i)
        name = text[i + 1 : end]
        if not name:
            raise EqlError("empty `quoted` field name", text, i)
        return name, end + 1
    m = _IDENT.match(text, i)
    assert m is not None
    return m.group(), m.end()
