"""`mls-sync brake release|discard CONNECTION_ID` refuses what it must refuse before
touching anything: local runtime only, a known decision."""

from __future__ import annotations

import pytest

from mls_sync_local.cli import COMMANDS, build_parser, main
from mls_sync_local.errors import EXIT_USAGE


def test_brake_is_a_registered_command() -> None:
    assert COMMANDS["brake"][0] == "mls_sync_local.brake"
    args = build_parser(["mls_sync_local.brake"]).parse_args(["brake", "discard", "c-1", "--json"])
    assert (args.command, args.decision, args.connection_id, args.json) == (
        "brake",
        "discard",
        "c-1",
        True,
    )


def test_an_unknown_decision_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["brake", "hold", "c-1"])
    assert exited.value.code == EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err


def test_a_non_loopback_endpoint_is_refused_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://lambda.us-east-1.amazonaws.com")
    assert main(["brake", "release", "c-1"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("mls-sync: error: refusing non-loopback endpoint")
    assert "\n" not in err
