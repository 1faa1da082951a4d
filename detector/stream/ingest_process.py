"""The ingest loop (detector/stream/ingest.py) in a process of its own, beside the Faust app.

Why a process: the ingest loop and the Faust app do not share any state (they meet only on the matches topic),
but in one process they share one GIL. Measured inside the worker, the ingest loop spent twice the CPU per
record it spends alone, and the agent's hops waited for the ingest's batches. Apart, each has its own
interpreter, and the two cores of a small pod both work.

What crosses the boundary, and how:
- start: the settings and the rules, pickled to a `spawn`ed child (a fresh interpreter: forking a process that
  may already run threads is unsafe, and the child needs neither Faust nor asyncio); the child loads the
  settings' source maps itself (the sources they add live in a registry of the process);
- stop: a multiprocessing Event (the Faust service's on_stop); SIGTERM to the child does the same (its handler
  only sets a flag the watch thread reads: signal handlers must take no lock), and the child ignores SIGINT
  (a terminal's Ctrl-C reaches the whole process group; the parent decides);
- state for /readyz (running, assigned, paused): three shared bytes, written by the child as they change;
- metrics: the child sends a snapshot of its registry every SNAPSHOT_EVERY_S over a pipe, and the parent
  serves it merged with its own (Metrics.exposition): ingest series are written only by the
  child, the agent's only by the parent;
- failure: the child exits (70 on a fatal ingest error, as the one-process worker did); the parent sees its
  end of the pipe close and, unless it is stopping, exits with the child's status so the orchestrator
  restarts the pod. The parent's death is the child's too: the kernel sends it SIGTERM (PR_SET_PDEATHSIG),
  and it leaves the group after committing what is acknowledged.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event as EventType
from typing import Any

from prometheus_client.metrics_core import Metric

from detector.engine import Engine
from detector.metrics import Metrics
from detector.rules.exceptions import load_exceptions
from detector.rules.model import Rule
from detector.sources import add_source_maps
from detector.stream.config import WorkerConfig
from detector.stream.ingest import IngestLoop
from detector.stream.redaction import install_log_redaction

log = logging.getLogger("detector.ingest")

SNAPSHOT_EVERY_S = 0.5
STATE_EVERY_S = 0.1  # how often the child copies running/assigned/paused into the shared bytes
_RUNNING, _ASSIGNED, _PAUSED = range(3)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FATAL_EXIT = 70  # EX_SOFTWARE: what the worker exits with when the ingest cannot go on
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections in the ingest process (Python's default: 700)


class _Flag:
    """One of the shared state bytes, read like the threading.Event it stands for (`assigned.is_set()`)."""

    def __init__(self, state: Any, index: int) -> None:
        self._state = state
        self._index = index

    def is_set(self) -> bool:
        return bool(self._state[self._index])


class IngestProcess:
    """Runs the ingest loop in a child process; the Faust app's side of it (same surface as IngestLoop's thread)."""

    def __init__(self, cfg: WorkerConfig, rules: Sequence[Rule], on_exit: Callable[[int], None]) -> None:
        """`on_exit(status)` is called (from a thread) when the child ends without having been asked to stop."""
        if cfg.exceptions:
            load_exceptions(cfg.exceptions)  # a broken file fails the worker's start here, in the parent, plainly
        ctx = multiprocessing.get_context("spawn")
        self._state: SynchronizedArray[int] = ctx.Array("b", 3, lock=False)
        self._stop = ctx.Event()
        self._conn, child_end = ctx.Pipe(duplex=False)
        self._child_end: Connection | None = child_end
        self._snapshot: list[Metric] = []
        self._on_exit = on_exit
        self._stopping = False
        self.assigned = _Flag(self._state, _ASSIGNED)
        self._proc = ctx.Process(
            target=child_main,
            args=(cfg, list(rules), child_end, self._state, self._stop, os.getpid()),
            name="detector-ingest",
            daemon=True,  # also ended by multiprocessing's exit handler should the parent exit past on_stop
        )

    @property
    def running(self) -> bool:
        return bool(self._state[_RUNNING]) and self._proc.is_alive()

    @property
    def paused(self) -> bool:
        return bool(self._state[_PAUSED])

    def snapshot(self) -> list[Metric]:
        """The child's metric families as last sent (empty until its first snapshot)."""
        return self._snapshot

    def start(self) -> None:
        self._proc.start()
        if self._child_end is not None:
            self._child_end.close()  # the parent's copy: the pipe must read EOF when the child is gone
            self._child_end = None
        threading.Thread(target=self._receive, name="detector-ingest-metrics", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._proc.join(timeout)
        if self._proc.is_alive():
            log.warning("ingest process still running %.0f s after stop: terminating it", timeout or 0)
            self._proc.terminate()
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()

    def _receive(self) -> None:
        while True:
            try:
                self._snapshot = self._conn.recv()
            except (EOFError, OSError):
                break
        self._proc.join(30)
        if not self._stopping:
            log.error("ingest process exited (status %s)", self._proc.exitcode)
            self._on_exit(FATAL_EXIT)


# -- the child -------------------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the ppid check below still stops it
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(0)


def child_main(
    cfg: WorkerConfig,
    rules: list[Rule],
    conn: Connection,
    state: Any,
    stop: EventType,
    parent: int,
) -> None:
    """The ingest process: the loop in its main thread, a thread for stop requests, state and metrics."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The handler only sets a flag, which the watch thread reads: a handler that set the Event took its lock,
    # and a second SIGTERM arriving inside that (the parent's death signal, then another) deadlocked the
    # process on its own lock, a zombie member holding its partitions.
    terminated = [False]

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated[0] = True

    signal.signal(signal.SIGTERM, on_sigterm)
    _die_with_parent(parent)
    install_log_redaction(cfg)
    logging.basicConfig(level=cfg.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    if cfg.source_maps:  # sources added by mapping files live in a registry of the process: load them here too
        add_source_maps(cfg.source_maps)
    metrics = Metrics()
    metrics.set_topics(cfg.topics)
    engine = Engine(rules, use_prefilter=cfg.prefilter, max_record_bytes=cfg.max_record_bytes)

    def on_fatal(exc: BaseException) -> None:
        log.critical("fatal ingest error, exiting: %s", exc)
        logging.shutdown()
        os._exit(FATAL_EXIT)

    try:
        loop = IngestLoop(cfg, engine, metrics, on_fatal)
    except Exception as exc:
        on_fatal(exc)
        return
    _quiet_collector()

    sending = threading.Lock()  # the watch thread's snapshots and the last one, sent from this thread

    def send() -> None:
        with sending, contextlib.suppress(OSError, ValueError):  # the parent is gone: nobody to tell
            conn.send(list(metrics.registry.collect()))

    def watch() -> None:
        last_snapshot = 0.0
        while not stop.wait(STATE_EVERY_S) and not terminated[0]:
            _publish_state(loop, state)
            now = time.monotonic()
            if now - last_snapshot >= SNAPSHOT_EVERY_S:
                last_snapshot = now
                send()
        loop.stop()

    threading.Thread(target=watch, name="detector-ingest-watch", daemon=True).start()
    try:
        loop.run()  # in this thread: the loop is the process's work (run() reports a failure through on_fatal)
    finally:
        state[_RUNNING] = 0
        send()
        conn.close()


def _quiet_collector() -> None:
    """Keep Python's cyclic garbage collector out of the hot loop.

    The loop's garbage is freed by reference counting: records, events and alerts hold no cycles. But consumed
    Message objects are tracked by the collector, a batch's worth outlived the young collections that ran while it
    was alive, and the survivors piled up in the oldest generation. At 50k records/s that set off a full
    collection about every 3 s, which walked everything built at start (rules, source maps, the prefilter) for
    10-33 ms and found nothing to free: a pause of the loop each time. So what exists now is frozen (never walked
    again), and young collections run every GC_YOUNG_THRESHOLD allocations instead of 700, so a batch has
    usually been released before one runs.
    """
    freeze_heap()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def freeze_heap() -> None:
    """Move what the process has built so far out of the collector's reach: full collections stop walking it."""
    gc.collect()  # garbage from start-up first: frozen, it would never be freed
    gc.freeze()


def _publish_state(loop: Any, state: Any) -> None:
    state[_RUNNING] = 1 if loop.running else 0
    state[_ASSIGNED] = 1 if loop.assigned.is_set() else 0
    state[_PAUSED] = 1 if loop.paused else 0
