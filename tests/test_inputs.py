"""Reading records from files: shapes (NDJSON, JSON arrays, pretty-printed documents), damage, bounded memory."""

from __future__ import annotations

import gzip
import json
import os
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector import inputs
from detector.inputs import InputError, iter_records

MiB = 1 << 20


def read_all(path: Path | str, limit: int = MiB) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], str | None]:
    """(records, oversized (number, size), damage message or None) of one file."""
    records: list[tuple[int, bytes]] = []
    oversized: list[tuple[int, int]] = []
    try:
        for rec in iter_records(
            str(path), max_record_bytes=limit, on_oversized=lambda n, size: oversized.append((n, size))
        ):
            records.append(rec)
    except InputError as exc:
        return records, oversized, str(exc)
    return records, oversized, None


def write(tmp_path: Path, data: bytes, name: str = "in") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --- NDJSON ---------------------------------------------------------------------------------------------------


def test_ndjson_line_numbers_blank_lines_crlf_and_a_last_line_without_newline(tmp_path: Path) -> None:
    f = write(tmp_path, b'{"a":1}\n\n   \n{"b":2}\r\n\r\n[1]\nlast')
    records, oversized, damage = read_all(f)
    assert records == [(1, b'{"a":1}'), (4, b'{"b":2}\r'), (6, b"[1]"), (7, b"last")]
    assert oversized == [] and damage is None


def test_a_leading_bom_is_skipped_but_one_inside_a_record_is_left(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    f = write(tmp_path, bom + b'{"a":1}\n' + bom + b'{"b":2}\n')
    assert read_all(f)[0] == [(1, b'{"a":1}'), (2, bom + b'{"b":2}')]
    # The BOM is skipped before the shape is told, so a pretty-printed document behind one is read as such.
    doc = json.dumps({"a": {"b": 1}}, indent=2).encode()
    assert read_all(write(tmp_path, bom + doc, "doc.json"))[0] == [(1, doc)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 4096])
def test_records_straddling_chunk_boundaries_arrive_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", chunk)
    lines = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i * 7 % 50)) for i in range(60)]
    f = write(tmp_path, b"\n".join(lines) + b"\n")
    assert read_all(f)[0] == list(enumerate(lines, start=1))
    gz = write(tmp_path, gzip.compress(b"\n".join(lines)), "in.gz")
    assert read_all(gz)[0] == list(enumerate(lines, start=1))


@settings(max_examples=200)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    chunk=st.integers(min_value=1, max_value=50),
    limit=st.integers(min_value=1, max_value=45),
    end=st.sampled_from([b"", b"\n"]),
)
def test_lines_match_a_plain_split_whatever_the_chunking(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], chunk: int, limit: int, end: bytes
) -> None:
    # NDJSON only: a first line opening a JSON document would (rightly) be read as JSON text.
    lines = [b"x" + line for line in lines]
    data = b"\n".join(lines) + end
    f = write(tmp_path_factory.mktemp("lines"), data)
    old = inputs.CHUNK_BYTES
    inputs.CHUNK_BYTES = chunk
    try:
        records, oversized, damage = read_all(f, limit)
    finally:
        inputs.CHUNK_BYTES = old
    expected = [(i, line) for i, line in enumerate(lines, start=1) if not line.isspace()]
    assert records == [(i, line) for i, line in expected if len(line) <= limit]
    assert oversized == [(i, len(line)) for i, line in expected if len(line) > limit]
    assert damage is None


# --- bounded memory -------------------------------------------------------------------------------------------


def _fifo(tmp_path: Path, produce: Callable[[Callable[[bytes], object]], None]) -> tuple[Path, threading.Thread]:
    """A named pipe fed by a thread, so a huge input exists only as it streams past."""
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def feed() -> None:
        with path.open("wb") as fh:
            produce(fh.write)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return path, thread


