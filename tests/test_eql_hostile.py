"""Hostile values: wildcard matching must cost time linear in the value, whatever the value holds.

A backtracking regex for a pattern with several `*` retries every way of splitting the value between
the stars. With upstream's `HarddiskVolume*` revision of the rule, one crafted 360 KB executable path
cost seconds of CPU before the stars were compiled to atomic groups (measured on the code before:
2.2 s for repeated `\\Device\\HarddiskVolume1\\Users\\`, 3.2 s for repeated near misses ending `a.ex`,
and a custom `*a*a*a*a*a*b` took 17 s on a 100-character value and never finished on these). The bound
is CPU time of this process, so a loaded machine does not make the test flaky, and it is generous: the
linear matcher needs a few milliseconds per value. A CPU timer stops a regression at a hard limit so
it fails instead of hanging (re checks for signals while it matches).
"""

from __future__ import annotations

import signal
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from detector.rules.eql import CompiledQuery, compile_query, wildcard_match
from tests.test_eql import SEED, proc

REVISED_RULE = Path(__file__).parent / "fixtures" / "rules" / "netsupport_v2_harddiskvolume_star.toml"
SIZE = 360_000
TOTAL_CPU_BUDGET = 0.5
HARD_STOP = 5.0


class OverBudget(Exception):
    pass


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block once this process has used `seconds` of CPU time."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise OverBudget(f"over {seconds} s of CPU")

    previous = signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def revised() -> CompiledQuery:
    return compile_query(tomllib.loads(REVISED_RULE.read_text())["rule"]["query"])


def repeat(unit: str, tail: str = "") -> str:
    return unit * (SIZE // len(unit)) + tail


def exe_event(path: Any) -> dict[str, Any]:
    return proc(process__name="client32.exe", process__executable=path, process__parent__executable=path)


# (id, query, event, expected match) — every value is about 360 KB and built to defeat backtracking.
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("volume-users-no-exe", "revised", exe_event(repeat("\\Device\\HarddiskVolume1\\Users\\")), False),
    ("volume-users-near-exe", "revised", exe_event(repeat("\\Device\\HarddiskVolume1\\Users\\a.ex")), False),
    (
        "volume-programdata-near-exe",
        "revised",
        exe_event(repeat("\\Device\\HarddiskVolume1\\ProgramData\\a.ex")),
        False,
    ),
    # Ends in .exe, but the middle segment `\Users\` never occurs: the search must give up in one pass.
    (
        "volume-users-never-closed",
        "revised",
        exe_event("\\Device\\HarddiskVolume" + repeat("1\\Users", ".exe")),
        False,
    ),
    # Thousands of near occurrences of the middle segment, then the real one at the very end.
    (
        "volume-many-near-users-then-hit",
        "revised",
        exe_event("\\Device\\HarddiskVolume" + repeat("\\User", "\\Users\\x.exe")),
        True,
    ),
    ("volume-list-value", "revised", exe_event([repeat("\\Device\\HarddiskVolume1\\Users\\")] * 2), False),
    # The seed rule's one-star patterns: anchored regexes, linear already; guard them too.
    ("seed-users-near-exe", "seed", exe_event(repeat("C:\\Users\\a.ex")), False),
    ("seed-parent-near-client32", "seed", exe_event("C:\\Users\\" + repeat("x\\client32.ex")), False),
    # Custom rules: many stars against a value of the one letter they all want.
    ("custom-many-stars", 'f : "*a*a*a*a*a*b"', {"f": repeat("a")}, False),
    ("custom-many-stars-like", 'f like "*a*a*a*a*a*b"', {"f": repeat("a")}, False),
    ("custom-many-stars-question", 'f : "*?a?*?a?*?a?*b"', {"f": repeat("a")}, False),
    ("custom-many-stars-hit", 'f : "*a*a*a*a*a*b"', {"f": repeat("a", "b")}, True),
    # Head and tail match, so the middle segments are searched across the whole value.
    ("custom-middles-scan-everything", 'f : "*aab*aab*b"', {"f": repeat("a", "b")}, False),
    ("custom-middles-case-classes", 'f : "*?A?b*?A?b*b"', {"f": repeat("a", "b")}, False),
    ("custom-not-many-stars", 'not f : "*a*a*a*b*"', {"f": repeat("a")}, True),
]


def compiled(query: str) -> CompiledQuery:
    if query == "revised":
        return revised()
    if query == "seed":
        return compile_query(SEED)
    return compile_query(f"any where {query}")


def test_adversarial_values_cost_linear_time() -> None:
    queries = {case_id: compiled(query) for case_id, query, _, _ in CASES}
    spent: dict[str, float] = {}
    for case_id, _, event, expected in CASES:
        start = time.process_time()
        try:
            with cpu_limit(HARD_STOP):
                got = queries[case_id].matches(event)
        except OverBudget:
            pytest.fail(f"{case_id}: still matching after {HARD_STOP} s of CPU")
        spent[case_id] = time.process_time() - start
        assert got is expected, case_id
    total = sum(spent.values())
    slowest = max(spent, key=lambda k: spent[k])
    assert total < TOTAL_CPU_BUDGET, f"{total:.2f}s CPU in total; slowest {slowest}: {spent[slowest]:.2f}s"


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("\\Device\\HarddiskVolume*\\Users\\*.exe", repeat("\\Device\\HarddiskVolume1\\Users\\"), False),
        ("*a*a*a*a*a*b", repeat("A"), False),
        ("*a*a*a*a*a*b", repeat("A", "B"), True),
    ],
)
def test_wildcard_match_is_linear_too(pattern: str, value: str, expected: bool) -> None:
    start = time.process_time()
    with cpu_limit(HARD_STOP):
        assert wildcard_match(pattern, value) is expected
    assert time.process_time() - start < TOTAL_CPU_BUDGET


def test_cost_grows_linearly() -> None:
    # 4x the value must not cost 16x, as a quadratic matcher would: linear is 4x, with slack for noise.
    # Wall-clock minimum of several runs: while a CPU timer is armed Linux reads process CPU time at
    # tick granularity, too coarse for milliseconds.
    query = revised()
    unit = "\\Device\\HarddiskVolume1\\Users\\"

    def cost(size: int) -> float:
        event = exe_event(unit * (size // len(unit)))
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            matched = query.matches(event)
            best = min(best, time.perf_counter() - start)
            assert not matched
        return best

    with cpu_limit(HARD_STOP):
        small, large = cost(50_000), cost(200_000)
    assert large < 10 * small, f"50 KB: {small * 1e3:.2f} ms, 200 KB: {large * 1e3:.2f} ms"
