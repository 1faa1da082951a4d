"""Code generation: the AST -> one Python predicate over an event, and the per-value tests it calls.

Fields are read through detector/fields.py, the one field reader every part of the detector uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from detector.fields import flatten, values
from detector.rules.eql.ast import And, Compare, Const, Node, Not, Or
from detector.rules.eql.parser import Parser
from detector.rules.eql.text import compile_patterns

__all__ = ["CompiledQuery", "compile_query", "get_values"]

# One reader for every part of the detector: see detector/fields.py.
get_values = values


# ----------------------------------------------------------------------------------- per-value tests


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
        rx = compile_patterns((str(v) for v in cmp.values), insensitive=op != "like", wildcards=op != "in~")
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
            return not flatten(raw)

        return is_null, None, None, False
    scalar, rx, strings = _scalar_pred(cmp)
    if cmp.op == "!=":

        def differs(raw: Any) -> bool:
            vals = flatten(raw)
            return bool(vals) and not any(scalar(v) for v in vals)

        return differs, rx, strings, True

    def any_match(raw: Any) -> bool:
        if raw is None:
            return False
        if isinstance(raw, list):
            return any(scalar(v) for v in flatten(raw))
        return scalar(raw)

    return any_match, rx, strings, False


# ----------------------------------------------------------------------------------- code generation


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


# ---------------------------------------------------------------------------------- the compiled query


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
    category, node = Parser(text).query()
    names: set[str] = set()
    _fields(node, names)
    if category != "any":
        names.add("event.category")
    predicate = _CodeGen().build(category, node)
    return CompiledQuery(text, category, node, frozenset(names), predicate)
