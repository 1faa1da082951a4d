"""Findings: shrinking a failing input while it still fails the same way, and the corpus that keeps them.

The corpus is one `<slug>.raw` file per finding (the exact bytes, which may be invalid UTF-8; gzipped as
`<slug>.raw.gz` when larger than 16 KiB) and
`index.json`, which says for each file which invariant it broke and how, so that a later run can tell
an open finding from a fixed one and a new bug from a known one.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.fuzz.invariants import AUTO, Checker, Failure
from tests.fuzz.jsonenc import Lit, Pairs, decode_lenient, encode

__all__ = ["CORPUS_DIR", "Entry", "corpus_files", "load_index", "minimise", "read_input", "save_finding", "write_input"]

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
GZIP_ABOVE = 16 * 1024
INDEX = "index.json"


@dataclass(frozen=True, slots=True)
class Entry:
    file: str
    signature: str
    invariant: str
    kind: str
    where: str
    pin: str
    detail: str
    found_by: str
    original_bytes: int


def corpus_files(directory: Path = CORPUS_DIR) -> list[Path]:
    return sorted([*directory.glob("*.raw"), *directory.glob("*.raw.gz")])


def read_input(path: Path) -> bytes:
    """A corpus file's bytes: findings that need size (a CPU budget is per byte) are stored gzipped."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def write_input(path: Path, raw: bytes) -> None:
    # mtime 0: the same input always gives the same file, so a rewrite leaves git nothing to see
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)


def load_index(directory: Path = CORPUS_DIR) -> dict[str, Entry]:
    path = directory / INDEX
    if not path.exists():
        return {}
    return {name: Entry(**fields) for name, fields in orjson.loads(path.read_bytes()).items()}


def _slug(failure: Failure) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", f"{failure.invariant}-{failure.kind}-{failure.where}".lower()).strip("-")
    digest = hashlib.sha256(failure.signature.encode()).hexdigest()[:8]
    return f"{words[:80].rstrip('-')}-{digest}"


def save_finding(
    raw: bytes, failure: Failure, found_by: str, original_bytes: int, directory: Path = CORPUS_DIR
) -> Path:
    """Write the input and its index entry; a signature seen again after a fix gets a fresh file."""
    directory.mkdir(parents=True, exist_ok=True)
    index = load_index(directory)
    base = _slug(failure)
    # Hostile input is repetitive: above 16 KiB it is kept gzipped.
    ext = ".raw.gz" if len(raw) > GZIP_ABOVE else ".raw"
    name, n = f"{base}{ext}", 2
    while (directory / name).exists():
        name, n = f"{base}-{n}{ext}", n + 1
    write_input(directory / name, raw)
    index[name] = Entry(
        file=name,
        signature=failure.signature,
        invariant=failure.invariant,
        kind=failure.kind,
        where=failure.where,
        pin=failure.pin,
        detail=failure.detail,
        found_by=found_by,
        original_bytes=original_bytes,
    )
    data = {k: asdict(v) for k, v in sorted(index.items())}
    (directory / INDEX).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    return directory / name


# ------------------------------------------------------------------------------------------ shrinking


class _Budget(Exception):
    pass


def minimise(raw: bytes, failure: Failure, checker: Checker, budget: int = 600) -> bytes:
    """A smaller input with the same failure signature: JSON keys and list items deleted one by one,
    long strings halved, then (for input that is not JSON) chunks of bytes deleted. Bounded by
    `budget` re-checks, so it stays cheap; whatever it reached by then is returned."""
    pins = [None if failure.pin == AUTO else failure.pin]
    # A CPU-time finding cut down to just over its budget would pass or fail with the machine; shrunk
    # only while it costs twice the budget, it keeps that margin (and is kept whole if it never had it).
    factor = 2.0 if failure.invariant == "bounded_cost" else 1.0
    calls = 0
    latest = raw  # every candidate that still fails is adopted by the shrinkers, so the last one is the best

    def still(candidate: bytes) -> bool:
        nonlocal calls, latest
        if calls >= budget:
            raise _Budget
        calls += 1
        if any(f.signature == failure.signature for f in checker.check(candidate, pins, factor)):
            latest = candidate
            return True
        return False

    try:
        decoded = decode_lenient(raw)
        if decoded is not None:
            prefix, tree = decoded
            for ascii_only in (False, True):
                if still(prefix + encode(tree, ascii_only=ascii_only)):
                    _shrink_tree(prefix, tree, ascii_only, still)
                    break
            else:
                decoded = None
        if decoded is None:
            _shrink_bytes(raw, still)
    except _Budget:
        pass
    return latest if len(latest) <= len(raw) else raw


def _slots(node: Any) -> list[Any]:
    """Deletable positions in a container, last first so a deletion leaves earlier positions valid."""
    if isinstance(node, Pairs | list):
        return list(range(len(node) - 1, -1, -1))
    if isinstance(node, dict):
        return list(reversed(node))
    return []


def _children(node: Any) -> list[Any]:
    if isinstance(node, Pairs):
        return [value for _, value in node]
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    return []


def _delete(node: Any, slot: Any) -> Callable[[], None]:
    """Delete `slot` from `node`; returns the undo."""
    if isinstance(node, list):  # list and Pairs
        item = node.pop(slot)
        return lambda: node.insert(slot, item)
    items = list(node.items())
    del node[slot]

    def undo() -> None:
        node.clear()
        node.update(items)

    return undo


