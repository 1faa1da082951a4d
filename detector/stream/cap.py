"""The rule's "at most max_signals alerts per execution" as a cap per rule per window, on a stream.

A window opens with the first alert of a rule and lasts the rule's interval. Within it the first
`cap` alerts are published; later ones are counted as suppressed. Once the window has ended, one
suppression record (detector/alerts/suppression.py) summarises what was held back. The state is a small
dict, kept by the worker in a Faust table keyed by rule id, so it survives restarts; these functions are
pure so they can be tested without Kafka (detector/stream/publish.py puts them to use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

State = dict[str, Any]  # {"start": epoch s, "count": int, "suppressed": int, "summarised": bool, ...}


@dataclass(frozen=True, slots=True)
class Decision:
    publish: bool  # publish this alert
    state: State  # the new state to store
    summary_of: State | None = None  # an ended window that needs its suppression record now


def _new_window(now: float) -> State:
    return {"start": now, "count": 0, "suppressed": 0, "summarised": False}


def _needs_summary(state: State | None, now: float, interval: float) -> bool:
    return bool(state and state["suppressed"] > 0 and not state["summarised"] and now >= state["start"] + interval)


def on_alert(state: State | None, now: float, cap: int, interval: float) -> Decision:
    """Decide for one alert arriving at `now` (cap 0 = no cap)."""
    summary = dict(state) if state is not None and _needs_summary(state, now, interval) else None
    state = _new_window(now) if state is None or now >= state["start"] + interval else dict(state)
    if cap == 0 or state["count"] < cap:
        state["count"] += 1
        return Decision(True, state, summary)
    state["suppressed"] += 1
    state.setdefault("first_suppressed", now)
    state["last_suppressed"] = now
    return Decision(False, state, summary)


def on_tick(state: State | None, now: float, interval: float) -> Decision | None:
    """A periodic tick: if a window has ended with suppressed alerts, its summary is due."""
    if state is None or not _needs_summary(state, now, interval):
        return None
    new_state = dict(state)
    new_state["summarised"] = True
    return Decision(False, new_state, dict(state))
