"""Hostile records from a `random.Random`: mutated synth records, byte-level damage, random JSON.

The mutations start from realistic records of every source (tools.synth), mostly positives, so a
hostile value lands in a record that is still detected, normalised and often still matches: that is
what reaches alert building and serialisation, where a plain random document never gets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from tests.fuzz.jsonenc import BOM, Lit, Pairs, encode, escaped_string
from tools import synth

__all__ = [
    "GENERATORS",
    "Seed",
    "byte_mutation",
    "hostile_value",
    "mutate_tree",
    "paths",
    "random_bytes",
    "random_json",
    "seeds",
    "structured_mutation",
    "sweep",
    "sweep_seeds",
]

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Seed:
    source: str
    kind: str
    variant: str
    raw: bytes
    doc: dict[str, Any]


@cache
def seeds() -> tuple[Seed, ...]:
    """Per source every positive variant, plus some near-misses and benign records (deterministic)."""
    out: list[Seed] = []
    for n, source in enumerate(synth.SOURCE_NAMES):
        for g in synth.generate_exact(source, seed=1000 + n, benign=3, positive=10, near_miss=6, malformed=0):
            out.append(Seed(source, g.kind, g.variant, g.raw, orjson.loads(g.raw)))
    return tuple(out)


@cache
def _positives() -> tuple[Seed, ...]:
    return tuple(s for s in seeds() if s.kind == "positive")


@cache
def _vocabulary() -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Every key and scalar value the seeds use: random JSON built from them trips the source detectors."""
    keys: set[str] = set()
    values: set[Any] = set()
    stack: list[Any] = [s.doc for s in seeds()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and len(node) < 200:
            values.add(node)
    return tuple(sorted(keys)), tuple(sorted(values))


# ----------------------------------------------------------------------------------------- values

HUGE_INTS = (2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**20, -(10**30), 2**128, 10**300)
FLOATS = (0.5, -1.5, 4242.0, 1e16, 1e19, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 9007199254740993.0)
LITERALS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1E+999",
    "123456789012345678901234567890",
    "-0",
    "0.0000000000000000000000001",
    "1e-400",
    "18446744073709551616.0",
    "4242e0",
)
# Each sends a record to the engine's lenient parse (orjson refuses it, Elasticsearch reads it).
LENIENT_TRIGGERS: tuple[Any, ...] = ("\ud800", "\udc00x", "a\udbff\ud800b", Lit("1e400"), Lit("-1" + "0" * 400))
STRINGS = (
    "",
    "-",
    " ",
    "0",
    "-1",
    " 42 ",
    "0x1A",
    "0xFFFFFFFFFFFFFFFFFFFFFFFF",
    "99999999999999999999999999",
    "-99999999999999999999999999",
    "1e5",
    "NaN",
    "Infinity",
    "true",
    "null",
    "\ud800",
    "\udfff",
    "a\ud800b",
    "\x00",
    "\x00client32.exe",
    "client32.exe",
    "CLIENT32.EXE",
    "C:\\Users\\alice\\AppData\\Roaming\\nsm\\client32.exe",
    "\\Device\\HarddiskVolume3\\ProgramData\\x\\client32.exe",
    "C:\\Users\\\ud800\\client32.exe",
    "corp\\alice",
    "\\",
    "\\\\",
    "Win",
    "Mac",
    "windows",
    "start",
    "end",
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "2026-11-20T10:00:00+99:99",
    "2026-02-30T10:00:00Z",
    "2026-11-20 10:00:00.1234567890123",
    "1795161600201",
    "-62135596800001",
    "253402300800000",
    "99999999999999999999",
    "\u0130\u212a\u00df\ufb03",
    "\U0001f600",
    "\ufeff",
    "\u2028\u2029",
    "%s%n{0}${jndi:x}",
)


