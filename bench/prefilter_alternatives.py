"""The per-record prefilter test and the one-pass alternatives to it, timed on realistic records, same run.

    .venv/bin/python -m bench.prefilter_alternatives [--records 20000] [--window 10]

Records from tools/synth.py generate (2.7 KB mean, 0.1% NetSupport). Each candidate decides "may this record
match the rule" exactly as the prefilter does (a needle in any ASCII case, or a `\\u00XX` escape of a printable
ASCII character), checked against the prefilter on every record first; then each runs in turn, a second at a
time, until it has used --window seconds of CPU. Figures are CPU microseconds per record.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from detector.engine import Engine
from detector.rules.model import load_rules
from tools.synth import generate

Search = Callable[[bytes], object]
ESCAPE = re.compile(rb"\\u00[2-7][0-9a-fA-F]")
ANCHORED = re.compile(rb"32(?<=[cC][lL][iI][eE][nN][tT]32)")
ONE_ALTERNATION = re.compile(rb"32(?<=[cC][lL][iI][eE][nN][tT]32)|\\u00[2-7][0-9a-fA-F]")
CASELESS = re.compile(rb"client32|\\u00[2-7][0-9a-f]", re.IGNORECASE)


def two_searches(raw: bytes, s: Search = ANCHORED.search, e: Search = ESCAPE.search) -> bool:
    return s(raw) is not None or e(raw) is not None


def one_alternation(raw: bytes, s: Search = ONE_ALTERNATION.search) -> bool:
    return s(raw) is not None


def caseless_regex(raw: bytes, s: Search = CASELESS.search) -> bool:
    return s(raw) is not None


def lower_then_in(raw: bytes, e: Search = ESCAPE.search) -> bool:
    return b"client32" in raw.lower() or (b"\\u00" in raw and e(raw) is not None)


def find_loop(raw: bytes, e: Search = ESCAPE.search) -> bool:
    i = raw.find(b"32")
    while i >= 0:
        if i >= 6 and raw[i - 6 : i].lower() == b"client":
            return True
        i = raw.find(b"32", i + 2)
    return b"\\u00" in raw and e(raw) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--window", type=float, default=10.0)
    args = ap.parse_args()
    records = [g.raw for g in generate(args.records, seed=1, netsupport_rate=0.001)]
    prefilter = Engine(load_rules()).prefilter
    candidates: dict[str, Callable[[bytes], bool]] = {
        "prefilter (two re searches)": prefilter.test,
        "two re searches, inline": two_searches,
        "one re alternation": one_alternation,
        "bytes.lower() then in": lower_then_in,
        "bytes.find('32') loop": find_loop,
        "re.IGNORECASE": caseless_regex,
    }
    expected = [prefilter.test(r) for r in records]
    for name, fn in candidates.items():
        assert [fn(r) for r in records] == expected, name
    cpu = dict.fromkeys(candidates, 0.0)
    done = dict.fromkeys(candidates, 0)
    while min(cpu.values()) < args.window:
        for name, fn in candidates.items():
            if cpu[name] >= args.window:
                continue
            t = time.process_time()
            n = 0
            while time.process_time() - t < 1.0:
                for r in records[:2000]:
                    fn(r)
                n += 2000
            cpu[name] += time.process_time() - t
            done[name] += n
    print(
        f"{len(records):,} records, mean {sum(map(len, records)) / len(records):,.0f} B; {args.window:g} CPU s each\n"
    )
    for name in candidates:
        print(f"{name:30}{cpu[name] / done[name] * 1e6:8.2f} us/record")


if __name__ == "__main__":
    main()
