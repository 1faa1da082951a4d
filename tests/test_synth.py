"""The synthetic corpus, and the differential proof that the prefilter never drops a record that matches."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import detect_source
from tools.synth import (
    SOURCE_NAMES,
    generate,
    generate_exact,
    main,
    malformed_variants,
)

RULES = load_rules()
FULL = Engine(RULES, use_prefilter=False)
FAST = Engine(RULES, use_prefilter=True)

# What the engine must say about each malformed variant.
REASON = {
    "truncated": "not_json",
    "not_object": "not_object",
    "bad_structure": "bad_field_type",
    "unknown_source": "unknown_source",
    "too_deep": "too_deep",
    "too_large": "too_large",
}
# Mean raw sizes of the vendors' real records (vendor-samples), which the generator imitates.
REAL_SIZE = {
    "endgame": 2000,
    "endpoint": 2900,
    "crowdstrike_fdr": 1650,
    "m365_defender": 3000,
    "sentinel_one_cloud_funnel": 5100,
    "system_security": 2950,
    "windows_sysmon": 2400,
    "winlogbeat": 2700,
}


def test_generator_is_deterministic() -> None:
    a = [g.raw for g in generate(300, seed=5, netsupport_rate=0.1, malformed_rate=0.05)]
    b = [g.raw for g in generate(300, seed=5, netsupport_rate=0.1, malformed_rate=0.05)]
    c = [g.raw for g in generate(300, seed=6, netsupport_rate=0.1, malformed_rate=0.05)]
    assert a == b and a != c
    assert [g.raw for g in generate_exact("endpoint", seed=3)] == [g.raw for g in generate_exact("endpoint", seed=3)]


def test_records_are_single_json_lines() -> None:
    for g in generate(500, seed=8, netsupport_rate=0.1, malformed_rate=0.1):
        assert b"\n" not in g.raw and g.kind in ("benign", "positive", "near_miss", "malformed")
        assert (g.expect_alert is None) == (g.kind == "malformed")


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_engine_agrees_with_the_generators_intent(source: str) -> None:
    kinds: Counter[str] = Counter()
    variants: Counter[tuple[str, str]] = Counter()
    for g in generate(1500, seed=17, netsupport_rate=0.08, malformed_rate=0.03, sources=[source]):
        kinds[g.kind] += 1
        variants[g.kind, g.variant] += 1
        for pinned in (None, source):  # detected from content, and pinned as a topic or --source would
            out = FULL.process(g.raw, pinned)
            if g.kind == "malformed":
                assert out.rejection is not None, (g.variant, g.raw[:200])
                assert out.rejection.reason == REASON[g.variant], (g.variant, out.rejection)
                continue
            assert out.rejection is None, (g.variant, out.rejection)
            assert out.source == source
            assert bool(out.alerts) == g.expect_alert, (g.kind, g.variant, g.raw[:300])
        if g.kind != "malformed":
            assert detect_source(orjson.loads(g.raw)) == source
    assert kinds["positive"] > 60 and kinds["near_miss"] > 60 and kinds["malformed"] > 20 and kinds["benign"] > 1000
    assert {v for k, v in variants if k == "benign"} >= {"benign", "benign_file", "benign_network"}
    assert {v for k, v in variants if k == "malformed"} == set(malformed_variants(source))


def test_every_variant_appears_and_malformed_lines_reach_the_parser() -> None:
    seen: set[tuple[str, str, str]] = set()
    for g in generate(8000, seed=21, netsupport_rate=0.1, malformed_rate=0.05):
        seen.add((g.source, g.kind, g.variant))
        if g.kind == "malformed":
            # Each carries the needle or is not framed as an object, so even the prefiltered path must look
            # at it and refuse it with a reason rather than skip it silently.
            assert b"client32" in g.raw.lower() or not g.raw.startswith(b"{")
            out = FAST.process(g.raw)
            assert not out.prefiltered and out.rejection is not None
    for name in ("endpoint", "windows_sysmon", "m365_defender", "winlogbeat", "endgame"):
        assert (name, "positive", "renamed") in seen
        assert (name, "near_miss", "original_name_case") in seen
    assert ("crowdstrike_fdr", "near_miss", "volume_two_digits") in seen
    for name in ("endpoint", "crowdstrike_fdr", "sentinel_one_cloud_funnel", "endgame"):
        assert (name, "near_miss", "not_windows") in seen


def test_crowdstrike_positives_use_single_digit_volumes() -> None:
    for g in generate(3000, seed=4, netsupport_rate=0.2, sources=["crowdstrike_fdr"]):
        image = orjson.loads(g.raw).get("ImageFileName", "")
        if "HarddiskVolume" in image:
            digits = image.split("HarddiskVolume", 1)[1].split("\\", 1)[0]
            assert (len(digits) == 2) == (g.variant == "volume_two_digits"), image


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_record_sizes_are_like_the_vendors(source: str) -> None:
    sizes = [len(g.raw) for g in generate(400, seed=2, sources=[source]) if g.variant == "benign"]
    mean = sum(sizes) / len(sizes)
    assert 0.6 * REAL_SIZE[source] < mean < 1.4 * REAL_SIZE[source], mean


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_demo_files_hold_exact_counts_and_all_agree(source: str) -> None:
    records = generate_exact(source, seed=11)
    assert Counter(g.kind for g in records) == {"benign": 250, "positive": 5, "near_miss": 5, "malformed": 3}
    assert len({g.variant for g in records if g.kind == "near_miss"}) == 5  # variety even in a small file
    for g in records:
        out = FULL.process(g.raw, source)
        assert (out.rejection is not None) if g.kind == "malformed" else (bool(out.alerts) == g.expect_alert)


def _respell(raw: bytes, rng: random.Random) -> bytes:
    """Spellings a producer may use: other JSON encoders (\\u escapes everywhere) and other letter cases."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    roll = rng.random()
    if roll < 0.10:  # Python's encoder: every non-ASCII character escaped, and a needle letter escaped too
        text = json.dumps(doc, ensure_ascii=True)
        return (text.replace("client32", "\\u0063lient32") if rng.random() < 0.5 else text).encode()
    if roll < 0.20:  # upper- and mixed-case needles (these change what `==` sees, on both paths alike)
        spelling = rng.choice((b"CLIENT32", b"cLiEnT32", b"Client32"))
        return raw.replace(b"client32", spelling).replace(b"Client32", spelling)
    if roll < 0.25:  # pretty-printed, joined onto one line
        return json.dumps(doc, indent=1).encode().replace(b"\n", b"")
    return raw


