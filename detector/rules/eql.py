r"""A small EQL compiler: single-event queries, evaluated with Elasticsearch's semantics.

Only the subset Elastic's single-event detection rules use is accepted; everything else is refused with
an `EqlError` that names the construct and where it is, so a rule that would silently mean something
different here never loads.

Semantics follow what Elasticsearch does once the query is translated to query DSL:

* Every comparison is a term-level query over the field's values: a list matches when any element does;
  a missing field (or null, or an empty list) has no values and so matches nothing.
* `not X` is a `must_not`, so it is true for an event where the field is missing.
* `field != v` is `exists(field) and not (field == v)`: false on a missing field, and for a list true only
  when no element equals `v`.
* `:` is case-insensitive the way Elasticsearch's AutomatonQueries.toCaseInsensitiveChar is: ASCII
  letters match either ASCII case, every other code point only itself (`é` does not match `É`).
  `*` is any run of characters, `?` exactly one code point; a backslash is an ordinary character.
  Matching costs time linear in the value's length (times the pattern's), whatever the value.
* `==`, `in` and `like` are case-sensitive; `in~` is case-insensitive without wildcards, `like~` is `:`.
* Strings take the escapes Elasticsearch's EQL grammar takes (`\\ \" \' \b \f \n \r \t` and `\u{XX}`
  with 2 to 8 hex digits); anything else is refused.
* Non-string values are compared through their keyword form (`str(5)`, booleans as "true"/"false");
  a number literal compares numerically, and a string value is parsed as a number for that purpose.
  Objects (dicts) never match a comparison.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, TypeAlias

from detector.fields import flatten, values

__all__ = [
    "And",
    "Compare",
    "CompiledQuery",
    "Const",
    "EqlError",
    "Literal",
    "Node",
    "Not",
    "Or",
    "compile_query",
    "get_values",
    "wildcard_match",
]


class EqlError(ValueError):
    """Query refused; the message names the construct and its line/column."""

    def __init__(self, message: str, text: str = "", position: int = 0) -> None:
        line, column = _line_col(text, position)
        super().__init__(f"{message} at line {line}, column {column}")
        self.position = position
        self.line = line
        self.column = column


def _line_col(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column


# --------------------------------------------------------------------------------------------------- AST

Literal: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class Compare:
    """`field <op> values`; op is one of ==, !=, :, in, in~, like, like~."""

    field: str
    op: str
    values: tuple[Literal, ...]
    optional: bool = False
    position: int = dc_field(default=0, compare=False)  # for messages; not part of the meaning


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Const:
    value: bool


Node: TypeAlias = Compare | And | Or | Not | Const


# ---------------------------------------------------------------------------------------------- tokenizer

_KEYWORDS = frozenset({"and", "or", "not", "where", "in", "like", "regex", "true", "false", "null", "any"})
_RESERVED = _KEYWORDS | {"sequence", "join", "sample", "until", "by", "with", "of"}
# Constructs of full EQL we refuse by name when they appear as a word.
_UNSUPPORTED_WORDS = {
    "sequence": "unsupported construct 'sequence'",
    "join": "unsupported construct 'join'",
    "sample": "unsupported construct 'sample'",
    "until": "unsupported construct 'until'",
    "by": "unsupported construct 'by'",
    "with": "unsupported construct 'with'",
    "of": "unsupported construct 'of'",
    "regex": "unsupported construct 'regex'",
    "regex~": "unsupported construct 'regex~'",
}

_IDENT_START = re.compile(r"[A-Za-z_@]")
_IDENT = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*(?:\.[A-Za-z0-9_@]+)*")
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)+", re.DOTALL)
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=")
_ONE_CHAR_OPS = "():,<>=|[]+-*/%!"


@dataclass(frozen=True)
class _Tok:
    kind: str  # ident, kw, str, num, op, eof
    value: Any
    pos: int
    optional: bool = False  # a `?field` identifier


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
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
            value, end = _read_string(text, i)
            toks.append(_Tok("str", value, i))
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
                toks.append(_Tok("ident", name, i, True))
                i = end
                continue
            raise EqlError("unexpected '?' (expected an optional field name)", text, i)
        if c == "`" or _IDENT_START.match(c):
            word, end = _read_ident(text, i)
            if c != "`" and word in _RESERVED:
                if text.startswith("~", end) and word in ("in", "like", "regex"):
                    word += "~"
                    end += 1
                toks.append(_Tok("kw", word, i))
            else:
                toks.append(_Tok("ident", word, i))
            i = end
            continue
        m = _NUMBER.match(text, i)
        if m:
            s = m.group()
            toks.append(_Tok("num", float(s) if any(ch in s for ch in ".eE") else int(s), i))
            i = m.end()
            continue
        two = text[i : i + 2]
        if two in _TWO_CHAR_OPS:
            toks.append(_Tok("op", two, i))
            i += 2
            continue
        if c in _ONE_CHAR_OPS:
            toks.append(_Tok("op", c, i))
            i += 1
            continue
        raise EqlError(f"unexpected character {c!r}", text, i)
    toks.append(_Tok("eof", None, n))
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


# Exactly the escapes Elasticsearch's EqlBase.g4 lexes (STRING_ESCAPE: '\\' [btnfr"'\\]) and
# AbstractBuilder.unquoteString turns into characters; any other backslash sequence is a lexer error there.
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
# UNICODE_ESCAPE is '\\u' '{' HEX_DIGIT+ '}'; unquoteString then requires 2 to 8 digits.
_UNICODE_ESCAPE = re.compile(r"\{([0-9A-Fa-f]+)\}")
# A raw string's closing """ may be followed by at most two more quotes, which belong to the text.
_RAW_EXTRA_QUOTES = 2


