"""`detector scan`'s buffer-at-a-time path and --jobs against the plain per-line loop: byte-identical output.

The fast path (detector/cli/scan.py FAST_PATH, inputs.iter_blocks, Engine.select) must give exactly the alerts,
in the same order, and exactly the summary (counts, rejection reasons with their line numbers, malformed values,
damage) of the per-line loop, for any input: generated realistic records and hostile lines, lines split across
chunk boundaries, CRLF, blank and whitespace-only lines, needles in escaped form, lines over the size limit,
BOMs, gzip and truncated gzip. --jobs N must give what --jobs 1 gives.
"""

from __future__ import annotations

import gzip
import io
import itertools
import sys
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import inputs
from detector.cli import scan as scan_mod
from detector.cli.main import main
from tools.synth import generate

FIXED_NOW = "2026-11-29T00:00:00.000Z"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Alerts carry the time they were built; pin it so that two runs can be compared byte for byte.
    monkeypatch.setattr("detector.alerts.builder.now_iso", lambda: FIXED_NOW)


def run(args: list[str], summary: Path, *, fast: bool = True) -> tuple[int, bytes, str, dict[str, Any]]:
    """(exit status, stdout, stderr without the timing line, --summary-json without seconds)."""
    out, err = io.BytesIO(), io.BytesIO()
    old = sys.stdout, sys.stderr, scan_mod.FAST_PATH
    wout, werr = io.TextIOWrapper(out, write_through=True), io.TextIOWrapper(err, write_through=True)
    sys.stdout, sys.stderr = wout, werr
    scan_mod.FAST_PATH = fast
    try:
        code = main(["scan", "--no-progress", "--summary-json", str(summary), *args])
    finally:
        sys.stdout, sys.stderr, scan_mod.FAST_PATH = old
        for w in (wout, werr):
            w.flush()
            w.detach()  # a collected wrapper would close the buffer
    doc = orjson.loads(summary.read_bytes())
    doc.pop("seconds")
    text = err.getvalue().decode()
    assert text.startswith("scanned ")
    return code, out.getvalue(), text.split("\n", 1)[1], doc


def same(args: list[str], tmp: Path) -> tuple[int, bytes, str, dict[str, Any]]:
    fast = run(args, tmp / "fast.json", fast=True)
    plain = run(args, tmp / "plain.json", fast=False)
    assert fast[1] == plain[1]  # alerts, byte for byte and in order
    assert fast[3] == plain[3]  # the summary JSON
    assert fast[2] == plain[2]  # the summary text
    assert fast[0] == plain[0]
    return fast


@cache
def synth_pool() -> tuple[bytes, ...]:
    return tuple(g.raw for g in generate(400, seed=5, netsupport_rate=0.15, malformed_rate=0.08))