def _comparable(alert: dict[str, Any]) -> dict[str, Any]:
    # The two wall-clock fields differ between two runs of the same record; everything else must not.
    return {k: v for k, v in alert.items() if k not in ("@timestamp", "kibana.alert.start")}


def test_prefiltered_and_full_paths_give_identical_alerts() -> None:
    rng = random.Random(99)
    corpus = [_respell(g.raw, rng) for g in generate(20000, seed=99, netsupport_rate=0.05, malformed_rate=0.01)]
    fast_alerts: list[dict[str, Any]] = []
    full_alerts: list[dict[str, Any]] = []
    skipped = 0
    for raw in corpus:
        fast, full = FAST.process(raw), FULL.process(raw)
        skipped += fast.prefiltered
        fast_alerts += fast.alerts
        full_alerts += full.alerts
        if not fast.prefiltered:  # a record the prefilter let through gets exactly the full path's verdict
            assert (fast.rejection and fast.rejection.reason) == (full.rejection and full.rejection.reason)
    assert len(full_alerts) > 700
    assert [a["kibana.alert.uuid"] for a in fast_alerts] == [a["kibana.alert.uuid"] for a in full_alerts]
    assert [_comparable(a) for a in fast_alerts] == [_comparable(a) for a in full_alerts]
    assert skipped > 0.75 * len(corpus)  # and it does its job


def test_cli_writes_ndjson_manifest_and_split_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, manifest = tmp_path / "c.ndjson.gz", tmp_path / "m.json"
    argv = ["--count", "300", "--seed", "3", "--netsupport-rate", "0.05", "--malformed-rate", "0.02"]
    assert main([*argv, "--out", str(out), "--manifest", str(manifest)]) == 0
    first = out.read_bytes()
    assert main([*argv, "--out", str(out)]) == 0
    assert out.read_bytes() == first  # reproducible gzip: no timestamp in the header
    lines = gzip.decompress(first).splitlines()
    entries = orjson.loads(manifest.read_bytes())
    assert len(lines) == len(entries) == 300
    expected = [g for g in generate(300, seed=3, netsupport_rate=0.05, malformed_rate=0.02)]
    assert lines == [g.raw for g in expected]
    assert [(e["line"], e["source"], e["kind"], e["expect_alert"]) for e in entries] == [
        (i, g.source, g.kind, g.expect_alert) for i, g in enumerate(expected, start=1)
    ]

    split = tmp_path / "split"
    split_manifest = tmp_path / "split.json"
    assert (
        main(
            [
                *argv,
                "--split-dir",
                str(split),
                "--source",
                "endpoint",
                "--source",
                "winlogbeat",
                "--manifest",
                str(split_manifest),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in split.iterdir()) == ["endpoint.ndjson", "winlogbeat.ndjson"]
    files = {p.name: p.read_bytes().splitlines() for p in split.iterdir()}
    entries = orjson.loads(split_manifest.read_bytes())
    assert len(entries) == 300 == sum(map(len, files.values()))
    for e in entries:
        assert e["file"] == f"{e['source']}.ndjson"
        if e["kind"] != "malformed":
            assert detect_source(orjson.loads(files[e["file"]][e["line"] - 1])) == e["source"]

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--split-dir" in capsys.readouterr().out
