"""Reading raw records from files: NDJSON, gzipped NDJSON, JSON arrays, or `-` for stdin.

Each record is yielded as the bytes it had in the file, so the prefilter sees exactly what a Kafka
topic would carry and alert ids match between `detector scan` and the streaming worker.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

_GZIP_MAGIC = b"\x1f\x8b"


class InputError(Exception):
    """A file that cannot be read at all (missing, unreadable, not gzip although named so)."""


# (line number, record bytes). A tuple, not an object: this is the per-record hot path of `detector scan`.
# The bytes may keep their trailing newline; the engine and the alert ids ignore surrounding whitespace.
Line = tuple[int, bytes]
PROGRESS_EVERY = 4096  # lines between progress-bar updates: a tqdm call per line would cost more than a parse


def _open(path: str) -> tuple[BinaryIO, int]:
    """Open a file (or stdin) for binary reading; returns the stream and its size (0 if unknown)."""
    if path == "-":
        return sys.stdin.buffer, 0
    p = Path(path)
    try:
        size = p.stat().st_size
        fh: BinaryIO = p.open("rb")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"is a directory, not a file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return fh, size


def check_readable(paths: list[str]) -> None:
    """Fail fast, before any output, on a missing or unreadable input file."""
    for path in paths:
        if path != "-":
            fh, _ = _open(path)
            fh.close()


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def iter_records(path: str, progress: Callable[[int], object] | None = None) -> Iterator[Line]:
    """Yield (line number, bytes) for every non-blank record of `path`.

    `progress(n)` is told, now and then, of n more bytes read from the file on disk.
    """
    fh, _ = _open(path)
    name = display_name(path)
    try:
        head = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
        stream: BinaryIO = fh
        if head == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=_Counting(fh, progress), mode="rb")  # type: ignore[assignment]
            progress = None
        try:
            first = _first_byte(stream)
            if first == b"[":
                yield from _json_array(stream, progress)
                return
            pending = 0
            for lineno, line in enumerate(stream, start=1):
                if progress is not None:
                    pending += len(line)
                    if lineno % PROGRESS_EVERY == 0:
                        progress(pending)
                        pending = 0
                if not line.isspace():
                    yield lineno, line
            if progress is not None and pending:
                progress(pending)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"{name}: cannot decompress: {exc}") from None
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _first_byte(stream: BinaryIO) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is None:
        return b""
    data: bytes = peek(64)
    stripped = data.lstrip()
    return stripped[:1]


def _json_array(stream: BinaryIO, progress: Callable[[int], object] | None) -> Iterator[Line]:
    data = stream.read()
    if progress is not None:
        progress(len(data))
    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError:
        # Not a JSON array after all (an NDJSON file whose first line starts with '['): read it by lines
        # so each bad line is reported on its own.
        for lineno, line in enumerate(io.BytesIO(data), start=1):
            if not line.isspace():
                yield lineno, line
        return
    if not isinstance(items, list):
        yield 1, data
        return
    for i, item in enumerate(items, start=1):
        yield i, orjson.dumps(item)


class _Counting(io.RawIOBase):
    """Counts compressed bytes read, so the progress bar of a .gz file tracks the file on disk."""

    def __init__(self, inner: BinaryIO, progress: Callable[[int], object] | None) -> None:
        self._inner = inner
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        if self._progress is not None and n:
            self._progress(n)
        return n