def _peak_while(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_endless_line_is_skipped_in_bounded_memory_and_the_next_records_are_read(tmp_path: Path) -> None:
    block = b"x" * 65536
    size = 800 * len(block)  # 50 MiB on one line

    def produce(out: Callable[[bytes], object]) -> None:
        out(b'{"first": 1}\n')
        for _ in range(800):
            out(block)
        out(b'\n{"after": 1}\n{"after": 2}\n')

    pipe, thread = _fifo(tmp_path, produce)
    (records, oversized, damage), peak = _peak_while(lambda: read_all(pipe))
    thread.join(5)
    assert records == [(1, b'{"first": 1}'), (3, b'{"after": 1}'), (4, b'{"after": 2}')]
    assert oversized == [(2, size)] and damage is None
    # A chunk, the carry of a line up to the limit, and their split: a few MiB, never the 50 MiB line.
    assert peak < 8 * MiB, peak


def test_a_gzip_bomb_is_inflated_a_chunk_at_a_time(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.ndjson.gz"
    zeros = bytes(MiB)
    with gzip.open(bomb, "wb", compresslevel=1) as gz:
        gz.write(b'{"before": 1}\n')
        for _ in range(200):
            gz.write(zeros)
        gz.write(b'\n{"after": 1}\n')
    assert bomb.stat().st_size < 2 * MiB
    (records, oversized, damage), peak = _peak_while(lambda: read_all(bomb))
    assert records == [(1, b'{"before": 1}'), (3, b'{"after": 1}')]
    assert oversized == [(2, 200 * MiB)] and damage is None
    assert peak < 8 * MiB, peak


def test_a_huge_string_inside_an_array_element_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    block = b'ab\\"cd\\\\' * 8192  # escapes all the way, to exercise the scanner's state across chunks

    def produce(out: Callable[[bytes], object]) -> None:
        out(b'[{"first": 1},\n {"big": "')
        for _ in range(500):
            out(block)
        out(b'", "x": [1, {"y": "]}"}]},\n {"after": "]"}\n]\n')

    pipe, thread = _fifo(tmp_path, produce)
    (records, oversized, damage), peak = _peak_while(lambda: read_all(pipe))
    thread.join(5)
    assert records == [(1, b'{"first": 1}'), (3, b'{"after": "]"}')]
    assert [n for n, _ in oversized] == [2] and oversized[0][1] > 500 * len(block)
    assert damage is None
    assert peak < 8 * MiB, peak


# --- damaged compressed files ----------------------------------------------------------------------------------


def _lines_payload(n: int) -> bytes:
    return b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, os.urandom(16).hex().encode()) for i in range(n))


def test_a_truncated_gzip_yields_every_record_before_the_damage_then_says_where(tmp_path: Path) -> None:
    payload = _lines_payload(60_000)
    gz = gzip.compress(payload)
    cut = gz[: len(gz) // 2]
    f = write(tmp_path, cut, "cut.ndjson.gz")
    # What a decompressor can recover from the cut data: every complete line of it must be read.
    recoverable = zlib.decompressobj(wbits=31).decompress(cut)
    complete = recoverable.count(b"\n")
    records, _, damage = read_all(f)
    assert len(records) == complete and records[-1][1] == recoverable.split(b"\n")[complete - 1]
    assert damage is not None
    assert damage.startswith(f"{f}: truncated: the compressed data ends before its end-of-stream marker")
    assert f"after {complete:,} complete lines ({len(recoverable):,} bytes of data)" in damage


def test_corrupt_gzip_data_is_reported_with_the_records_before_it(tmp_path: Path) -> None:
    payload = _lines_payload(60_000)
    gz = bytearray(gzip.compress(payload))
    mid = len(gz) // 2
    gz[mid : mid + 64] = bytes(64)
    f = write(tmp_path, bytes(gz), "bad.gz")
    records, _, damage = read_all(f)
    # Deflate may turn the damaged bytes into garbage before it notices (the engine rejects such lines); all the
    # lines before the damaged half are intact.
    before = payload.split(b"\n")[:25_000]
    assert [rec for _, rec in records[:25_000]] == before
    assert damage is not None and "corrupt compressed data" in damage and "records before it were read" in damage


def test_gzip_with_trailing_garbage_is_damage_after_its_records(tmp_path: Path) -> None:
    f = write(tmp_path, gzip.compress(b'{"a": 1}\n{"b": 2}\n') + b"garbage!", "trail.gz")
    records, _, damage = read_all(f)
    assert records == [(1, b'{"a": 1}'), (2, b'{"b": 2}')]
    assert damage is not None and "corrupt compressed data" in damage


# --- JSON arrays ----------------------------------------------------------------------------------------------


def test_array_elements_are_the_files_own_bytes(tmp_path: Path) -> None:
    data = (
        b'[ {"a": 1, "s": "comma, bracket ] brace } quote \\" backslash \\\\"},\n'
        b'  {"nested": [1, [2, {"b": "["}], {}], "e": "\\u00e9"}  ,'
        b'{"x":{"y":{"z":[]}}}\n]\n'
    )
    records, oversized, damage = read_all(write(tmp_path, data, "a.json"))
    assert [n for n, _ in records] == [1, 2, 3] and oversized == [] and damage is None
    for _, rec in records:
        assert rec in data  # verbatim: not re-serialised
    assert [orjson.loads(rec) for _, rec in records] == orjson.loads(data)


def test_one_bad_element_is_one_record_and_its_siblings_are_read(tmp_path: Path) -> None:
    data = b'[{"a": 1},\n {not json},\n {"s": "\\ud800"},\n 42,\n {"b": 2}]'
    records, _, damage = read_all(write(tmp_path, data))
    assert records == [(1, b'{"a": 1}'), (2, b"{not json}"), (3, b'{"s": "\\ud800"}'), (4, b"42"), (5, b'{"b": 2}')]
    assert damage is None


def test_array_element_over_the_limit_is_skipped_and_numbered(tmp_path: Path) -> None:
    big = b'{"big": "' + b"x" * 200 + b'"}'
    data = b"[" + b'{"a": 1}, ' + big + b', "' + b"y" * 300 + b'", {"b": 2}]'
    records, oversized, _ = read_all(write(tmp_path, data), limit=100)
    assert records == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]
    assert oversized == [(2, len(big)), (3, 302)]


