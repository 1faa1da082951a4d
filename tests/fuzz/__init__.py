"""Fuzzing the detection core against hostile and messy input.

`invariants` states what must hold for every raw record, `generators` makes hostile records, `run`
is the long-running fuzzer (`python -m tests.fuzz.run`) and `corpus/` keeps one minimised input per
finding, which `tests/test_fuzz_core.py` replays on every `make test`.
"""