def _shrink_tree(prefix: bytes, tree: Any, ascii_only: bool, still: Callable[[bytes], bool]) -> bytes:
    def render() -> bytes:
        return prefix + encode(tree, ascii_only=ascii_only)

    if prefix and still(encode(tree, ascii_only=ascii_only)):
        prefix = b""
    changed = True
    while changed:
        changed = False
        queue = [tree]
        while queue:  # breadth first: whole subtrees go before their leaves are tried one by one
            node = queue.pop(0)
            for slot in _slots(node):
                undo = _delete(node, slot)
                if still(render()):
                    changed = True
                else:
                    undo()
            queue.extend(_children(node))
    _shorten_depth(tree, render, still)
    _shorten_strings(tree, render, still)
    return render()


def _deepest_trail(tree: Any) -> list[tuple[Any, Any]]:
    """(container, slot) pairs from the root down to the most deeply nested container."""
    best: tuple[Any, ...] = ()
    best_depth = 0
    # Each entry links to its parent's entry: copying trails would cost depth squared.
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(tree, 0, ())]
    while stack:
        node, depth, link = stack.pop()
        if depth > best_depth:
            best, best_depth = link, depth
        for slot in _slots(node):
            child = _get(node, slot)
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (node, slot, link)))
    trail: list[tuple[Any, Any]] = []
    while best:
        node, slot, best = best
        trail.append((node, slot))
    return trail[::-1]


def _shorten_depth(tree: Any, render: Callable[[], bytes], still: Callable[[bytes], bool]) -> None:
    """Cut runs of single-child containers ({"a":{"a":...}}, [[...]]) while the failure remains:
    key deletion cannot shorten a chain, and a failure about depth keeps one of a thousand levels."""
    cut = 1 << 30
    shortened = False
    while cut >= 1:
        trail = _deepest_trail(tree)
        # the longest run of consecutive single-child containers below the root
        run_start, run_len, best_start, best_len = 0, 0, 0, 0
        for k in range(1, len(trail)):
            if len(trail[k][0]) == 1:
                run_start, run_len = (run_start, run_len + 1) if run_len else (k, 1)
                if run_len > best_len:
                    best_start, best_len = run_start, run_len
            else:
                run_len = 0
        cut = min(cut, best_len // 2)
        if cut < 1:
            break
        parent, slot = trail[best_start - 1]
        top, deeper = _get(parent, slot), trail[best_start + cut][0]
        _set(parent, slot, deeper)
        if still(render()):
            shortened = True
        else:
            _set(parent, slot, top)
            cut //= 2
    if shortened:
        _listify(tree, render, still)
        _deepen(tree, render, still)


def _listify(tree: Any, render: Callable[[], bytes], still: Callable[[bytes], bool]) -> None:
    """{"a":{"a":...}} costs six bytes a level, [[...]] two: try the cheaper spelling of a chain."""
    trail = _deepest_trail(tree)
    start = next((k for k in range(1, len(trail)) if isinstance(trail[k][0], dict) and len(trail[k][0]) == 1), 0)
    if not start:
        return
    end = start
    while end + 1 < len(trail) and isinstance(trail[end + 1][0], dict) and len(trail[end + 1][0]) == 1:
        end += 1
    parent, slot = trail[start - 1]
    top = _get(parent, slot)
    chain: Any = _get(*trail[end])
    for _ in range(end - start + 1):
        chain = [chain]
    _set(parent, slot, chain)
    if not still(render()):
        _set(parent, slot, top)


def _deepen(tree: Any, render: Callable[[], bytes], still: Callable[[bytes], bool], margin: int = 48) -> None:
    """Give a depth-bound failure some levels of margin back, when it still fails with them.

    Cut to the exact level where it starts, it would flip with the next frame a fix adds or removes.
    """
    trail = _deepest_trail(tree)
    if len(trail) < 8:
        return
    parent, slot = trail[-1]
    inner = _get(parent, slot)
    padded: Any = inner
    for _ in range(margin):
        padded = [padded] if isinstance(inner, list) else {"a": padded}
    _set(parent, slot, padded)
    if not still(render()):
        _set(parent, slot, inner)


def _shorten_strings(tree: Any, render: Callable[[], bytes], still: Callable[[bytes], bool]) -> None:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            slots: list[Any] = list(node)
        elif isinstance(node, list):  # list and Pairs
            slots = list(range(len(node)))
        else:
            continue
        for slot in slots:
            value = _get(node, slot)
            while isinstance(value, str) and len(value) > 32:
                half = len(value) // 2
                for shorter in (value[:half], value[half:]):  # what matters may sit at either end
                    _set(node, slot, shorter)
                    if still(render()):
                        value = shorter
                        break
                else:
                    _set(node, slot, value)
                    break
            if not isinstance(value, str | Lit):
                stack.append(value)


def _get(node: Any, slot: Any) -> Any:
    return node[slot][1] if isinstance(node, Pairs) else node[slot]


def _set(node: Any, slot: Any, value: Any) -> None:
    if isinstance(node, Pairs):
        node[slot] = (node[slot][0], value)
    else:
        node[slot] = value


def _shrink_bytes(data: bytes, still: Callable[[bytes], bool]) -> bytes:
    """Delete chunks, halving their size, while the failure remains (a bounded ddmin)."""
    chunk = max(1, len(data) // 2)
    while True:
        i = 0
        while i < len(data):
            candidate = data[:i] + data[i + chunk :]
            if candidate and still(candidate):
                data = candidate
            else:
                i += chunk
        if chunk == 1:
            return data
        chunk //= 2
