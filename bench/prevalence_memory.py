"""Bytes per executable of the prevalence table (detector/prevalence.py rows plus their Recency entry),
measured with tracemalloc over N rows of 1 and 10 hosts: `python -m bench.prevalence_memory`."""

from __future__ import annotations

import tracemalloc

import orjson

from detector.prevalence import Recency, observe

N = 20_000


def measure(hosts: int) -> tuple[float, float]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rows, lru = {}, Recency(N, 30 * 86400)
    for i in range(N):
        key = f"path:c:\\users\\user{i:06d}\\appdata\\roaming\\nsm\\client32.exe"
        row = None
        for h in range(hosts):
            row = observe(
                row, f"0123456789abcdef0123456789ab{h:04d}", 1_700_000_000 + h, horizon=30 * 86400, max_hosts=4000
            )
        rows[key] = row
        lru.touch(key, 0.0)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    changelog = sum(len(k) + len(orjson.dumps(r)) for k, r in rows.items()) / N
    return used / N, changelog


if __name__ == "__main__":
    for hosts in (1, 10, 100):
        mem, log = measure(hosts)
        print(
            f"{hosts:>4} host(s)/executable: {mem:,.0f} B in memory ({mem * 1e6 / 2**30:,.2f} GiB per million), "
            f"{log:,.0f} B per changelog record"
        )
