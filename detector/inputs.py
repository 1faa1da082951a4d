"""Reading raw records from files: NDJSON, gzipped NDJSON, JSON arrays, pretty-printed JSON, or `-` for stdin.

Each record is yielded as the bytes it had in the file, so the prefilter sees exactly what a Kafka
topic would carry and alert ids match between `detector scan` and the streaming worker.

Memory stays bounded whatever the input: data is read (and decompressed) a chunk at a time, and a
record longer than `max_record_bytes` is skipped without being held, then reported to `on_oversized`.
A file that breaks off part-way (a truncated or corrupt .gz, a JSON array never closed, a read error)
raises InputError only after every record before the damage has been yielded.

`iter_records` yields one record at a time. `iter_blocks` (the fast path of `detector scan`) yields the same
records, but the whole NDJSON lines of each chunk as one `Block`, so that the prefilter can search a
megabyte at once and Python touches only the lines it must parse (detector/engine.py `Engine.select`).
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from detector.engine import DEFAULT_MAX_RECORD_BYTES

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 1 << 20  # large enough that per-chunk Python work vanishes beside per-record work


class InputError(Exception):
    """A file that cannot be read (missing, unreadable), or that broke off part-way (truncated, corrupt)."""


# (line number, record bytes). A tuple, not an object: this is the per-record hot path of `detector scan`.
# The bytes carry no line end; a `\r` of a CRLF file stays (the engine and the alert ids ignore surrounding
# whitespace). In JSON arrays and pretty-printed files the number is the record's position, 1-based.
Line = tuple[int, bytes]
# Told (record number, size in bytes) of each record skipped for being over the size limit.
OnOversized = Callable[[int, int], object]


def _open(path: str) -> tuple[BinaryIO, int]:
    """Open a file (or stdin) for binary reading; returns the stream and its size (0 if unknown)."""
    if path == "-":
        # With `<&-` the interpreter starts with no stdin object at all.
        if sys.stdin is None:
            raise InputError("standard input is closed, nothing to read for '-'")
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
    """Fail fast, before any output, on a missing or unreadable input file or a closed stdin."""
    for path in paths:
        fh, _ = _open(path)
        if path != "-":
            fh.close()


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


class _Source:
    """The (decompressed) bytes of one input, a chunk at a time, remembering how far reading got.

    `done` is set by the splitters before each read, so damage found by that read can be located.
    """

    __slots__ = ("_eof", "_progress", "_read", "done", "lines", "offset")

    def __init__(self, read: Callable[[int], bytes], progress: Callable[[int], object] | None) -> None:
        self._read = read
        self._progress = progress
        self._eof = False
        self.offset = 0  # bytes delivered so far
        self.done = ""  # e.g. "12 complete lines": what was read before the next chunk
        self.lines = 0  # NDJSON lines read, told by the splitter at the end

    def read(self) -> bytes:
        if self._eof:  # a terminal would wait for a second Ctrl-D
            return b""
        data = self._read(CHUNK_BYTES)
        if not data:
            self._eof = True
        self.offset += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data


class _Inflate:
    """Reads decompressed chunks from a GzipFile without losing any data to damage.

    GzipFile.read(n) throws away what it had inflated for this call when the data turns out truncated or
    corrupt, and read1 hands back only what one 8 KiB compressed block inflates to; so gather read1 pieces
    and report the damage on the call after the last good bytes.
    """

    __slots__ = ("_error", "_gz")

    def __init__(self, gz: gzip.GzipFile) -> None:
        self._gz = gz
        self._error: BaseException | None = None

    def __call__(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        parts: list[bytes] = []
        got = 0
        while got < size:
            try:
                piece = self._gz.read1(size - got)
            except (OSError, EOFError, zlib.error) as exc:
                if not parts:
                    raise
                self._error = exc
                break
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def iter_records(
    path: str,
    progress: Callable[[int], object] | None = None,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    on_oversized: OnOversized | None = None,
) -> Iterator[Line]:
    """Yield (record number, bytes) for every non-blank record of `path`, none over `max_record_bytes`.

    Longer records are not yielded: `on_oversized(number, size)` is told of each (dropped silently without it).
    `progress(n)` is told, now and then, of n more bytes read from the file on disk.
    Raises InputError when the file cannot be opened, or, after the records before it, when it is damaged.
    """
    return _read(path, progress, max_record_bytes, on_oversized, _lines)


class Block:
    """Whole NDJSON lines `data[start:end]`, each ending with `\\n`, none over the size limit; the first is `first`.

    Lines that are blank or only whitespace are in the block as in the file (they are not records). A
    consumer that counts the block's lines may store the count in `lines` before asking for the next item;
    otherwise the reader counts them.
    """

    __slots__ = ("data", "end", "first", "lines", "start")

    def __init__(self, data: bytes, start: int, end: int, first: int) -> None:
        self.data = data
        self.start = start
        self.end = end
        self.first = first
        self.lines: int | None = None

    def records(self) -> list[Line]:
        """The block's records as `iter_records` yields them (for tests and slow paths)."""
        out: list[Line] = []
        for i, line in enumerate(self.data[self.start : self.end - 1].split(b"\n"), self.first):
            if line and not line.isspace():
                out.append((i, line))
        return out


