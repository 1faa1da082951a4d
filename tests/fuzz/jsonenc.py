"""A JSON writer that can say what orjson and the json module refuse to write.

Hostile records need literals no well-behaved encoder emits: integers beyond 64 bits (orjson.dumps
raises), NaN and Infinity, numbers that overflow a double, duplicate keys, unpaired UTF-16
surrogate escapes and gratuitous `\\u00XX` escapes of plain ASCII. `Lit` and `Pairs` carry those
through a document tree; `encode` writes the tree.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["BOM", "Lit", "Pairs", "decode_lenient", "encode", "escaped_string"]

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Lit:
    """JSON text written verbatim (NaN, 1e400, a 30-digit integer, a hand-escaped string...)."""

    text: str


class Pairs(list[tuple[str, Any]]):
    """An object written pair by pair, in order, duplicate keys included."""


def escaped_string(value: str, every: int = 1) -> Lit:
    """`value` as a JSON string with every `every`-th character written as a `\\uXXXX` escape.

    Escaping letters is legal JSON that a byte-level needle search cannot see through unaided.
    """
    out = ['"']
    for i, ch in enumerate(value):
        code = ord(ch)
        if i % every == 0 and code < 0x10000:
            out.append(f"\\u{code:04x}")
        elif ch in '"\\' or code < 0x20:
            out.append(json.dumps(ch)[1:-1])
        else:
            out.append(ch)
    out.append('"')
    return Lit("".join(out))


def _string(value: str, ascii_only: bool) -> str:
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be written as UTF-8; its escape form is what real encoders emit.
        text = json.dumps(value, ensure_ascii=True)
    return text


def _write(value: Any, ascii_only: bool, out: list[str]) -> None:
    if isinstance(value, Lit):
        out.append(value.text)
    elif isinstance(value, str):
        out.append(_string(value, ascii_only))
    elif value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(str(value))  # any size: a JSON number has no width
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else json.dumps(value))
    elif isinstance(value, Pairs | dict):
        items = value if isinstance(value, Pairs) else value.items()
        out.append("{")
        for n, (key, item) in enumerate(items):
            if n:
                out.append(",")
            out.append(key.text if isinstance(key, Lit) else _string(str(key), ascii_only))
            out.append(":")
            _write(item, ascii_only, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _write(item, ascii_only, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


@contextmanager
def _deep_stack() -> Iterator[None]:
    """Room for documents nested up to Elasticsearch's 1000 levels and beyond: the writer and the
    reader here recurse once per level. Restored on exit, so the core under test never runs with it."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def encode(value: Any, *, ascii_only: bool = False) -> bytes:
    out: list[str] = []
    with _deep_stack():
        _write(value, ascii_only, out)
    # surrogatepass: a Lit may hold raw surrogates on purpose (CESU-8 style invalid UTF-8).
    return "".join(out).encode("utf-8", "surrogatepass")


def _keep_pairs(pairs: list[tuple[str, Any]]) -> Pairs:
    return Pairs(pairs)


def decode_lenient(raw: bytes) -> tuple[bytes, Any] | None:
    """(prefix, tree) for JSON text that `encode(tree)` writes back equivalently, or None.

    Keeps what the minimiser must not lose: a leading BOM, duplicate keys (as Pairs), NaN/Infinity
    and the exact spelling of every non-integer number (as Lit), lone surrogate escapes (in str).
    """
    prefix = BOM if raw.startswith(BOM) else b""
    try:
        text = raw[len(prefix) :].decode("utf-8")
        with _deep_stack():
            tree = json.loads(text, object_pairs_hook=_keep_pairs, parse_constant=Lit, parse_float=Lit)
    except (ValueError, RecursionError):
        return None
    return prefix, tree