def test_an_array_that_is_never_closed_is_damage_after_its_elements(tmp_path: Path) -> None:
    records, _, damage = read_all(write(tmp_path, b'[{"a": 1},\n {"b": 2},\n {"c": '))
    assert records == [(1, b'{"a": 1}'), (2, b'{"b": 2}'), (3, b'{"c":')]  # the cut element, to be rejected
    assert damage is not None and "ends inside a JSON array (after element 3" in damage


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150)
@given(
    items=st.lists(json_values, max_size=8),
    indent=st.sampled_from([None, 0, 2, 4]),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_array_splitting_matches_the_parser_whatever_the_layout_and_chunking(
    tmp_path_factory: pytest.TempPathFactory, items: list[Any], indent: int | None, chunk: int
) -> None:
    data = json.dumps(items, indent=indent, ensure_ascii=False).encode()
    f = write(tmp_path_factory.mktemp("arr"), data, "a.json")
    old = inputs.CHUNK_BYTES
    inputs.CHUNK_BYTES = chunk
    try:
        records, oversized, damage = read_all(f)
    finally:
        inputs.CHUNK_BYTES = old
    assert damage is None and oversized == []
    assert [n for n, _ in records] == list(range(1, len(items) + 1))
    assert [json.loads(rec) for _, rec in records] == items
    assert all(rec in data for _, rec in records)


# --- pretty-printed documents and telling the shapes apart ------------------------------------------------------


def test_a_pretty_printed_object_is_one_record(tmp_path: Path) -> None:
    doc = {"agent": {"type": "endpoint"}, "process": {"name": "client32.exe", "args": ["a", "{", "}"]}}
    data = json.dumps(doc, indent=4).encode() + b"\n"
    assert read_all(write(tmp_path, data))[0] == [(1, data.rstrip())]


def test_concatenated_pretty_objects_are_records_in_order(tmp_path: Path) -> None:
    docs = [json.dumps({"n": i, "inner": {"list": [i, {"k": "v"}]}}, indent=2).encode() for i in range(3)]
    records, _, damage = read_all(write(tmp_path, b"\n".join(docs) + b"\n"))
    assert records == [(1, docs[0]), (2, docs[1]), (3, docs[2])] and damage is None


def test_a_broken_string_in_a_pretty_document_does_not_swallow_the_next_one(tmp_path: Path) -> None:
    data = b'{\n  "a": "cut short\n  "b": 2\n}\n{\n  "c": 3\n}\n'
    records, _, _ = read_all(write(tmp_path, data))
    assert records == [(1, b'{\n  "a": "cut short\n  "b": 2\n}'), (2, b'{\n  "c": 3\n}')]


VENDOR_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "vendor-samples"


@pytest.mark.skipif(not VENDOR_SAMPLES.is_dir(), reason="../shared/vendor-samples is not checked out")
@pytest.mark.parametrize(
    "name",
    [
        "elastic_defend/elastic-endpoint-package__process__sample_event.json",
        "system_security_4688/elastic-beats__winlogbeat-security__collection__security-windows2019_4688_Process_Created.evtx.golden.json",
    ],
)
def test_elastics_own_sample_files_are_read_as_documents(name: str) -> None:
    path = VENDOR_SAMPLES / name
    records, oversized, damage = read_all(path)
    parsed = orjson.loads(path.read_bytes())
    expected = parsed if isinstance(parsed, list) else [parsed]
    assert [orjson.loads(rec) for _, rec in records] == expected
    assert oversized == [] and damage is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # NDJSON whose first record is an array: lines, not elements
        (b'[1, 2]\n{"a": 1}\n', [(1, b"[1, 2]"), (2, b'{"a": 1}')]),
        # a one-line array file, one bad element in it: elements
        (b'[{"a": 1}, {bad}, {"b": 2}]\n', [(1, b'{"a": 1}'), (2, b"{bad}"), (3, b'{"b": 2}')]),
        # a broken first NDJSON line followed by a whole object: lines, not one endless document
        (b'{not json client32\n{"a": 1}\n{"b": 2}\n', [(1, b"{not json client32"), (2, b'{"a": 1}'), (3, b'{"b": 2}')]),
        # whole lines the parser may refuse (an unpaired surrogate escape) are still NDJSON lines
        (b'{"s": "\\ud800"}\n{"s": "\\udc00"}\n', [(1, b'{"s": "\\ud800"}'), (2, b'{"s": "\\udc00"}')]),
        # a document whose first line is complete JSON is NDJSON (the same record either way)
        (b'{"a": 1}\n', [(1, b'{"a": 1}')]),
        # leading blank lines count in NDJSON line numbers
        (b'\n\n{"a": 1}\n', [(3, b'{"a": 1}')]),
        # garbage between pretty documents is taken a line at a time, then the next document is found
        (b'{\n "a": 1\n}\noops\n{\n "b": 2\n}\n', [(1, b'{\n "a": 1\n}'), (2, b"oops"), (3, b'{\n "b": 2\n}')]),
        (b"", []),
        (b"  \n\n", []),
    ],
)
def test_shape_detection(tmp_path: Path, data: bytes, expected: list[tuple[int, bytes]]) -> None:
    records, _, damage = read_all(write(tmp_path, data))
    assert records == expected and damage is None


