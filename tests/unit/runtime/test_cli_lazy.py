"""`mls-sync --help` imports no command module; the static command table agrees with what
the modules register; every subcommand's page has a description."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mls_sync_local import cli


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from mls_sync_local.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('boto3', 'pydantic', 'mls_sync', 'mls_sync_local.runtime')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in done.stderr
    for name in cli.COMMANDS:
        assert f"    {name} " in done.stdout


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_table_names_every_module_and_the_command_it_registers() -> None:
    for name, (module, line) in cli.COMMANDS.items():
        assert line
        assert set(_subparsers(cli.build_parser((module,)))) == {name}


def _pages(
    parser: argparse.ArgumentParser, path: str = "mls-sync"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for name, sub in _subparsers(parser).items():
        found.append((f"{path} {name}", sub))
        found.extend(_pages(sub, f"{path} {name}"))
    return found


@pytest.mark.parametrize(("command", "page"), _pages(cli.build_parser()))
def test_every_subcommand_has_a_description(command: str, page: argparse.ArgumentParser) -> None:
    assert page.description, f"{command} --help has no description"


def test_an_aws_error_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    # Given a command that meets a table that does not exist (no stack deployed)
    def run(args: argparse.Namespace) -> int:
        raise ClientError(
            {
                "Error": {
                    "Code": "ResourceNotFoundException",
                    "Message": "Requested resource not found",
                }
            },
            "Scan",
        )

    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.set_defaults(run=run)
    monkeypatch.setattr(cli, "build_parser", lambda *a, **k: parser)
    # When it runs, then exit 1 and one line naming the operation and what to do
    assert cli.main(["report"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "mls-sync: error: Scan failed: ResourceNotFoundException: Requested resource not found "
        "(is the stack deployed? `mls-sync local deploy`)\n"
    )
