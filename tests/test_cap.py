"""The per-window alert cap, as pure functions (the worker keeps their state in a Faust table)."""

from __future__ import annotations

from detector.stream import cap


def test_first_cap_alerts_publish_then_suppress() -> None:
    state = None
    published = []
    for i in range(5):
        d = cap.on_alert(state, 100.0 + i, cap=3, interval=60)
        published.append(d.publish)
        assert d.summary_of is None
        state = d.state
    assert published == [True, True, True, False, False]
    assert state is not None and state["count"] == 3 and state["suppressed"] == 2


def test_no_cap_publishes_everything() -> None:
    state = None
    for i in range(200):
        d = cap.on_alert(state, float(i), cap=0, interval=60)
        assert d.publish
        state = d.state


def test_new_window_after_interval_summarises_previous() -> None:
    state = None
    for i in range(4):
        state = cap.on_alert(state, 10.0 + i, cap=2, interval=60).state
    d = cap.on_alert(state, 71.0, cap=2, interval=60)
    assert d.publish and d.state["start"] == 71.0 and d.state["count"] == 1
    assert d.summary_of is not None and d.summary_of["suppressed"] == 2


def test_tick_summarises_once_after_window_end() -> None:
    state = None
    for i in range(3):
        state = cap.on_alert(state, 10.0 + i, cap=1, interval=30).state
    assert cap.on_tick(state, 20.0, 30) is None  # window still open
    tick = cap.on_tick(state, 41.0, 30)
    assert tick is not None and tick.summary_of is not None and tick.summary_of["suppressed"] == 2
    assert cap.on_tick(tick.state, 50.0, 30) is None  # summarised exactly once
    # a later alert opens a new window without summarising the old one again
    d = cap.on_alert(tick.state, 60.0, cap=1, interval=30)
    assert d.summary_of is None and d.publish


def test_window_without_suppression_needs_no_summary() -> None:
    state = cap.on_alert(None, 0.0, cap=5, interval=10).state
    assert cap.on_tick(state, 100.0, 10) is None
