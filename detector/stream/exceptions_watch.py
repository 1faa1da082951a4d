"""The worker's rule exceptions (DETECTOR_EXCEPTIONS), picked up again when their files change, without a restart.

Kubernetes changes a mounted ConfigMap in place (it swaps the `..data` symlink), so a change shows only in the
files' content: every `exceptions_reload_interval` seconds the ingest loop reads the files and compares their
SHA-256 with the loaded ones. Files of a few KiB cost nothing to read. A changed set is loaded whole and
swapped into the engine in one assignment, in the ingest loop itself (no record sees half of it). A new
version that fails to load (half-written, a value list, bad JSON) keeps the previous exceptions, logs the
reason and counts detector_exceptions_reloads_total{result="error"}; the worker never stops for it. At start
a broken file is a configuration error (the config loader refuses it), as a bad rule file is.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence

from detector.engine import Engine
from detector.metrics import Metrics
from detector.rules.exceptions import ExceptionLists, ExceptionsError, load_exceptions

log = logging.getLogger("detector.exceptions")


def fingerprint(paths: Sequence[str]) -> str:
    """SHA-256 over the files' contents (an unreadable file hashes as its error, so it counts as a change)."""
    h = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        except OSError as exc:
            h.update(f"unreadable: {exc}".encode())
    return h.hexdigest()


class ExceptionsWatch:
    def __init__(self, paths: Sequence[str], interval: float, metrics: Metrics) -> None:
        self.paths = tuple(paths)
        self.interval = interval
        self.metrics = metrics
        self._seen = ""
        self._next = 0.0

    def start(self, engine: Engine) -> None:
        """The first load: a file that cannot be loaded raises ExceptionsError."""
        self._seen = fingerprint(self.paths)
        self._install(engine, load_exceptions(self.paths), "loaded")
        self._next = time.monotonic() + self.interval

    def poll(self, engine: Engine, now: float) -> None:
        """Called by the ingest loop between batches; does work only every `interval` seconds."""
        if now < self._next:
            return
        self._next = now + self.interval
        seen = fingerprint(self.paths)
        if seen == self._seen:
            return
        self._seen = seen  # a broken version is reported once, not on every poll
        try:
            lists = load_exceptions(self.paths)
        except ExceptionsError as exc:
            self.metrics.exceptions_reloads.labels("error").inc()
            log.error("exceptions changed but cannot be loaded, keeping the previous ones: %s", exc)
            return
        self._install(engine, lists, "reloaded")

    def _install(self, engine: Engine, lists: ExceptionLists, verb: str) -> None:
        engine.exceptions = lists
        self.metrics.exceptions_reloads.labels("ok").inc()
        self.metrics.exceptions_items.set(len(lists.items))
        log.info(
            "exceptions %s from %s: %d list(s) %s, %d item(s), %d active",
            verb,
            ", ".join(self.paths),
            len(set(lists.lists)),
            ", ".join(dict.fromkeys(lists.lists)) or "-",
            len(lists.items),
            lists.active(),
        )
