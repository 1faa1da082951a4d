"""The README documents what the code does: its settings and metrics tables are checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from detector.metrics import Metrics
from detector.stream.config import SETTINGS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default_and_help() -> None:
    for s in SETTINGS:
        default = "—" if s.default == "" else f"`{s.default}`"
        assert f"| `{s.env}` | {default} | {s.help} |" in README, s.env
    documented = set(re.findall(r"^\| `(DETECTOR_[A-Z_]+)` \|", README, re.MULTILINE))
    assert documented == {s.env for s in SETTINGS}


def test_every_metric_is_in_the_readme() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = set()
    for family in registry.collect():
        kind = family.type
        names.add(f"{family.name}_total" if kind == "counter" else family.name)
    for name in names:
        assert f"`{name}`" in README, name


def test_the_readme_sources_table_is_written_from_the_maps() -> None:
    from detector.sources import sources_table

    assert sources_table() in README, (
        "regenerate: python -c 'from detector.sources import sources_table as t; print(t())'"
    )


def test_the_readme_settings_table_is_written_from_the_settings() -> None:
    from detector.stream.config import settings_table

    assert settings_table() in README, (
        "regenerate: python -c 'from detector.stream.config import settings_table as t; print(t())'"
    )


def test_the_readme_metrics_table_is_written_from_the_metrics() -> None:
    from detector.metrics import metrics_table

    assert metrics_table() in README, (
        "regenerate: python -c 'from detector.metrics import metrics_table as t; print(t())'"
    )
