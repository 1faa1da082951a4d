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

One module per concern, each importing only those before it: `errors` (EqlError), `ast` (node types),
`text` (string escapes, ASCII case folding, wildcards), `lexer` (tokens), `parser` (tokens -> AST),
`compiler` (AST -> predicate; fields read through detector/fields.py).
"""

from __future__ import annotations

from detector.rules.eql.ast import And, Compare, Const, Literal, Node, Not, Or
from detector.rules.eql.compiler import CompiledQuery, compile_query, get_values
from detector.rules.eql.errors import EqlError
from detector.rules.eql.text import wildcard_match

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
