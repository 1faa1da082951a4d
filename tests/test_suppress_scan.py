"""Alert suppression in `detector scan`, on tests/fixtures/suppression/positives.ndjson.

The fixture: 8 positives of the built-in rule, event times 08:00:00 to 08:01:40 on 2026-11-20:

  1 08:00:00 wks-a alice   2 08:00:10 wks-a alice   3 08:00:20 wks-b bob     4 08:00:30 wks-a carol
  5 08:00:50 wks-b bob     6 08:01:05 wks-a alice   7 08:01:30 wks-c (no user)  8 08:01:40 wks-c (no user)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures"
POSITIVES = FIXTURES / "suppression" / "positives.ndjson"
RULE = FIXTURES / "rules" / "netsupport_suppressed.toml"


def scan(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[list[dict[str, Any]], str]:
    assert main(["scan", *args]) == 0
    out, err = capsysbinary.readouterr()
    return [orjson.loads(line) for line in out.splitlines()], err.decode()


def view(docs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            d["host"]["name"],
            d["kibana.alert.suppression.docs_count"],
            d["kibana.alert.suppression.start"][11:19],
            d["kibana.alert.suppression.end"][11:19],
        )
        for d in docs
    ]


def test_suppress_by_host_for_a_minute(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    docs, err = scan(
        capsysbinary,
        "--suppress-by",
        "host.name",
        "--suppress-for",
        "1m",
        "--summary-json",
        str(summary),
        str(POSITIVES),
    )
    assert view(docs) == [
        ("wks-a", 0, "08:00:00", "08:00:00"),  # 1: created
        ("wks-b", 0, "08:00:20", "08:00:20"),  # 3: created (2 counted into wks-a)
        ("wks-a", 2, "08:00:00", "08:00:30"),  # 6 is past wks-a's minute: its update (2 and 4 counted), then
        ("wks-a", 0, "08:01:05", "08:01:05"),  #   6 opens the next window
        ("wks-c", 0, "08:01:30", "08:01:30"),  # 7: created; the watermark (08:01:30) passes wks-b's end
        ("wks-b", 1, "08:00:20", "08:00:50"),  #   08:01:20: wks-b's update (5 counted)
        ("wks-c", 1, "08:01:30", "08:01:40"),  # end of input: wks-c's window (8 counted) closed
    ]
    # an update is the alert again: same id, same document but for its suppression fields
    first, update = docs[0], docs[2]
    assert update["kibana.alert.uuid"] == first["kibana.alert.uuid"]
    assert "kibana.alert.last_detected" in update  # when the update was made, as Kibana sets it
    same = {k: v for k, v in update.items() if not k.startswith("kibana.alert.suppression.")}
    same.pop("kibana.alert.last_detected")
    assert same == {k: v for k, v in first.items() if not k.startswith("kibana.alert.suppression.")}
    assert first["kibana.alert.suppression.terms"] == [{"field": "host.name", "value": ["wks-a"]}]
    assert first["kibana.alert.rule.parameters"]["alert_suppression"] == {
        "group_by": ["host.name"],
        "duration": {"value": 1, "unit": "m"},
        "missing_fields_strategy": "suppress",
    }
    # an index writing by id keeps one document per group window: the last one
    by_id = {d["kibana.alert.uuid"]: d["kibana.alert.suppression.docs_count"] for d in docs}
    assert sorted(by_id.values()) == [0, 1, 1, 2] and sum(by_id.values()) + len(by_id) == 8
    assert "alerts: 4" in err and "suppressed into an alert's group: 4 (3 updated alert documents" in err
    s = orjson.loads(summary.read_bytes())
    assert (s["alerts"], s["suppressed"], s["alert_updates"]) == (4, 4, 3)


def test_rule_block_groups_by_host_and_user_and_does_not_suppress_missing_users(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    docs, err = scan(capsysbinary, "--rule", str(RULE), str(POSITIVES))
    suppressed = [d for d in docs if "kibana.alert.suppression.terms" in d]
    plain = [d for d in docs if "kibana.alert.suppression.terms" not in d]
    # 7 and 8 lack user.name: doNotSuppress publishes each as it is, without suppression fields
    assert [d["host"]["name"] for d in plain] == ["wks-c", "wks-c"]
    assert [(d["user"]["name"], n) for d, (_, n, _, _) in zip(suppressed, view(suppressed), strict=True)] == [
        ("alice", 0),
        ("bob", 0),
        ("carol", 0),
        ("alice", 1),  # 6 (08:01:05) is past alice's minute: the update (2 counted) ...
        ("alice", 0),  # ... and the next window
        ("bob", 1),  # closed by the watermark at 7 (08:01:30 >= 08:01:20)
    ]
    assert suppressed[0]["kibana.alert.suppression.terms"] == [
        {"field": "host.name", "value": ["wks-a"]},
        {"field": "user.name", "value": ["alice"]},
    ]
    assert "alerts: 6" in err and "suppressed into an alert's group: 2" in err


def test_missing_fields_are_one_group_with_suppress(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    docs, _ = scan(capsysbinary, "--suppress-by", "user.name", "--suppress-for", "1h", str(POSITIVES))
    groups = {orjson.dumps(d["kibana.alert.suppression.terms"]): d["kibana.alert.suppression.docs_count"] for d in docs}
    assert groups == {
        b'[{"field":"user.name","value":["alice"]}]': 2,
        b'[{"field":"user.name","value":["bob"]}]': 1,
        b'[{"field":"user.name","value":["carol"]}]': 0,
        b'[{"field":"user.name","value":null}]': 1,
    }


def test_without_suppression_nothing_changes(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    docs, err = scan(capsysbinary, str(POSITIVES))
    assert len(docs) == 8 and not any("kibana.alert.suppression.terms" in d for d in docs)
    assert "suppressed into" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suppress-for", "5m"], "add --suppress-by"),
        (["--suppress-by", "a,b,c,d"], "1 to 3 field names"),
        (["--suppress-by", "host.name", "--suppress-for", "2d"], "suppression duration"),
    ],
)
def test_bad_options_are_usage_errors(
    capsysbinary: pytest.CaptureFixture[bytes], args: list[str], message: str
) -> None:
    assert main(["scan", *args, str(POSITIVES)]) == 2
    out, err = capsysbinary.readouterr()
    assert out == b"" and message in err.decode()