def test_a_first_line_over_the_limit_is_an_oversized_ndjson_record(tmp_path: Path) -> None:
    data = b'{"big": "' + b"x" * 5000 + b'"}\n{"a": 1}\n'
    records, oversized, _ = read_all(write(tmp_path, data), limit=1000)
    assert records == [(2, b'{"a": 1}')] and oversized == [(1, 5011)]


# --- opening ----------------------------------------------------------------------------------------------------


def test_a_closed_stdin_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(InputError, match="standard input is closed"):
        inputs.check_readable(["-"])


def test_stdin_is_read_as_it_arrives_not_after_a_whole_chunk(tmp_path: Path) -> None:
    # On a pipe the first record must come through before the writer has sent a chunk's worth or closed.
    path = tmp_path / "pipe"
    os.mkfifo(path)
    got = threading.Event()
    writer_done = threading.Event()

    def feed() -> None:
        with path.open("wb", buffering=0) as fh:
            fh.write(b'{"a": 1}\n{"b": 2}\n')
            got.wait(10)
        writer_done.set()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    records: Iterator[tuple[int, bytes]] = iter_records(str(path))
    assert next(records) == (1, b'{"a": 1}')
    assert not writer_done.is_set()
    got.set()
    assert list(records) == [(2, b'{"b": 2}')]
    thread.join(5)


def test_a_truncated_gzipped_array_yields_the_elements_before_the_damage(tmp_path: Path) -> None:
    items = [{"n": i, "pad": os.urandom(16).hex()} for i in range(20_000)]
    whole = gzip.compress(json.dumps(items, indent=2).encode())
    f = write(tmp_path, whole[: len(whole) // 2], "cut.json.gz")
    records, _, damage = read_all(f)
    assert len(records) > 5000
    assert [orjson.loads(rec) for _, rec in records] == items[: len(records)]
    assert damage is not None and "truncated" in damage
    assert f"found after {len(records):,} records, inside record {len(records) + 1:,} (" in damage
