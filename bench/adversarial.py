"""The per-record CPU bound: the worst records an attacker can write, each as large as the limit allows.

    .venv/bin/python -m bench.adversarial [--seconds 10] [--max-record-bytes 1048576]

Every input holds the needle `client32`, so none is skipped by the prefilter: each takes the full path
(parse, normalise, evaluate, alert). Each is processed in a loop for at least --seconds of CPU time
(process time, so other load on a shared machine does not count) under both rule revisions (the
shipped `HarddiskVolume?` one and upstream's `HarddiskVolume*`, whose several stars once made matching
quadratic). Prints CPU time per record and per MiB, and writes bench/out/adversarial.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from detector.engine import DEFAULT_MAX_RECORD_BYTES, Engine
from detector.rules.model import Rule, load_rules

REPO = Path(__file__).resolve().parents[1]
REVISED = REPO / "tests" / "fixtures" / "rules" / "netsupport_v2_harddiskvolume_star.toml"


def _endpoint(process: dict[str, object], extra: bytes = b"") -> bytes:
    doc = {
        "@timestamp": "2026-11-20T10:00:00.000Z",
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"], "action": "start"},
        "host": {"name": "WS-1", "os": {"type": "windows"}},
        "process": process,
    }
    raw = orjson.dumps(doc)
    return raw[:-1] + extra + b"}" if extra else raw


def _fit(make: Callable[[int], bytes], limit: int) -> bytes:
    """The largest record `make(n)` builds within `limit` bytes (make grows with n)."""
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(make(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return make(lo)


def inputs(limit: int) -> dict[str, bytes]:
    vol = "\\Device\\HarddiskVolume1\\Users\\"
    return {
        # Near-misses for every star of `\Device\HarddiskVolume*\Users\*.exe`: a backtracking matcher's worst case.
        "star_near_misses": _fit(lambda n: _endpoint({"name": "client32.exe", "executable": vol * n + "a.ex"}), limit),
        "many_values": _fit(
            lambda n: _endpoint({"name": "client32.exe", "executable": [vol * 20 + "a.ex"] * n}), limit
        ),
        # The lenient parse path: unpaired surrogate escapes everywhere in a logged string.
        "lone_surrogates": _fit(
            lambda n: (
                _endpoint({"name": "client32.exe", "executable": "C:\\Users\\a\\client32.exe"})[:-1]
                + b',"cmd":"'
                + b"\\ud800" * n
                + b'"}'
            ),
            limit,
        ),
        # One lone surrogate among a megabyte of escaped backslashes (a command line of them is cheap to log).
        "backslash_run": _fit(
            lambda n: _endpoint({"name": "client32.exe"})[:-1] + b',"cmd":"\\ud800' + b"\\\\" * n + b'"}',
            limit,
        ),
        # A number beyond a double as well: the second fallback parser.
        "huge_number": _fit(lambda n: _endpoint({"name": "client32.exe"})[:-1] + b',"n":1' + b"0" * n + b"}", limit),
        # Escapes of the needle: the prefilter cannot rule the record out.
        "escaped_needle": _fit(
            lambda n: _endpoint({"name": "client32.exe"})[:-1] + b',"c":"' + b"\\u0063lient32 " * n + b'"}',
            limit,
        ),
        # Arrays of arrays on a field the rule reads, as deep as the parser allows.
        "deep_arrays": _endpoint({"name": [[["client32.exe"] * 3] * 3] * 3, "executable": "C:\\Users\\a\\x.exe"})[:-2]
        + b',"z":'
        + b"[" * 1000
        + b"]" * 1000
        + b"}}",
        # Every value malformed, in a wide object: the ignore_malformed path.
        "wide_malformed": _fit(
            lambda n: _endpoint({"name": "client32.exe", "pid": [{"x": i} for i in range(n)]}), limit
        ),
        # An Event Hub envelope of broken records: each is dropped and counted, the siblings evaluated.
        "envelope_of_broken": _fit(
            lambda n: orjson.dumps(
                {"records": [{"category": "AdvancedHunting-DeviceProcessEvents", "properties": "client32"}] * n}
            ),
            limit,
        ),
        # Dotted and nested routes to the same fields, many times over.
        "many_routes": _fit(
            lambda n: (
                _endpoint({"name": "client32.exe"})[:-1]
                + b","
                + b",".join(f'"process.executable.{i}":"C:\\\\Users\\\\a\\\\client32.exe"'.encode() for i in range(n))
                + b"}"
            ),
            limit,
        ),
    }


def per_record(engine: Engine, raw: bytes, seconds: float) -> tuple[float, int, str]:
    out = engine.process(raw, created="2026-11-20T10:00:00.000Z")
    verdict = out.rejection.reason if out.rejection else f"{len(out.alerts)} alert(s)"
    n = 0
    start = time.process_time()
    while True:
        engine.process(raw, created="2026-11-20T10:00:00.000Z")
        n += 1
        spent = time.process_time() - start
        if spent >= seconds:
            return spent / n, n, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="CPU seconds per input and rule (default 10)")
    ap.add_argument("--max-record-bytes", type=int, default=DEFAULT_MAX_RECORD_BYTES)
    args = ap.parse_args()
    rules: dict[str, list[Rule]] = {"v1 (shipped)": load_rules(), "v2 (HarddiskVolume*)": load_rules([REVISED])}
    results = []
    print(f"{'input':<22} {'bytes':>9}  {'rule':<22} {'ms/record':>10} {'ms/MiB':>8}  verdict")
    for name, raw in inputs(args.max_record_bytes).items():
        for label, rs in rules.items():
            engine = Engine(rs, max_record_bytes=args.max_record_bytes)
            cost, n, verdict = per_record(engine, raw, args.seconds / len(rules))
            mib = len(raw) / (1 << 20)
            print(f"{name:<22} {len(raw):>9,}  {label:<22} {cost * 1e3:>10.2f} {cost * 1e3 / mib:>8.2f}  {verdict}")
            results.append(
                {
                    "input": name,
                    "bytes": len(raw),
                    "rule": label,
                    "seconds_per_record": cost,
                    "runs": n,
                    "verdict": verdict,
                }
            )
    worst = max(results, key=lambda r: float(r["seconds_per_record"]))  # type: ignore[arg-type]
    print(f"worst: {worst['input']} under {worst['rule']}: {float(worst['seconds_per_record']) * 1e3:.1f} ms CPU")  # type: ignore[arg-type]
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "adversarial.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