def _read_string(text: str, start: int) -> tuple[str, int]:
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


# ------------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: _Tok) -> EqlError:
        return EqlError(message, self.text, tok.pos)

    def is_op(self, tok: _Tok, *ops: str) -> bool:
        return tok.kind == "op" and tok.value in ops

    def is_kw(self, tok: _Tok, *words: str) -> bool:
        return tok.kind == "kw" and tok.value in words

    def expect_op(self, op: str, what: str) -> _Tok:
        tok = self.next()
        if not self.is_op(tok, op):
            raise self.error(f"expected {what} but found {self.describe(tok)}", tok)
        return tok

    def describe(self, tok: _Tok) -> str:
        if tok.kind == "eof":
            return "end of query"
        if tok.kind == "str":
            return f"string {tok.value!r}"
        return f"{tok.value!r}"

    def refuse_unsupported(self, tok: _Tok) -> None:
        if tok.kind == "kw" and tok.value in _UNSUPPORTED_WORDS:
            raise self.error(_UNSUPPORTED_WORDS[tok.value], tok)
        if self.is_op(tok, "|"):
            idx = next(k for k, t in enumerate(self.toks) if t is tok)
            nxt = self.toks[min(idx + 1, len(self.toks) - 1)]
            name = f"| {nxt.value}" if nxt.kind in ("ident", "kw") else "|"
            raise self.error(f"pipes ('{name}') are not supported", tok)

    # query := (category | any) where expr
    def query(self) -> tuple[str, Node]:
        tok = self.next()
        self.refuse_unsupported(tok)
        if tok.kind == "kw" and tok.value == "any":
            category = "any"
        elif tok.kind in ("ident", "str") and not tok.optional:
            category = str(tok.value)
        else:
            raise self.error(f"expected an event category but found {self.describe(tok)}", tok)
        where = self.next()
        if not self.is_kw(where, "where"):
            self.refuse_unsupported(where)
            raise self.error(f"expected 'where' but found {self.describe(where)}", where)
        node = self.expr()
        tail = self.next()
        if tail.kind != "eof":
            self.i -= 1
            self.refuse_unsupported(tail)
            raise self.error(f"unexpected {self.describe(tail)} after the condition", tail)
        return category, node

    def expr(self) -> Node:
        children = [self.conj()]
        while self.is_kw(self.peek(), "or"):
            self.next()
            children.append(self.conj())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def conj(self) -> Node:
        children = [self.neg()]
        while self.is_kw(self.peek(), "and"):
            self.next()
            children.append(self.neg())
        return children[0] if len(children) == 1 else And(tuple(children))

    def neg(self) -> Node:
        if self.is_kw(self.peek(), "not"):
            self.next()
            return Not(self.neg())
        return self.primary()

    def primary(self) -> Node:
        tok = self.next()
        if self.is_op(tok, "("):
            node = self.expr()
            self.expect_op(")", "')'")
            return node
        if self.is_kw(tok, "true", "false"):
            return Const(bool(tok.value == "true"))
        self.refuse_unsupported(tok)
        if tok.kind == "ident":
            if self.is_op(self.peek(), "(") and not tok.optional:
                raise self.error(f"function calls ('{tok.value}(...)') are not supported", tok)
            return self.comparison(tok)
        if tok.kind in ("str", "num") or self.is_kw(tok, "null"):
            raise self.error(
                f"a literal ({self.describe(tok)}) on the left of a comparison is not supported "
                "(write the field first)",
                tok,
            )
        raise self.error(f"expected a condition but found {self.describe(tok)}", tok)

    def comparison(self, field_tok: _Tok) -> Node:
        name, optional, pos = str(field_tok.value), field_tok.optional, field_tok.pos
        op_tok = self.next()
        negate = False
        if self.is_kw(op_tok, "not") and self.is_kw(self.peek(), "in", "in~", "like", "like~"):
            negate, op_tok = True, self.next()
        if self.is_op(op_tok, "==", "!="):
            value = self.literal()
            if op_tok.value == "!=" and value is None:
                # `field != null` is Elasticsearch's exists query.
                return Not(Compare(name, "==", (None,), optional, pos))
            return Compare(name, op_tok.value, (value,), optional, pos)
        if self.is_op(op_tok, ":"):
            return Compare(name, ":", self.patterns(":"), optional, pos)
        if self.is_kw(op_tok, "like", "like~"):
            node: Node = Compare(name, op_tok.value, self.patterns(op_tok.value), optional, pos)
            return Not(node) if negate else node
        if self.is_kw(op_tok, "in", "in~"):
            values = self.literal_list(op_tok.value)
            if op_tok.value == "in~" and not all(isinstance(v, str) for v in values):
                raise self.error("'in~' takes string values only", op_tok)
            node = Compare(name, op_tok.value, values, optional, pos)
            return Not(node) if negate else node
        if self.is_op(op_tok, "<", "<=", ">", ">="):
            raise self.error(f"unsupported construct 'range comparison {op_tok.value}'", op_tok)
        if self.is_op(op_tok, "="):
            raise self.error("unsupported operator '=' (use '==' or ':')", op_tok)
        if self.is_op(op_tok, "+", "-", "*", "/", "%"):
            raise self.error(f"unsupported construct 'arithmetic {op_tok.value}'", op_tok)
        if self.is_op(op_tok, "["):
            raise self.error("unsupported construct 'array index []'", op_tok)
        self.refuse_unsupported(op_tok)
        if self.is_kw(op_tok, "and", "or") or op_tok.kind == "eof" or self.is_op(op_tok, ")"):
            raise self.error(f"bare field '{name}' is not a condition (expected a comparison)", field_tok)
        raise self.error(f"expected a comparison operator but found {self.describe(op_tok)}", op_tok)

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "str":
            return str(tok.value)
        if tok.kind == "num":
            value: int | float = tok.value
            return value
        if self.is_op(tok, "-") and self.peek().kind == "num":
            number: int | float = self.next().value
            return -number
        if self.is_kw(tok, "true", "false"):
            return bool(tok.value == "true")
        if self.is_kw(tok, "null"):
            return None
        if tok.kind == "ident":
            if self.is_op(self.peek(), "("):
                raise self.error(f"function calls ('{tok.value}(...)') are not supported", tok)
            raise self.error(f"unsupported construct 'field-to-field comparison with {tok.value}'", tok)
        self.refuse_unsupported(tok)
        raise self.error(f"expected a value but found {self.describe(tok)}", tok)

    def literal_list(self, op: str) -> tuple[Literal, ...]:
        self.expect_op("(", f"'(' after '{op}'")
        values = [self.literal()]
        while self.is_op(self.peek(), ","):
            self.next()
            values.append(self.literal())
        self.expect_op(")", "',' or ')'")
        return tuple(values)

    def patterns(self, op: str) -> tuple[str, ...]:
        if self.is_op(self.peek(), "("):
            open_tok = self.next()
            self.i -= 1
            values = self.literal_list(op)
        else:
            open_tok = self.peek()
            values = (self.literal(),)
        for v in values:
            if not isinstance(v, str):
                raise self.error(f"'{op}' needs string patterns, not {v!r}", open_tok)
        return tuple(str(v) for v in values)


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


