"""The parser: tokens -> (event category, AST) for the single-event subset, refusing the rest by name."""

from __future__ import annotations

from detector.rules.eql.ast import And, Compare, Const, Literal, Node, Not, Or
from detector.rules.eql.errors import EqlError
from detector.rules.eql.lexer import Token, tokenize

__all__ = ["Parser"]

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


class Parser:
    """Recursive descent over the whole token list; `query()` is the entry point."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: Token) -> EqlError:
        return EqlError(message, self.text, tok.pos)

    def is_op(self, tok: Token, *ops: str) -> bool:
        return tok.kind == "op" and tok.value in ops

    def is_kw(self, tok: Token, *words: str) -> bool:
        return tok.kind == "kw" and tok.value in words

    def expect_op(self, op: str, what: str) -> Token:
        tok = self.next()
        if not self.is_op(tok, op):
            raise self.error(f"expected {what} but found {self.describe(tok)}", tok)
        return tok

    def describe(self, tok: Token) -> str:
        if tok.kind == "eof":
            return "end of query"
        if tok.kind == "str":
            return f"string {tok.value!r}"
        return f"{tok.value!r}"

    def refuse_unsupported(self, tok: Token) -> None:
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

    def comparison(self, field_tok: Token) -> Node:
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
