"""The synthetic corpus, and the differential proof that the prefilter never drops a record that matches."""

from __future__ import annotations

import json
import random
from collections import Counter

import orjson
import pytest

from detector.engine import Engine
from detector.rules.model import load_rules
from detector.sources import detect_source
from detector.synth import SOURCE_NAMES, generate

RULES = load_rules()
FULL = Engine(RULES, use_prefilter=False)
FAST = Engine(RULES, use_prefilter=True)


def test_generator_is_deterministic() -> None:
    a = [g.raw for g in generate(300, seed=5, netsupport_rate=0.1, malformed_rate=0.05)]
    b = [g.raw for g in generate(300, seed=5, netsupport_rate=0.1, malformed_rate=0.05)]
    c = [g.raw for g in generate(300, seed=6, netsupport_rate=0.1, malformed_rate=0.05)]
    assert a == b and a != c


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_engine_agrees_with_the_generators_intent(source: str) -> None:
    kinds: Counter[str] = Counter()
    for g in generate(1500, seed=17, netsupport_rate=0.08, malformed_rate=0.03, sources=[source]):
        kinds[g.kind] += 1
        out = FULL.process(g.raw)
        if g.kind == "malformed":
            assert out.rejection is not None, (g.variant, g.raw[:200])
            continue
        assert detect_source(orjson.loads(g.raw)) == source
        assert out.rejection is None, (g.variant, out.rejection)
        assert bool(out.alerts) == g.expect_alert, (g.kind, g.variant, g.raw[:300])
    assert kinds["positive"] > 20 and kinds["near_miss"] > 20 and kinds["malformed"] > 5 and kinds["benign"] > 1000


def _respell(raw: bytes, rng: random.Random) -> bytes:
    """Spellings a producer may use: other JSON encoders (\\u escapes everywhere) and other letter cases."""
    roll = rng.random()
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if roll < 0.1:
        return json.dumps(orjson.loads(raw), ensure_ascii=True).replace("client32", "\\u0063lient32").encode()
    if roll < 0.2:
        return raw.replace(b"client32", b"CLIENT32").replace(b"Client32", b"cLiEnT32")
    if roll < 0.3:
        return json.dumps(orjson.loads(raw), indent=1).encode().replace(b"\n", b"")
    return raw


def test_prefiltered_and_full_paths_give_identical_alerts() -> None:
    rng = random.Random(99)
    corpus = [_respell(g.raw, rng) for g in generate(20000, seed=99, netsupport_rate=0.03, malformed_rate=0.01)]
    fast_alerts, full_alerts = [], []
    skipped = 0
    for raw in corpus:
        fast, full = FAST.process(raw, created="t"), FULL.process(raw, created="t")
        skipped += fast.prefiltered
        fast_alerts += fast.alerts
        full_alerts += full.alerts
        if not fast.prefiltered:  # a record the prefilter let through gets exactly the full path's verdict
            assert (fast.rejection and fast.rejection.reason) == (full.rejection and full.rejection.reason)
    assert len(full_alerts) > 400
    assert [a["kibana.alert.uuid"] for a in fast_alerts] == [a["kibana.alert.uuid"] for a in full_alerts]
    assert fast_alerts == full_alerts
    assert skipped > 0.8 * len(corpus)  # and it does its job