def _compile_patterns(patterns: Iterable[str], insensitive: bool, wildcards: bool) -> re.Pattern[str]:
    # An alternation under fullmatch tries each alternative from position 0 only: still linear.
    alts = sorted({_pattern_regex(p, insensitive, wildcards) for p in patterns})
    body = alts[0] if len(alts) == 1 else "|".join(f"(?:{a})" for a in alts)
    return re.compile(body, re.DOTALL)


_wildcard_cache: dict[str, re.Pattern[str]] = {}


def wildcard_match(pattern: str, value: str) -> bool:
    """`value : pattern` for one string value: ASCII case-insensitive, `*` and `?` wildcards."""
    rx = _wildcard_cache.get(pattern)
    if rx is None:
        rx = _compile_patterns((pattern,), insensitive=True, wildcards=True)
        if len(_wildcard_cache) < 4096:
            _wildcard_cache[pattern] = rx
    return rx.fullmatch(value) is not None


# ------------------------------------------------------------------------------------------ field access


# One reader for every part of the detector: see detector/fields.py.
get_values = values
_as_values = flatten


# ------------------------------------------------------------------------------------------ evaluation


def _keyword(v: Any) -> str | None:
    """The keyword (string) form Elasticsearch would index for a scalar; None for objects."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return None if math.isnan(f) else f
    return None


ValuePred = Callable[[Any], bool]


def _scalar_pred(cmp: Compare) -> tuple[ValuePred, re.Pattern[str] | None, frozenset[str] | None]:
    """A predicate over one non-null scalar value, plus a regex or string set usable as a str fast path."""
    op = cmp.op
    if op in (":", "like", "like~", "in~"):
        rx = _compile_patterns((str(v) for v in cmp.values), insensitive=op != "like", wildcards=op != "in~")
        fm = rx.fullmatch

        def match_pattern(v: Any) -> bool:
            s = _keyword(v)
            return s is not None and fm(s) is not None

        return match_pattern, rx, None
    # ==, != and in: exact comparison against each literal.
    strings = frozenset(v for v in cmp.values if isinstance(v, str))
    all_strings = all(isinstance(v, str) for v in cmp.values)
    bools = frozenset(v for v in cmp.values if isinstance(v, bool))
    numbers = frozenset(float(v) for v in cmp.values if isinstance(v, int | float) and not isinstance(v, bool))

    def match_exact(v: Any) -> bool:
        if isinstance(v, str):
            if v in strings:
                return True
            if bools and v in ("true", "false") and (v == "true") in bools:
                return True
            if numbers:
                n = _number(v)
                return n is not None and n in numbers
            return False
        if isinstance(v, bool):
            return v in bools or ("true" if v else "false") in strings
        if isinstance(v, int | float):
            if float(v) in numbers:
                return True
            return any(_number(s) == float(v) for s in strings)
        return False

    # The str fast path (`v in strings`) is only equivalent when every literal is a string.
    return match_exact, None, strings if all_strings else None


def _values_pred(cmp: Compare) -> tuple[ValuePred, re.Pattern[str] | None, frozenset[str] | None, bool]:
    """A predicate over the raw value found at the field (None, scalar or list).

    Returns (pred, regex, strings, negated). For a plain str value the fast path is `regex.fullmatch`
    or `in strings`, negated for `!=`.
    """
    if cmp.values == (None,):
        if cmp.op != "==":
            raise AssertionError("null is only compared with ==")  # parser guarantees

        def is_null(raw: Any) -> bool:
            return not _as_values(raw)

        return is_null, None, None, False
    scalar, rx, strings = _scalar_pred(cmp)
    if cmp.op == "!=":

        def differs(raw: Any) -> bool:
            vals = _as_values(raw)
            return bool(vals) and not any(scalar(v) for v in vals)

        return differs, rx, strings, True

    def any_match(raw: Any) -> bool:
        if raw is None:
            return False
        if isinstance(raw, list):
            return any(scalar(v) for v in _as_values(raw))
        return scalar(raw)

    return any_match, rx, strings, False


class _CodeGen:
    """Turns the AST into one Python function so `matches` costs one call plus one per comparison."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"get_values": get_values}
        self.defs: list[str] = []
        self.n = 0

    def name(self, prefix: str, obj: Any) -> str:
        self.n += 1
        key = f"_{prefix}{self.n}"
        self.ns[key] = obj
        return key

    def expr(self, node: Node) -> str:
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child)})"
        if isinstance(node, And):
            return "(" + " and ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.expr(c) for c in node.children) + ")"
        return self.leaf(node) + "(ev)"

    def leaf(self, cmp: Compare) -> str:
        pred, rx, strings, negated = _values_pred(cmp)
        p = self.name("p", pred)
        fn = f"_t{self.n}"
        if rx is not None:
            fast = f"{self.name('r', rx.fullmatch)}({{0}}) is {'' if negated else 'not '}None"
        elif strings is not None and len(strings) == 1 and not negated:
            fast = "{0} == " + repr(next(iter(strings))).replace("{", "{{").replace("}", "}}")
        elif strings is not None:
            fast = f"{{0}} {'not in' if negated else 'in'} {self.name('s', strings)}"
        else:
            fast = ""
        # A str value found on the plain nested path is the common case: test it inline. Anything
        # unusual (dotted keys, lists on the path, non-str values) goes through get_values.
        parts = cmp.field.split(".")
        lines = [f"def {fn}(ev):"]
        slow = f"{p}(get_values(ev, {cmp.field!r}))"
        indent = "    "
        for depth, part in enumerate(parts):
            var = "ev" if depth == 0 else f"d{depth}"
            dotted = [".".join(parts[depth:k]) for k in range(depth + 2, len(parts) + 1)]
            for key in dotted:
                lines.append(f"{indent}if {key!r} in {var}: return {slow}")
            if depth == len(parts) - 1:
                lines.append(f"{indent}v = {var}.get({part!r})")
            else:
                nxt = f"d{depth + 1}"
                lines.append(f"{indent}{nxt} = {var}.get({part!r})")
                lines.append(f"{indent}if {nxt}.__class__ is not dict:")
                lines.append(f"{indent}    if {nxt} is None: return {p}(None)")
                lines.append(f"{indent}    return {slow}")
        if fast:
            lines.append(f"{indent}if v.__class__ is str: return {fast.format('v')}")
            if not negated:
                # ECS keeps event.category/type as lists of strings: loop here rather than in `p`.
                lines += [
                    f"{indent}if v.__class__ is list:",
                    f"{indent}    for x in v:",
                    f"{indent}        if x.__class__ is str:",
                    f"{indent}            if {fast.format('x')}: return True",
                    f"{indent}        elif {p}(x): return True",
                    f"{indent}    return False",
                ]
        lines.append(f"{indent}return {p}(v)")
        self.defs.append("\n".join(lines))
        return fn

    def build(self, category: str, node: Node) -> Callable[[Mapping[str, Any]], bool]:
        body = self.expr(node)
        if category != "any":
            cat = self.leaf(Compare("event.category", "==", (category,)))
            body = f"{cat}(ev) and {body}"
        src = "\n\n".join([*self.defs, f"def _match(ev):\n    return bool({body})"])
        exec(compile(src, "<eql>", "exec"), self.ns)  # only repr()'d literals and generated names
        fn: Callable[[Mapping[str, Any]], bool] = self.ns["_match"]
        return fn


