"""Fleet prevalence and first-seen of the executables a rule's name clause selects: pure state functions.

A *candidate* is an execution for which the rule's name clause holds whatever the path: for the built-in rule,
process name, original file name or parent name client32.exe on a Windows process start. It is derived from
the rule itself (`candidate_query`): the query with its top-level conjuncts on executable paths removed.

Every candidate updates one row per *executable* (`exe_key`: `process.hash.sha256` when present, else the
case-folded `process.executable`): the hosts that ran it, each with its first and last execution, plus the
executable's first and last execution in the fleet and an execution count. Times are event times
(`@timestamp`, epoch seconds), so replaying an observation changes nothing but the count, and the stream and
`detector scan` give the same figures for the same input order.

Bounds: a row holds at most `max_hosts` hosts exactly (more are counted in `overflow`, and the host count is
then a lower bound); hosts whose last execution is older than the horizon before the row's latest one are
dropped; `Executables` bounds the number of rows (least recently seen first out, and rows not seen for a
horizon expire). No I/O: the worker keeps rows in a Faust table, `detector scan` in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.fields import first
from detector.rules.eql import And, Compare, CompiledQuery, Node, Not, Or
from detector.times import epoch_to_iso, iso_to_epoch

DEFAULT_HORIZON_S = 30 * 86400
DEFAULT_MAX_HOSTS = 4000  # a full row is ~250 KB of JSON: one changelog record stays under Kafka's 1 MiB
DEFAULT_MAX_EXECUTABLES = 200_000
HOST_KEY_MAX = 100  # characters of a host's name kept as its key (bounds a row whatever the telemetry says)
# Fields naming where an executable lives: a conjunct that only tests these is the rule's path clause.
PATH_FIELDS = frozenset({"process.executable", "process.parent.executable"})

Row = dict[str, Any]  # {"h": {host: [first, last]}, "x": overflow, "f": first, "l": last, "n": executions}


# ---------------------------------------------------------------------------------------- candidates


def _fields(node: Node) -> set[str]:
    if isinstance(node, Compare):
        return {node.field}
    if isinstance(node, Not):
        return _fields(node.child)
    if isinstance(node, And | Or):
        return set().union(*(_fields(c) for c in node.children))
    return set()


def candidate_query(query: CompiledQuery) -> CompiledQuery:
    """The rule's query without its path clause: what selects a candidate execution.

    Top-level conjuncts whose every field is an executable path (`PATH_FIELDS`) are removed; what is left (the
    event category, OS, event type and name clause) is compiled with the same semantics. A query with no such
    conjunct is its own candidate query (then only the rule's matches are counted). Every match of the rule is
    a candidate, since the candidate query is the rule's with conjuncts removed.
    """
    node = query.ast
    if not isinstance(node, And):
        return query
    kept = tuple(c for c in node.children if not (_fields(c) and _fields(c) <= PATH_FIELDS))
    if len(kept) == len(node.children) or not kept:
        return query
    ast: Node = kept[0] if len(kept) == 1 else And(kept)
    names = set().union(*(_fields(c) for c in kept))
    if query.category != "any":
        names.add("event.category")
    return CompiledQuery(f"{query.text} [without its path clause]", query.category, ast, frozenset(names))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate execution of a record: the row it updates, the host, its time, and its alerts (if any)."""

    key: str
    host: str
    ts: float | None  # the event's @timestamp, epoch s (None: the reader uses its own clock)
    alerts: tuple[dict[str, Any], ...] = field(default=())


def exe_key(event: Mapping[str, Any]) -> str | None:
    """The executable's identity: `sha256:<hash>` when the event has one, else `path:<case-folded path>`."""
    digest = first(event, "process.hash.sha256")
    if isinstance(digest, str) and digest.strip():
        return "sha256:" + digest.strip().lower()
    path = first(event, "process.executable")
    if isinstance(path, str) and path:
        return "path:" + path.casefold()
    return None


def host_key(event: Mapping[str, Any]) -> str | None:
    """The host's identity: host.id, else the case-folded host.name or host.hostname (cut to HOST_KEY_MAX)."""
    for name in ("host.id", "host.name", "host.hostname"):
        value = first(event, name)
        if isinstance(value, str) and value:
            return (value if name == "host.id" else value.casefold())[:HOST_KEY_MAX]
    return None


def candidate_of(event: Mapping[str, Any], alerts: Iterable[dict[str, Any]] = ()) -> Candidate | None:
    key, host = exe_key(event), host_key(event)
    if key is None or host is None:
        return None
    return Candidate(key, host, iso_to_epoch(event.get("@timestamp")), tuple(alerts))


# ---------------------------------------------------------------------------------------- one row


def observe(row: Row | None, host: str, ts: float, *, horizon: float, max_hosts: int) -> Row:
    """The row after one execution of its executable on `host` at `ts` (a new row; `row` is not changed)."""
    t = int(ts)
    hosts: dict[str, list[int]] = dict(row["h"]) if row else {}
    overflow = int(row["x"]) if row else 0
    latest = max(int(row["l"]), t) if row else t
    cutoff = latest - horizon
    if row and any(v[1] < cutoff for v in hosts.values()):
        hosts = {h: v for h, v in hosts.items() if v[1] >= cutoff}
    seen = hosts.get(host)
    if seen is not None:
        if t < seen[0] or t > seen[1]:
            hosts[host] = [min(seen[0], t), max(seen[1], t)]
    elif t >= cutoff:
        if len(hosts) < max_hosts:
            hosts[host] = [t, t]
        else:
            overflow += 1
    first_seen = min(int(row["f"]), t) if row else t
    if hosts and overflow == 0:  # every host is known: the fleet's first execution is the earliest kept
        first_seen = min(v[0] for v in hosts.values())
    return {"h": hosts, "x": overflow, "f": first_seen, "l": latest, "n": (int(row["n"]) if row else 0) + 1}


def enrichment(row: Row, key: str, host: str, ts: float | None) -> dict[str, Any]:
    """`detector.enrichment.prevalence` of an alert on `host` at `ts`, from the row its execution updated."""
    hosts: dict[str, list[int]] = row["h"]
    seen = hosts.get(host)
    t = int(ts) if ts is not None else None
    out: dict[str, Any] = {
        "executable": key,
        "hosts": len(hosts),
        "hosts_exact": int(row["x"]) == 0,
        "executions": int(row["n"]),
        "first_seen": {"fleet": epoch_to_iso(float(row["f"])), "host": None},
        "last_seen": {"fleet": epoch_to_iso(float(row["l"]))},
        "first_on_host": None,
    }
    if seen is not None:
        out["first_seen"]["host"] = epoch_to_iso(float(seen[0]))
        out["first_on_host"] = t is not None and t <= seen[0]
    return out


def reason_suffix(enr: Mapping[str, Any]) -> str:
    """The words the alert's reason sentence gains: "first seen on this host; 1 of 1,842 hosts"."""
    first_on_host = enr.get("first_on_host")
    if first_on_host:
        where = "first seen on this host"
    elif first_on_host is None:
        where = "not tracked on this host"
    else:
        where = f"seen on this host since {str(enr['first_seen']['host'])[:10]}"
    hosts = f"{int(enr['hosts']):,}" + ("" if enr.get("hosts_exact", True) else "+")
    return f"{where}; 1 of {hosts} hosts"


# ---------------------------------------------------------------------------------------- many rows


class Executables:
    """Rows by executable, at most `max_executables`: least recently seen out first; `detector scan`'s store.

    The worker keeps its rows in a Faust table and uses `Recency` alone for the bound (see detector/stream).
    """

    def __init__(
        self,
        *,
        horizon: float = DEFAULT_HORIZON_S,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        max_executables: int = DEFAULT_MAX_EXECUTABLES,
    ) -> None:
        self.horizon, self.max_hosts = horizon, max_hosts
        self.rows: dict[str, Row] = {}
        self.recency = Recency(max_executables, horizon)
        self.evicted = 0

    def observe(self, cand: Candidate, now: float) -> Row:
        """Apply one candidate (at `now` when it has no time of its own); returns the row after it."""
        ts = cand.ts if cand.ts is not None else now
        row = observe(self.rows.get(cand.key), cand.host, ts, horizon=self.horizon, max_hosts=self.max_hosts)
        self.rows[cand.key] = row
        for gone in self.recency.touch(cand.key, max(ts, now)):
            if gone != cand.key:
                self.rows.pop(gone, None)
                self.evicted += 1
        return row


class Recency:
    """Which rows to drop: an LRU of keys by when they were last seen, bounded in size and by the horizon.

    `touch(key, t)` marks `key` seen at `t` and returns the keys to drop: beyond `limit` the least recently
    seen, and any not seen since `t - horizon`. O(1) per touch (amortised).
    """

    def __init__(self, limit: int, horizon: float) -> None:
        self.limit, self.horizon = max(limit, 1), horizon
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def touch(self, key: str, t: float) -> list[str]:
        seen = self._seen
        last = seen.pop(key, None)
        seen[key] = t if last is None else max(last, t)
        gone: list[str] = []
        while len(seen) > self.limit:
            gone.append(seen.popitem(last=False)[0])
        cutoff = t - self.horizon
        while seen:
            oldest, when = next(iter(seen.items()))
            if when >= cutoff or oldest == key:
                break
            seen.popitem(last=False)
            gone.append(oldest)
        return gone

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


def enrich(cand: Candidate, row: Row) -> None:
    """Give each alert of `cand` its prevalence, from the row after `cand` was observed (alerts changed in place)."""
    from detector.alerts.builder import with_prevalence  # the builder is the alerts' one writer

    if not cand.alerts:
        return
    enr = enrichment(row, cand.key, cand.host, cand.ts)
    suffix = reason_suffix(enr)
    for alert in cand.alerts:
        with_prevalence(alert, enr, suffix)


class ScanPrevalence(Executables):
    """`detector scan`'s prevalence: candidates applied as they are read, in file order (one pass)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = 0.0  # the latest event time read: the scan's "now", so that old files are not all expired

    def apply(self, candidates: Iterable[Candidate]) -> None:
        for cand in candidates:
            if cand.ts is not None and cand.ts > self.clock:
                self.clock = cand.ts
            enrich(cand, self.observe(cand, self.clock))