def iter_blocks(
    path: str,
    progress: Callable[[int], object] | None = None,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    on_oversized: OnOversized | None = None,
) -> Iterator[Line | Block]:
    """`iter_records`, with runs of whole NDJSON lines given as Blocks instead of one record at a time.

    Expanding every Block with `Block.records()` gives exactly what `iter_records` yields, with the same
    oversized reports, damage and progress. JSON arrays and pretty-printed documents come one record at a
    time, as do the NDJSON lines that straddle two chunks and a last line without a newline.
    """
    return _read(path, progress, max_record_bytes, on_oversized, _blocks)


def ndjson_spans(
    path: str, parts: int, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> list[tuple[int, int]] | None:
    """Byte ranges, cut just after newlines, that split an uncompressed NDJSON file into about `parts` pieces.

    None when the file cannot be read that way: stdin, gzip, a JSON array or document, or too small to share.
    Reading each range with `iter_span` and numbering its lines after those of the ranges before it gives
    exactly what `iter_blocks` gives for the whole file.
    """
    if path == "-" or parts < 2:
        return None
    fh, size = _open(path)
    try:
        buffered = cast(io.BufferedReader, fh)
        if size < 2 * CHUNK_BYTES or buffered.peek(2)[:2] == _GZIP_MAGIC or not Path(path).is_file():
            return None
        src = _Source(buffered.read1, None)
        if _sniff(src, max_record_bytes)[1]:
            return None
        cuts = [0]
        for k in range(1, parts):
            at = max(k * size // parts, cuts[-1])
            fh.seek(at)
            while True:  # to the end of the line under `at`, a chunk at a time
                data = fh.read(CHUNK_BYTES)
                if not data:
                    at = size
                    break
                nl = data.find(b"\n")
                if nl >= 0:
                    at += nl + 1
                    break
                at += len(data)
            if at >= size:
                break
            if at > cuts[-1]:
                cuts.append(at)
        cuts.append(size)
        return list(itertools.pairwise(cuts))
    finally:
        fh.close()


def iter_span(
    path: str,
    start: int,
    stop: int,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    on_oversized: OnOversized | None = None,
    lines: Callable[[int], object] | None = None,
) -> Iterator[Line | Block]:
    """`iter_blocks` over bytes `start` to `stop` of an NDJSON file (a range of `ndjson_spans`), lines numbered from 1.

    `lines(n)` is told at the end how many lines the range holds (blank ones included). A read error inside the
    range is reported with the lines and bytes read from the range's start, not the file's.
    """
    fh, _ = _open(path)
    report = on_oversized if on_oversized is not None else _ignore
    try:
        fh.seek(start)
        left = stop - start

        def read(n: int) -> bytes:
            nonlocal left
            data = fh.read(min(n, left)) if left > 0 else b""
            left -= len(data)
            return data

        src = _Source(read, None)
        data = src.read()
        if start == 0 and data.startswith(_BOM):
            data = data[len(_BOM) :]
        try:
            yield from _blocks(src, data, max_record_bytes, report)
        except OSError as exc:
            raise InputError(f"{display_name(path)}: {_damage(exc)}; {_where(src)}") from None
        if lines is not None:
            lines(src.lines)
    finally:
        fh.close()


_Split = Callable[["_Source", bytes, int, OnOversized], Iterator[Any]]


def _read(
    path: str,
    progress: Callable[[int], object] | None,
    max_record_bytes: int,
    on_oversized: OnOversized | None,
    ndjson: _Split,
) -> Iterator[Any]:
    fh, _ = _open(path)
    name = display_name(path)
    report = on_oversized if on_oversized is not None else _ignore
    try:
        head = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
        if head == _GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=_Counting(fh, progress), mode="rb")
            src = _Source(_Inflate(gz), None)
        else:
            # read1: a pipe's data is handed on as it arrives instead of after a whole chunk has gathered.
            src = _Source(getattr(fh, "read1", fh.read), progress)
        try:
            data, as_json = _sniff(src, max_record_bytes)
            if as_json:
                yield from _json_values(src, data, max_record_bytes, report)
            else:
                yield from ndjson(src, data, max_record_bytes, report)
        except _Unclosed as exc:
            raise InputError(
                f"{name}: ends inside a JSON array (after element {exc.count:,}, no closing ']'): the file looks "
                "truncated; the elements before the end were read"
            ) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{name}: {_damage(exc)}; {_where(src)}") from None
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _ignore(number: int, size: int) -> None:
    return None


def _damage(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated: the compressed data ends before its end-of-stream marker"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt compressed data ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"read error ({exc.strerror})"
    return f"read error ({exc})"


def _where(src: _Source) -> str:
    # Reading stopped at `offset`; the damage lies within the chunk that was being read there.
    return (
        f"found after {src.done} ({src.offset:,} bytes of data); the records before it were read, the rest of "
        "the file was not"
    )


class _Unclosed(Exception):
    def __init__(self, count: int) -> None:
        self.count = count


# ---------------------------------------------------------------------------------------------------------------
# Which shape is the file? NDJSON unless its start shows a JSON array or a JSON document spread over lines.

# Every pattern given to _matcher matches the empty string, so its match() never returns None.
_Matcher = Callable[[bytes, int], "re.Match[bytes]"]


def _matcher(pattern: bytes) -> _Matcher:
    return cast(_Matcher, re.compile(pattern).match)


_ws = _matcher(rb"[ \t\r\n]*+")


def _sniff(src: _Source, limit: int) -> tuple[bytes, bool]:
    """Read enough of the start to tell NDJSON from JSON text; returns the bytes read and whether it is JSON text.

    Reads at most about `limit` bytes ahead, so the decision is as bounded as any record.
    """
    src.done = "0 complete lines"
    data = src.read()
    eof = not data
    while not eof and len(data) < len(_BOM):  # a pipe may hand over a byte at a time
        more = src.read()
        eof = not more
        data += more
    if data.startswith(_BOM):
        # Elasticsearch's parser skips a leading BOM too; a BOM inside a record is left to the engine.
        data = data[len(_BOM) :]
    while True:
        verdict = _shape(data, eof, limit)
        if verdict is not None:
            return data, verdict
        # Read on until the head doubles: re-joining after every small pipe read would be quadratic.
        parts = [data]
        got = len(data)
        while got < 2 * len(data) + 1:
            more = src.read()
            if not more:
                eof = True
                break
            parts.append(more)
            got += len(more)
        data = b"".join(parts)


def _shape(head: bytes, eof: bool, limit: int) -> bool | None:
    """True for JSON text (an array, or documents spread over lines), False for NDJSON, None to read on."""
    full = eof or len(head) > limit  # no more may be read ahead: decide on what is here
    s = _ws(head, 0).end()
    if s == len(head):
        return None if not full else False
    first = head[s]
    if first not in b"[{":
        return False
    nl = head.find(b"\n", s)
    if nl < 0 and not full:
        return None
    if nl < 0 and not eof:
        # The first line alone is over the limit: as an NDJSON record it is too large either way; an array
        # written on one line is the usual reason a `[` line is that long.
        return first == 0x5B
    line1 = head[s:] if nl < 0 else head[s:nl]
    line1_ok = _whole_value(line1)
    after = len(head) if nl < 0 else _ws(head, nl).end()
    if first == 0x5B:
        # NDJSON whose first record happens to be an array vs an array file: only a complete first line with
        # more records after it is NDJSON. A `[` line left open is the start of an array.
        if not line1_ok:
            return True
        if after == len(head):
            return None if not full else True
        return False
    if line1_ok:
        return False
    # A `{` line left open: a document spread over lines, unless the next line is a whole object (then the
    # first is just a broken NDJSON record). Inside a real document the second line is a member (`"key": ...`)
    # or `}`, never a whole object.
    if after == len(head):
        return None if not full else True
    nl2 = head.find(b"\n", after)
    if nl2 < 0 and not full:
        return None
    line2 = head[after:] if nl2 < 0 else head[after:nl2]
    return not (line2[:1] == b"{" and _whole_value(line2))


def _whole_value(line: bytes) -> bool:
    """Whether `line`, starting with a bracket, closes that bracket at its end (trailing whitespace aside).

    By structure, not by parsing: a record the engine would reject (or accept where orjson would not, such as
    one with an unpaired surrogate escape) is still whole, and so still a line of NDJSON.
    """
    depth = pos = 0
    while True:
        pos = _in_value(line, pos).end()
        if pos == len(line):
            return False
        c = line[pos]
        if c in (_OPEN_OBJ, _OPEN_ARR):
            depth += 1
        elif c in (_CLOSE_OBJ, _CLOSE_ARR):
            depth -= 1
            if depth <= 0:
                return _ws(line, pos + 1).end() == len(line)
        else:
            return False  # a string left open
        pos += 1


# ---------------------------------------------------------------------------------------------------------------
# NDJSON: one record per line.


def _lines(src: _Source, data: bytes, limit: int, oversized: OnOversized) -> Iterator[Line]:
    lineno = 0
    carry = b""  # the unfinished last line of the previous chunk (never over the limit)
    dropping = -1  # while >= 0, the size so far of an over-the-limit line being skipped up to its newline
    while data:
        pieces = data.split(b"\n")
        last = pieces.pop()
        if pieces:
            if dropping >= 0:
                oversized(lineno + 1, dropping + len(pieces[0]))
                dropping = -1
                pieces[0] = b""  # counted as a line below, yielded as nothing
            elif carry:
                pieces[0] = carry + pieces[0]
            if len(data) > limit or len(pieces[0]) > limit:
                for i, line in enumerate(pieces, lineno + 1):
                    if len(line) > limit:
                        oversized(i, len(line))
                    elif line and not line.isspace():
                        yield i, line
            else:  # the usual case: no line of this chunk can be over the limit, so spare the check
                for i, line in enumerate(pieces, lineno + 1):
                    if line and not line.isspace():
                        yield i, line
            lineno += len(pieces)
            carry = last
        elif dropping >= 0:
            dropping += len(last)
        else:
            carry += last
        if len(carry) > limit:
            dropping = len(carry)
            carry = b""
        src.done = f"{lineno:,} complete lines"
        data = src.read()
    if dropping >= 0:
        oversized(lineno + 1, dropping)
    elif carry and not carry.isspace():
        yield lineno + 1, carry


def _blocks(src: _Source, data: bytes, limit: int, oversized: OnOversized) -> Iterator[Line | Block]:
    """`_lines`, giving the whole lines of each chunk as Blocks (at most `limit` + 1 bytes each)."""
    lineno = 0
    carry = b""  # the unfinished last line of the previous chunk (never over the limit)
    dropping = -1  # while >= 0, the size so far of an over-the-limit line being skipped up to its newline
    while data:
        pos = 0
        if dropping >= 0 or carry:  # finish the line the previous chunk left open
            nl = data.find(b"\n")
            if nl < 0:
                if dropping >= 0:
                    dropping += len(data)
                else:
                    carry += data
                    if len(carry) > limit:
                        dropping = len(carry)
                        carry = b""
                src.done = f"{lineno:,} complete lines"
                data = src.read()
                continue
            if dropping >= 0:
                oversized(lineno + 1, dropping + nl)
                dropping = -1
            else:
                line = carry + data[:nl]
                carry = b""
                if len(line) > limit:
                    oversized(lineno + 1, len(line))
                elif line and not line.isspace():
                    yield lineno + 1, line
            lineno += 1
            pos = nl + 1
        end = data.rfind(b"\n", pos) + 1
        if end:
            while pos < end:
                # A block of at most limit + 1 bytes cannot hold a line over the limit; a line with no newline
                # within limit + 1 bytes of its start is over it.
                cut = data.rfind(b"\n", pos, pos + limit + 1) + 1
                if cut:
                    block = Block(data, pos, cut, lineno + 1)
                    yield block
                    lineno += block.lines if block.lines is not None else data.count(b"\n", pos, cut)
                    pos = cut
                else:
                    nl = data.find(b"\n", pos + limit + 1, end)
                    oversized(lineno + 1, nl - pos)
                    lineno += 1
                    pos = nl + 1
        carry = data[pos:]
        if len(carry) > limit:
            dropping = len(carry)
            carry = b""
        src.done = f"{lineno:,} complete lines"
        data = src.read()
    if dropping >= 0:
        oversized(lineno + 1, dropping)
    elif carry and not carry.isspace():
        yield lineno + 1, carry
    src.lines = lineno + (dropping >= 0 or bool(carry))


# ---------------------------------------------------------------------------------------------------------------
# JSON text: top-level arrays, whose elements are records, and top-level objects, each a record (a pretty-printed
# document, or several one after another). A byte-level scanner finds where each record ends by tracking strings,
# escapes and bracket depth; it does not validate (orjson does, record by record), so one bad element is one
# rejection. Anything else at the top level is taken up to the end of its line as a record, to be rejected.

# A string as JSON allows it. It never spans a raw newline: JSON strings cannot hold one, so a broken string ends
# at its line instead of swallowing the rest of the file.
_STR = rb'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
# Runs of bytes that change nothing, complete strings included; each match stops at a bracket, at a string that
# does not end here (cut by the chunk's end, or broken), or, at element level, at a comma.
# Written unrolled (run, then string-and-run repeated) and possessive (*+, nothing to backtrack into): about
# 40% faster than the plain alternation, which matters for a large JSON array.
_in_value = _matcher(rb'[^"\[\]{}]*+(?:' + _STR + rb'[^"\[\]{}]*+)*+')
_in_element = _matcher(rb'[^"\[\]{},]*+(?:' + _STR + rb'[^"\[\]{},]*+)*+')
_str_rest = _matcher(rb'[^"\\\n]*+(?:\\.[^"\\\n]*+)*+')  # the rest of a string from inside it
_gap = _matcher(rb"[ \t\r\n,]*+")  # between array elements

_OPEN_OBJ, _OPEN_ARR, _CLOSE_OBJ, _CLOSE_ARR, _COMMA, _QUOTE, _NL = b'{[}],"\n'


def _json_values(src: _Source, buf: bytes, limit: int, oversized: OnOversized) -> Iterator[Line]:
    n = 0  # records started
    pos = 0
    depth = 0  # bracket depth from the top of the file
    level = 0  # depth where records live: 0 for top-level documents, 1 inside a top-level array
    start = -1  # offset in buf where the current record starts; -1 between records
    line_record = False  # the current record is stray top-level text, taken up to the end of its line
    skipped = 0  # bytes of the current record already let go because it is over the limit
    in_str = esc = False  # inside a string cut by the end of a chunk (and just after its backslash)
    while True:
        if pos >= len(buf):
            if start >= 0:
                kept = len(buf) - start
                if skipped or kept > limit:
                    skipped += kept  # over the limit: keep scanning to find its end, but hold none of it
                    buf = b""
                else:
                    buf = buf[start:]
                start = 0
            else:
                buf = b""
            pos = len(buf)
            src.done = f"{n - 1:,} records, inside record {n:,}" if start >= 0 else f"{n:,} records"
            chunk = src.read()
            if not chunk:
                break
            buf = buf + chunk if buf else chunk
            continue

        if start < 0:  # between records
            pos = (_gap if level else _ws)(buf, pos).end()
            if pos == len(buf):
                continue
            c = buf[pos]
            if level:
                if c == _CLOSE_ARR:
                    level = depth = 0
                    pos += 1
                    continue
            elif c == _OPEN_ARR:
                level = depth = 1
                pos += 1
                continue
            n += 1
            start = pos
            skipped = 0
            line_record = False
            if not level:
                if c == _OPEN_OBJ:
                    depth = 1
                    pos += 1
                else:
                    line_record = True
            continue

        end = -1
        if in_str:
            if esc:
                esc = False
                if buf[pos] != _NL:
                    pos += 1
                    continue
            pos = _str_rest(buf, pos).end()
            if pos == len(buf):
                continue
            c = buf[pos]
            if c == _QUOTE:
                pos += 1
                in_str = False
            elif c == _NL:
                in_str = False  # a broken string ends at its line (the record will be rejected as not JSON)
            else:  # a backslash with nothing after it in this chunk, or before a raw newline
                pos += 1
                esc = pos == len(buf)
            continue
        if line_record:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                pos = len(buf)
                continue
            end = nl
            pos = nl + 1
        else:
            pos = (_in_element if depth == level else _in_value)(buf, pos).end()
            if pos == len(buf):
                continue
            c = buf[pos]
            if c in (_OPEN_OBJ, _OPEN_ARR):
                depth += 1
                pos += 1
            elif c in (_CLOSE_OBJ, _CLOSE_ARR):
                if depth > level:
                    depth -= 1
                    pos += 1
                    if depth == 0:  # a top-level document ends with its bracket
                        end = pos
                elif c == _CLOSE_ARR:  # the last element of the array; the ']' closes the array next
                    end = pos
                else:
                    pos += 1  # a stray '}' is part of the (bad) element
            elif c == _COMMA:
                end = pos
                pos += 1
            else:
                in_str = True
                pos += 1
        if end < 0:
            continue
        size = skipped + end - start
        if skipped or size > limit:
            oversized(n, size)
        else:
            record = buf[start:end].rstrip()
            if record:
                yield n, record
        start = -1

    if start >= 0:  # the input ended inside a record: pass it on as it is, to be rejected when parsed
        size = skipped + len(buf) - start
        if skipped or size > limit:
            oversized(n, size)
        else:
            record = buf[start:].rstrip()
            if record:
                yield n, record
    if level:
        raise _Unclosed(n)


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