def _fields(node: Node, out: set[str]) -> None:
    if isinstance(node, Compare):
        out.add(node.field)
    elif isinstance(node, Not):
        _fields(node.child, out)
    elif isinstance(node, And | Or):
        for c in node.children:
            _fields(c, out)


@dataclass(frozen=True)
class CompiledQuery:
    text: str
    category: str
    ast: Node
    fields: frozenset[str]
    _predicate: Callable[[Mapping[str, Any]], bool] | None = dc_field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._predicate is None:
            object.__setattr__(self, "_predicate", _CodeGen().build(self.category, self.ast))

    def __reduce__(self) -> tuple[Callable[[str], CompiledQuery], tuple[str]]:
        # The generated predicate cannot be pickled; recompiling the text rebuilds it.
        return compile_query, (self.text,)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True if the event matches; events that are not plain dicts take the generic path."""
        if event.__class__ is not dict:
            event = _to_dict(event)
        return self._predicate(event)  # type: ignore[misc]  # set in __post_init__


def _to_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dict(v) for v in value]
    return value


def compile_query(text: str) -> CompiledQuery:
    """Parse and compile an EQL query; raises EqlError for anything outside the supported subset."""
    category, node = _Parser(text).query()
    names: set[str] = set()
    _fields(node, names)
    if category != "any":
        names.add("event.category")
    predicate = _CodeGen().build(category, node)
    return CompiledQuery(text, category, node, frozenset(names), predicate)
