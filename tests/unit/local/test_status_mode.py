"""`mls-sync status` names how each connection learns of changes: replication, the
EntityEvent log with its anchor, not probed yet, and whether the MLS may push."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mls_sync_local.status import mode_of, render, status_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("item", "mode"),
    [
        ({}, "auto?"),
        ({"detection": "auto", "detected": "replication"}, "replication"),
        ({"detection": "auto", "detected": "entityEvent", "eventSequence": 42}, "entityEvent@42"),
        ({"detection": "entityEvent"}, "entityEvent@-"),
        ({"detection": "replication", "detected": "entityEvent"}, "replication"),
        (
            {"detection": "entityEvent", "eventSequence": 0, "pushSecretArn": "arn"},
            "entityEvent@0+push",
        ),
    ],
)
def test_the_mode_says_what_a_run_reads(item: dict[str, Any], mode: str) -> None:
    assert mode_of(item) == mode


def test_the_table_and_json_carry_the_mode() -> None:
    rows = status_rows(
        [{"connectionId": "c-1", "vendor": "reso", "detection": "entityEvent", "eventSequence": 7}],
        now=NOW,
        period_seconds=900,
    )
    assert rows[0].to_json()["mode"] == "entityEvent@7"
    table = render(rows, now=NOW, period_seconds=900).splitlines()
    assert table[0].split()[:3] == ["CONNECTION", "VENDOR", "MODE"]
    assert table[1].split()[:3] == ["c-1", "reso", "entityEvent@7"]