HOSTILE = (
    b"",
    b"   ",
    b"\t \x0b\x0c",
    b"\r",
    b"garbage client32",
    b"not json at all",
    b"[1]",
    b'"a string"',
    b"{",
    b"}",
    b"{}",
    b"{ }\r",
    b'  {"a": 1}  ',
    b'{"a": 1} trailing',
    b'\xef\xbb\xbf{"a": 1}',
    b'{"x": "CLIENT32"}',
    b'{"x": "cLiEnT32"}',
    b'{"Image": "C:\\\\Users\\\\x\\\\\\u0063lient32.exe"}',
    b'{"Image": "C:\\\\Users\\\\x\\\\cli\\u0045nt32.exe"}',
    b'{"x": "\\u002f"}',
    b'{"x": "\\u00e9 \\u001f"}',
    b'{"x": "client3"}',
    b'{"x": "\xff\xfe"}',
    b'{"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}',
)


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(file bytes, gzip it) from realistic records and hostile lines."""
    pool = synth_pool()
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(pool),
                st.sampled_from(HOSTILE),
                st.sampled_from(pool).map(lambda r: r + b"\r"),  # CRLF
                st.sampled_from(pool).map(lambda r: b"  " + r + b" \t"),
                st.integers(min_value=1, max_value=9000).map(lambda n: b'{"pad": "' + b"client32" * (n // 8) + b'"}'),
                st.integers(min_value=1, max_value=9000).map(lambda n: b'{"pad": "' + b"x" * n + b'"}'),
            ),
            min_size=0,
            max_size=40,
        )
    )
    data = b"\n".join(pieces) + draw(st.sampled_from([b"", b"\n", b"\n\n", b"\r\n"]))
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=files(),
    chunk=st.sampled_from([5, 64, 1000, 4096, 1 << 20]),
    limit=st.sampled_from([40, 700, 3000, 1 << 20]),
    cut=st.one_of(st.none(), st.integers(min_value=1, max_value=200)),
    pinned=st.sampled_from([[], ["--source", "endpoint"]]),
)
def test_fast_path_equals_the_per_line_loop(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    content: tuple[bytes, bool],
    chunk: int,
    limit: int,
    cut: int | None,
    pinned: list[str],
) -> None:
    tmp = tmp_path_factory.mktemp("fast")
    data, gz = content
    f = tmp / "in"
    if gz:
        packed = gzip.compress(data)
        f.write_bytes(packed[: max(10, len(packed) - cut)] if cut is not None else packed)  # truncated gzip
    else:
        f.write_bytes(data)
    monkeypatch.setattr(inputs, "CHUNK_BYTES", chunk)
    same([*pinned, "--max-record-bytes", str(limit), str(f)], tmp)


def test_a_realistic_corpus_with_the_usual_chunks(tmp_path: Path) -> None:
    pool = synth_pool()
    lines = [pool[i % len(pool)] for i in range(3000)] + list(HOSTILE)
    f = tmp_path / "mix.ndjson"
    f.write_bytes(b"\n".join(lines) + b"\n")
    code, out, _, doc = same([str(f)], tmp_path)
    assert code == 0 and out.count(b"\n") == doc["alerts"] > 0
    assert doc["prefiltered"] > 1500 and doc["rejected"] > 0


def test_rejections_keep_their_line_numbers_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 64)
    big = b'{"pad": "' + b"x" * 100 + b'"}'
    lines = [b'{"a": 1}', b"", b"garbage", b'{"x": "CLIENT32"}\r', b"   ", b"[1]", big, b"{"]
    f = tmp_path / "in.ndjson"
    f.write_bytes(b"\n".join(lines))
    _, _, text, doc = same(["--max-record-bytes", "80", str(f)], tmp_path)
    assert doc["rejected_examples"]["not_json"][0].startswith(f"{f}:3: ")
    assert doc["rejected_examples"]["too_large"] == [f"{f}:7: record is 111 bytes, over the 80-byte limit"]
    assert doc["rejected_examples"]["not_object"][0].startswith(f"{f}:6: ")
    assert f"{f}:8: " in text


def test_no_prefilter_and_a_rule_without_buffer_searches_use_the_per_line_loop(tmp_path: Path) -> None:
    f = tmp_path / "in.ndjson"
    f.write_bytes(b"\n".join(synth_pool()[:50]) + b"\ngarbage\n")
    same(["--no-prefilter", str(f)], tmp_path)


# --- --jobs ------------------------------------------------------------------------------------------------------


def _jobs_inputs(tmp: Path) -> list[str]:
    pool = synth_pool()
    big = tmp / "big.ndjson"
    big.write_bytes(b"\n".join(pool[i % len(pool)] for i in range(1500)) + b"\ngarbage\n\n[1]\n" + pool[3])
    crlf = tmp / "crlf.ndjson"
    crlf.write_bytes(b"\r\n".join(pool[:200]) + b"\r\n")
    gz = tmp / "g.ndjson.gz"
    gz.write_bytes(gzip.compress(b"\n".join(pool[100:300]) + b"\nbad\n"))
    trunc = tmp / "t.ndjson.gz"
    trunc.write_bytes(gzip.compress(b"\n".join(pool[50:250]))[:-300])
    arr = tmp / "a.json"
    arr.write_bytes(b"[" + b",\n".join(pool[:30]) + b", 7]")
    return [str(big), str(crlf), str(gz), str(trunc), str(arr), str(big)]


@pytest.mark.parametrize(
    "extra",
    [[], ["--no-prefilter"], ["--suppress-by", "host.name", "--suppress-for", "5m"], ["--max-record-bytes", "2500"]],
)
def test_jobs_2_gives_what_jobs_1_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 4096)  # so that big.ndjson is cut into several ranges
    files = _jobs_inputs(tmp_path)
    assert len(inputs.ndjson_spans(files[0], 8) or []) > 2
    one = run([*extra, *files], tmp_path / "one.json")
    two = run([*extra, "--jobs", "2", *files], tmp_path / "two.json")
    three = run([*extra, "--jobs", "3", files[0]], tmp_path / "three.json")
    assert two[1] == one[1] and two[3] == one[3] and two[2] == one[2] and two[0] == one[0] == 1
    assert three[1] == run([*extra, files[0]], tmp_path / "single.json")[1]
    assert one[3]["alerts"] > 0 and one[3]["damaged_inputs"]


def test_spans_cut_after_newlines_and_cover_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 1000)
    data = b"\n".join(b'{"n": %d, "pad": "%s"}' % (i, b"y" * (i % 300)) for i in range(400)) + b"\n"
    f = tmp_path / "in.ndjson"
    f.write_bytes(data)
    spans = inputs.ndjson_spans(str(f), 5)
    assert spans is not None and spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] and data[a[1] - 1 : a[1]] == b"\n" for a, b in itertools.pairwise(spans))
    gzipped = tmp_path / "in.gz"
    gzipped.write_bytes(gzip.compress(data))
    arr = tmp_path / "a.json"
    arr.write_bytes(b"[" + data.replace(b"\n", b",\n")[:-2] + b"]")
    assert inputs.ndjson_spans(str(gzipped), 5) is None and inputs.ndjson_spans(str(arr), 5) is None


# --- the reader and the selection on their own ----------------------------------------------------------------------


def _expand(path: Path, limit: int) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], str | None]:
    records: list[tuple[int, bytes]] = []
    oversized: list[tuple[int, int]] = []
    try:
        for item in inputs.iter_blocks(
            str(path), max_record_bytes=limit, on_oversized=lambda n, s: oversized.append((n, s))
        ):
            records.extend(item.records() if isinstance(item, inputs.Block) else [item])
    except inputs.InputError as exc:
        return records, oversized, str(exc)
    return records, oversized, None


def _plain(path: Path, limit: int) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], str | None]:
    records: list[tuple[int, bytes]] = []
    oversized: list[tuple[int, int]] = []
    try:
        for rec in inputs.iter_records(
            str(path), max_record_bytes=limit, on_oversized=lambda n, s: oversized.append((n, s))
        ):
            records.append(rec)
    except inputs.InputError as exc:
        return records, oversized, str(exc)
    return records, oversized, None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.sampled_from([b"", b" ", b"\r", b"x" * 30, b"{}", b"{" + b"y" * 70 + b"}", b"{\r"]), max_size=30),
    end=st.sampled_from([b"", b"\n"]),
    chunk=st.integers(min_value=1, max_value=80),
    limit=st.integers(min_value=1, max_value=90),
    gz=st.booleans(),
)
def test_blocks_expand_to_exactly_the_records(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], end: bytes, chunk: int, limit: int, gz: bool
) -> None:
    data = b"x\n" + b"\n".join(lines) + end  # NDJSON (a first line opening a document would be JSON text)
    f = tmp_path_factory.mktemp("blocks") / "in"
    f.write_bytes(gzip.compress(data) if gz else data)
    old = inputs.CHUNK_BYTES
    inputs.CHUNK_BYTES = chunk
    try:
        assert _expand(f, limit) == _plain(f, limit)
    finally:
        inputs.CHUNK_BYTES = old


def test_select_finds_hits_on_the_first_and_last_lines_and_nothing_across_lines() -> None:
    from detector.engine import Engine
    from detector.rules.model import load_rules

    engine = Engine(load_rules())
    buf = b'{"a": "CLIENT32"}\n{"a": "client"}\n{"b": "32"}\n\n  \n{"c": "\\u0063"}\r\n[1]\n{"d": "clIent32"}\n'
    lines, records, parse = engine.select(buf, 0, len(buf))
    assert (lines, records) == (8, 6)
    assert [i for i, _, _ in parse] == [0, 5, 6, 7]
    assert [buf[s:e] for _, s, e in parse][-1] == b'{"d": "clIent32"}'
    # A range inside a larger buffer: letters before the range never complete a needle in it.
    buf = b'{"a": "client' + b'32"}\n{"x": 1}\n'
    lines, records, parse = engine.select(buf, 13, len(buf))
    assert (lines, records, parse) == (2, 2, [(0, 13, 17)])  # `32"}` is not framed, so it is parsed, not a hit
    buf = b'{"a": "client' + b'{"x": "32"}\n'
    assert engine.select(buf, 13, len(buf)) == (1, 1, [])  # framed, and `client` before the range is not in it
    with pytest.raises(ValueError, match="whole lines"):
        engine.select(buf, 0, len(buf) - 1)