def _long_string(rng: random.Random) -> str:
    size = rng.choice((300, 5_000, 70_000, 200_000))
    unit = rng.choice(("A", "client32.exe\\", "\\", "é", "\U0001f600", '"', "\x01"))
    return (unit * (size // len(unit) + 1))[:size]


def _nested(rng: random.Random, depth: int) -> Any:
    value: Any = rng.choice((1, "x", None, "client32.exe"))
    for _ in range(depth):
        value = {"a": value} if rng.random() < 0.5 else [value]
    return value


def _deep_literal(rng: random.Random) -> Lit:
    depth = rng.choice((100, 254, 255, 256, 300, 500, 900, 990, 999, 1023, 1024, 1025, 3000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    # The innermost value may itself need the lenient parse (a surrogate, a number beyond a double).
    inner = rng.choice(("1", "1", '"x"', '"\\ud800"', "1e400"))
    return Lit(opener * depth + inner + closer * depth)


def hostile_value(rng: random.Random, original: Any = None) -> Any:
    """A value of some type a normaliser may not expect at this spot."""
    roll = rng.randrange(15)
    if roll == 0:
        return rng.choice(HUGE_INTS) * rng.choice((1, -1))
    if roll == 1:
        return rng.choice((0, 1, -1, 4242, rng.randint(-(2**40), 2**40)))
    if roll == 2:
        return rng.choice(FLOATS)
    if roll == 3:
        return Lit(rng.choice(LITERALS))
    if roll == 4:
        return rng.choice((True, False, None))
    if roll == 5:
        return rng.choice(STRINGS)
    if roll == 6:
        return _long_string(rng)
    if roll == 7:
        inner = original if original is not None else rng.choice(STRINGS)
        return rng.choice(([], [inner], [inner, inner], [None], [[inner]], [1, "a", None, {}]))
    if roll == 8:
        return rng.choice(({}, {"a": original}, {"name": "client32.exe"}, {"": None}, {"0": [1]}))
    if roll == 9:
        return _nested(rng, rng.choice((2, 10, 60, 200)))
    if roll == 10:
        return _deep_literal(rng)
    if roll == 11 and isinstance(original, str):
        # the same text under another type, or escaped letter by letter
        if original.strip().lstrip("-").isdigit():
            return int(original)
        return escaped_string(original, rng.choice((1, 2, 5)))
    if roll == 12 and isinstance(original, int | float) and not isinstance(original, bool):
        return rng.choice((str(original), str(original) + "0" * 25, float(original), [original], -original))
    if roll == 13 and isinstance(original, str):
        return rng.choice((original * 3, original + "\ud800", "\ud800" + original, original.upper(), original + "\x00"))
    return rng.choice((original, "client32.exe", 2**64, Lit("NaN"), None))


# ------------------------------------------------------------------------------------ tree mutation


def paths(doc: Any) -> list[Path]:
    """Every node's path below the root, containers included."""
    out: list[Path] = []
    stack: list[tuple[Any, Path]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Pairs):
            continue  # already holds a duplicate key: left as it is, its pairs are not paths
        if isinstance(node, dict):
            for key, child in node.items():
                out.append((*path, key))
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                out.append((*path, i))
                stack.append((child, (*path, i)))
    return out


def _parent(doc: Any, path: Path) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def mutate_tree(doc: Any, path: Path, op: str, value: Any) -> Any:
    """Apply one mutation at `path` (the tree is modified and returned; pass a copy)."""
    parent = _parent(doc, path)
    key = path[-1]
    if not isinstance(parent, dict | list) or (isinstance(parent, list) and not isinstance(key, int)):
        return doc
    if op == "replace":
        parent[key] = value  # type: ignore[index]
    elif op == "delete":
        del parent[key]  # type: ignore[arg-type]
    elif op == "wrap":
        parent[key] = [parent[key]]  # type: ignore[index]
    elif op == "duplicate" and isinstance(parent, dict) and isinstance(key, str):
        # The same key twice: orjson keeps the last, Elasticsearch refuses, a normaliser sees one.
        pairs = Pairs(parent.items())
        pairs.append((key, value))
        if len(path) == 1:
            return pairs
        grand = _parent(doc, path[:-1])
        grand[path[-2]] = pairs
    elif op == "flatten" and isinstance(parent, dict) and isinstance(key, str) and len(path) >= 2:
        # {"process": {"name": x}} -> {"process.name": x}: Elasticsearch treats both alike.
        grand = _parent(doc, path[:-1])
        if isinstance(grand, dict) and isinstance(path[-2], str):
            grand[f"{path[-2]}.{key}"] = parent.pop(key)
    return doc


def structured_mutation(rng: random.Random) -> bytes:
    """A synth record (mostly a positive) with one to four fields given hostile values, then encoded."""
    pool = _positives() if rng.random() < 0.8 else seeds()
    seed = rng.choice(pool)
    doc: Any = orjson.loads(seed.raw)  # a fresh tree, faster than deepcopy
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        candidates = paths(doc) if isinstance(doc, dict) else []
        if not candidates:
            break
        path = rng.choice(candidates)
        op = rng.choice(("replace",) * 8 + ("delete", "wrap", "duplicate", "flatten"))
        try:
            original = _parent(doc, path)[path[-1]]
        except (KeyError, IndexError, TypeError):
            original = None
        doc = mutate_tree(doc, path, op, hostile_value(rng, original))
    if rng.random() < 0.2:
        # A record orjson refuses but Jackson reads goes through a second, lenient parser: give that
        # parser the same hostile values as the first by adding what sends a record there.
        trigger = rng.choice(LENIENT_TRIGGERS)
        if isinstance(doc, Pairs):
            doc.append(("x.fuzz", trigger))
        elif isinstance(doc, dict):
            doc["x.fuzz" if rng.random() < 0.5 else next(iter(doc), "x")] = trigger
    return _frame(rng, encode(doc, ascii_only=rng.random() < 0.1))


def _frame(rng: random.Random, raw: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return BOM + raw
    if roll < 0.08:
        return raw + b"\n"
    if roll < 0.10:
        return b" \t" + raw + b"\r\n"
    return raw


# ------------------------------------------------------------------------------------ byte mutation

_ESCAPES = (
    b"\\ud800",
    b"\\udfff",
    b"\\ud800\\ud800",
    b"\\udc00\\ud800",
    b"\\u0000",
    b"\\u0063",
    b"\\u0043",
    b"\\u005c",
    b"\\u0022",
    b"\\\\",
    b'\\"',
    b"\\x41",
    b"\\u12",
)
_INTERESTING = (
    b'"',
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\n",
    b"\r",
)
_NUMBERS = (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1e308", b"99999999999999999999999", b"-0", b"1.5")


def _byte_op(rng: random.Random, data: bytearray, other: bytes) -> None:
    n = len(data)
    at = rng.randrange(n + 1)
    op = rng.randrange(11)
    if op == 0 and n:  # bit flip
        i = rng.randrange(n)
        data[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncate
        del data[at:]
    elif op == 2:  # splice the tail of another record
        cut = rng.randrange(len(other) + 1)
        data[at:] = other[cut:]
    elif op == 3:
        data[at:at] = rng.choice(_ESCAPES)
    elif op == 4:
        data[at:at] = rng.choice(_INTERESTING)
    elif op == 5 and n:  # overwrite a byte with a structural one
        data[rng.randrange(n)] = rng.choice(_INTERESTING)[0]
    elif op == 6:  # a number literal where a digit run was
        digits = [i for i in range(n) if 48 <= data[i] <= 57]
        if digits:
            i = rng.choice(digits)
            j = i
            while j < n and 48 <= data[j] <= 57:
                j += 1
            data[i:j] = rng.choice(_NUMBERS)
    elif op == 7:  # duplicate a chunk (often a "key":value pair)
        j = min(n, at + rng.randint(1, 80))
        data[j:j] = data[at:j]
    elif op == 8:  # delete a chunk
        del data[at : at + rng.randint(1, 40)]
    elif op == 9:  # escape one needle letter: still client32 to the parser, not to a byte search
        low = bytes(data).lower()
        found = low.find(b"client32")
        if found >= 0:
            i = found + rng.randrange(8)
            data[i : i + 1] = b"\\u%04x" % data[i]
    else:
        data[0:0] = BOM


def byte_mutation(rng: random.Random) -> bytes:
    """A synth record's bytes after one to five bit flips, truncations, splices or inserted escapes."""
    pool = seeds()
    base = rng.choice(_positives() if rng.random() < 0.7 else pool).raw
    other = rng.choice(pool).raw
    data = bytearray(base)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        _byte_op(rng, data, other)
    return bytes(data)


def random_bytes(rng: random.Random) -> bytes:
    """Noise, sometimes framed like an object and carrying the needle so the parser must look."""
    body = rng.randbytes(rng.choice((0, 1, 2, 8, 64, 512)))
    roll = rng.random()
    if roll < 0.3:
        return b"{" + body + b"client32" + body[:8] + b"}"
    if roll < 0.4:
        return BOM + b"{" + body + b"}"
    return body


def _random_tree(rng: random.Random, keys: tuple[str, ...], values: tuple[Any, ...], depth: int) -> Any:
    roll = rng.random()
    if depth > 0 and roll < 0.35:
        return {rng.choice(keys): _random_tree(rng, keys, values, depth - 1) for _ in range(rng.randint(0, 6))}
    if depth > 0 and roll < 0.45:
        return [_random_tree(rng, keys, values, depth - 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.8:
        return rng.choice(values)
    return hostile_value(rng)


def random_json(rng: random.Random) -> bytes:
    """A random object over the seeds' keys and values: odd mixes that still look like some source."""
    keys, values = _vocabulary()
    doc = {rng.choice(keys): _random_tree(rng, keys, values, 4) for _ in range(rng.randint(1, 12))}
    # Dotted keys at the top are how several sources spell their markers (tgt.process.name, ...).
    if rng.random() < 0.5:
        doc[rng.choice(("process.name", "tgt.process.name", "process.pe.original_file_name"))] = "client32.exe"
    return _frame(rng, encode(doc, ascii_only=rng.random() < 0.1))


# One value of each type a normaliser may meet where it expects another ("orig" stands for the value found).
TYPE_SWAPS: tuple[Any, ...] = (
    0,
    2**64,
    -(2**63) - 1,
    1e308,
    0.5,
    True,
    None,
    [],
    ["orig"],
    {},
    {"a": "orig"},
    "A" * 70_000,
    "",
    "\ud800",
)


def _swap(value: Any, original: Any) -> Any:
    if value == ["orig"]:
        return [original]
    if value == {"a": "orig"}:
        return {"a": original}
    return value


def sweep_seeds(per_source: int = 10) -> list[int]:
    """Indices into `seeds()` of up to `per_source` positives of each source (all variants first)."""
    counts: dict[str, int] = {}
    chosen = []
    for i, seed in enumerate(seeds()):
        if seed.kind == "positive" and counts.get(seed.source, 0) < per_source:
            counts[seed.source] = counts.get(seed.source, 0) + 1
            chosen.append(i)
    return chosen


def sweep(
    seed_index: int, swaps: tuple[Any, ...] = TYPE_SWAPS, start: int = 0, stop: int | None = None
) -> Iterator[tuple[str, bytes]]:
    """Every path (from `start` to `stop`) of one seed given every value of `swaps` in turn: (label, record).

    The random mutations reach each path eventually; this reaches each one for sure, in a known order.
    """
    seed = seeds()[seed_index]
    for path in paths(seed.doc)[start:stop]:
        for value in swaps:
            doc = orjson.loads(seed.raw)
            original = _parent(doc, path)[path[-1]]
            mutate_tree(doc, path, "replace", _swap(value, original))
            yield f"{seed.source}/{seed.variant} {'.'.join(map(str, path))} = {_label(value)}", encode(doc)


def _label(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} chars)"


GENERATORS: dict[str, tuple[float, Callable[[random.Random], bytes]]] = {
    "structured": (0.55, structured_mutation),
    "bytes": (0.25, byte_mutation),
    "json": (0.15, random_json),
    "noise": (0.05, random_bytes),
}
