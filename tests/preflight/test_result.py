"""Check and CheckReport: statuses, lookup, and the JSON they become."""

from __future__ import annotations

import json
import math

import pytest

from gradsight.preflight import Check, CheckReport


def test_report_ok_lookup_and_json() -> None:
    report = CheckReport(
        (Check("a", "pass", 1.0, "A."), Check("b", "warn", math.inf, "B.", "fix b",
                                               {"x": [math.nan]})),
        seconds=1.23456,
    )  # fmt: skip
    assert report.ok and len(report) == 2 and report["b"].fix == "fix b"
    assert [c.name for c in report.with_status("warn")] == ["b"]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data == {
        "checks": [
            {"name": "a", "status": "pass", "value": 1.0, "message": "A.", "fix": "",
             "details": {}},
            {"name": "b", "status": "warn", "value": "inf", "message": "B.", "fix": "fix b",
             "details": {"x": ["nan"]}},
        ],
        "ok": True,
        "seconds": 1.235,
    }  # fmt: skip
    failed = CheckReport((*report.checks, Check("c", "fail", None, "C.")))
    assert not failed.ok
    with pytest.raises(KeyError, match="ran: a, b"):
        report["c"]


def test_status_must_be_one_of_three() -> None:
    with pytest.raises(ValueError, match="'pass', 'warn', 'fail'"):
        Check("a", "error", None, "A.")  # type: ignore[arg-type]
