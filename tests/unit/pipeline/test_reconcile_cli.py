"""`mls-sync reconcile` refuses what it must refuse before touching anything."""

from __future__ import annotations

import pytest

from mls_sync_local.cli import build_parser, main
from mls_sync_local.errors import EXIT_USAGE


def test_reconcile_is_a_registered_command() -> None:
    args = build_parser(["mls_sync_local.reconcile"]).parse_args(["reconcile", "c-1", "--json"])
    assert (args.command, args.connection_id, args.json) == ("reconcile", "c-1", True)


def test_a_non_loopback_endpoint_is_refused_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sqs.us-east-1.amazonaws.com")
    assert main(["reconcile", "c-1"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("mls-sync: error: refusing non-loopback endpoint")
    assert "\n" not in err


def test_no_endpoint_is_refused_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["reconcile", "c-1"]) == EXIT_USAGE
    assert "AWS_ENDPOINT_URL is not set" in capsys.readouterr().err
