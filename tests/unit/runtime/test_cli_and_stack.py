"""The command's registry and exit codes, and the runtime's reading of template.yaml."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mls_sync_local import cli
from mls_sync_local.cli import build_parser, main
from mls_sync_local.errors import EXIT_FAILED, EXIT_USAGE, CommandError, UsageError
from mls_sync_local.runtime.stack import find_function, require_loopback, template_facts


def test_a_command_module_that_cannot_be_loaded_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a table naming a module that does not exist and one that does
    with pytest.raises(CommandError, match=r"mls_sync_local\.nothing_here cannot be loaded"):
        build_parser(("mls_sync_local.nothing_here", "mls_sync_local.runtime.dlq"))
    # And a command whose module cannot be imported
    monkeypatch.setitem(cli.COMMANDS, "broken", ("mls_sync_local.nothing_here", "broken"))
    # When it runs, then exit 1 and one line naming the module
    assert main(["broken"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("mls-sync: error: mls_sync_local.nothing_here cannot be loaded: ")
    assert err.count("\n") == 1


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["no-such-command"])
    assert raised.value.code == EXIT_USAGE
    assert capsys.readouterr().err.count("\n") == 1


def test_command_errors_are_one_line_and_debug_adds_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a command that fails with a usage error deep inside
    def register(subparsers: Any) -> None:
        def run(args: argparse.Namespace) -> int:
            raise UsageError("portfolio.yaml: listings[3].status: 'sould' is not a status")

        subparsers.add_parser("boom").set_defaults(run=run)

    module = type(cli)("fake_commands")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "fake_commands", module)
    monkeypatch.setattr(cli, "COMMANDS", {"boom": ("fake_commands", "fails")})
    # When it runs, then exit 2 and one line
    assert main(["boom"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "mls-sync: error: portfolio.yaml: listings[3].status: 'sould' is not a status\n"
    # And with --debug, the traceback too
    assert main(["--debug", "boom"]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "http://localhost:4566", "http://[::1]:5000"]
)
def test_loopback_endpoints_are_accepted(url: str) -> None:
    assert require_loopback(url) == url


@pytest.mark.parametrize(
    "url",
    [None, "", "https://sqs.us-east-1.amazonaws.com", "http://10.0.0.5:5000", "file:///tmp/x"],
)
def test_other_endpoints_are_refused(url: str | None) -> None:
    with pytest.raises(UsageError):
        require_loopback(url)


def test_functions_found_by_short_name_logical_id_or_directory() -> None:
    assert find_function("manual-sync").logical_id == "ManualSyncFunction"
    assert find_function("manual_sync").module == "functions.manual_sync.app"
    assert find_function("WorkerFunction").short_name == "worker"
    with pytest.raises(UsageError, match="expected one of"):
        find_function("nope")


def test_template_facts_hold_the_mappings_and_redrive_policies() -> None:
    facts = template_facts()
    worker = facts.mappings["WorkerFunctionSyncJobs"]
    assert (worker.queue, worker.batch_size, worker.max_concurrency) == (
        "SyncQueue",
        5,
        "WorkerMaxConcurrency",
    )
    assert worker.report_batch_item_failures
    assert facts.redrive == {"SyncQueue": ("SyncDLQ", 3), "UnpublishQueue": ("UnpublishDLQ", 5)}
    assert facts.other_dlqs == ("ScheduleDLQ",)
    assert facts.functions["WorkerFunction"].timeout_seconds == 300
    assert facts.functions["PublisherFunction"].memory_mb == 512
