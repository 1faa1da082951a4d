"""deploy/prometheus/detector.rules.yml with its windows shortened, for tests against a real Prometheus.

The rules write every window and duration in minutes, in one of four forms: a range `[Nm]`, a subquery
`[Nm:Mm]`, `for: Nm`, and a threshold compared with time() as `N * 60` (seconds). `shorten` divides each by
`factor`, turning minutes into seconds (factor 15: `[5m]` -> `[20s]`, `for: 10m` -> `for: 40s`,
`15 * 60` -> `60`); `time_factor` divides the `N * 60` thresholds separately (a silence window can be shorter
than a rate window needs). Nothing else in the file changes, so the copy is the rules under test.

    python -m tools.prom_rules --factor 15 --time-factor 60 > /tmp/detector.rules.short.yml
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "detector.rules.yml"


def _seconds(minutes: str, factor: int) -> int:
    seconds = int(minutes) * 60
    if seconds % factor:
        raise ValueError(f"{minutes}m is not a whole number of seconds divided by {factor}")
    return max(seconds // factor, 1)


def shorten(text: str, factor: int, time_factor: int | None = None) -> str:
    """The rules in `text` with each minute window divided by `factor` (the `N * 60` ones by `time_factor`)."""
    time_factor = factor if time_factor is None else time_factor

    def window(m: re.Match[str]) -> str:
        step = f":{_seconds(m[2], factor)}s" if m[2] else ""
        return f"[{_seconds(m[1], factor)}s{step}]"

    text = re.sub(r"\[(\d+)m(?::(\d+)m)?\]", window, text)
    text = re.sub(r"^(\s*for: )(\d+)m$", lambda m: f"{m[1]}{_seconds(m[2], factor)}s", text, flags=re.M)
    text = re.sub(r"\b(\d+) \* 60\b", lambda m: str(_seconds(m[1], time_factor)), text)
    left = re.findall(r"\[\d+[hdwy][^\]]*\]|for: \d+[hdwy]\b", text)
    if left:
        raise ValueError(f"windows not in minutes, not shortened: {left}")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factor", type=int, default=15)
    ap.add_argument("--time-factor", type=int, default=None)
    ap.add_argument("--rules", type=Path, default=RULES)
    args = ap.parse_args(argv)
    sys.stdout.write(shorten(args.rules.read_text(), args.factor, args.time_factor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
