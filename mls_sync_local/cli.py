"""The `mls-sync` command.

Each subcommand lives in its own module, which exposes ``register(subparsers)``: it adds its
parser(s) and sets ``run`` (``Callable[[argparse.Namespace], int]``) as a default. The
static table ``COMMANDS`` names each command's module; a module it names that cannot be
imported or registered is an error (exit 1), never a command silently missing.

Exit codes (``mls_sync_local.errors``): 0 success, 1 the work ran and something failed, 2 bad
usage or input. Errors are one readable line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Protocol

from mls_sync_local.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError

# Each top-level command, in the order `mls-sync --help` lists them, the module registering
# it and its one-line description: what `mls-sync --help` prints without importing any
# command module (those import boto3, pydantic, the handlers... seconds of start-up). A
# command's own module is imported only when that command runs.
# tests/unit/runtime/test_cli_lazy.py checks that each module registers its command.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mls_sync_local.demo", "the whole system end to end on loopback (`make run`)"),
    "local": ("mls_sync_local.runtime.deploy", "the local stand-in for AWS: deploy, server"),
    "seed": ("mls_sync_local.seed", "validate a portfolio file, then write what is missing"),
    "dump": ("mls_sync_local.dump", "print connections, listings and posts with status"),
    "tick": ("mls_sync_local.runtime.tick", "one schedule firing, run to quiescence"),
    "invoke": ("mls_sync_local.runtime.invoke", "run one handler with one event"),
    "dlq": ("mls_sync_local.runtime.dlq", "dead-letter queues: list, redrive"),
    "reconcile": ("mls_sync_local.reconcile", "a reconciliation by key of one connection now"),
    "brake": ("mls_sync_local.brake", "release or discard takedowns the brake holds"),
    "accounts": ("mls_sync_local.accounts", "platform accounts: replace a token"),
    "report": ("mls_sync_local.report", "a one-page HTML picture of a local run"),
    "status": ("mls_sync_local.status", "every connection's health: lag, last error, failures"),
    "sim": ("mls_sync_local.sim.cli", "run an MLS or platform simulator in the foreground"),
    "push": ("mls_sync_local.push", "the push receiver: set a connection's token, serve it"),
}


class _Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser: ...


Run = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own usage errors: one line and exit 2, as everywhere else.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of the commands of ``modules`` (default: every module in ``COMMANDS``).
    Raises CommandError when one of them cannot be imported or registered."""
    parser = _Parser(
        prog="mls-sync",
        description="mls-sync on this machine: moto for AWS, simulators for the MLS and platforms.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = (
        dict.fromkeys(module for module, _ in COMMANDS.values()) if modules is None else modules
    )
    for name in wanted:
        try:
            importlib.import_module(name).register(subparsers)
        except Exception as exc:
            raise CommandError(f"{name} cannot be loaded: {_one_line(exc)}") from exc
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's page opens with its one-line help when it has no description."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, sub in action.choices.items():
            if sub.description is None and helps.get(name):
                sub.description = str(helps[name])
            _describe(sub)


def _overview_parser() -> argparse.ArgumentParser:
    """`mls-sync` and `mls-sync --help`: every command and its line, nothing imported."""
    parser = _Parser(
        prog="mls-sync",
        description="mls-sync on this machine: moto for AWS, simulators for the MLS and platforms.",
        epilog="`mls-sync COMMAND --help` for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (_, line) in COMMANDS.items():
        subparsers.add_parser(name, help=line)
    return parser


def _command_word(args: Sequence[str]) -> str | None:
    for arg in args:
        if not arg.startswith("-"):
            return arg
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    if debug:
        # Accepted anywhere on the line (`mls-sync tick --debug` as well as before the command).
        args_list = ["--debug", *(a for a in args_list if a != "--debug")]
    word = _command_word(args_list)
    known = COMMANDS.get(word or "")
    try:
        if word is None:
            parser = _overview_parser()
        elif known is not None:
            parser = build_parser((known[0],))
        else:  # an unknown word: argparse's error lists every command
            parser = build_parser()
    except CommandError as exc:  # a command module that cannot be loaded
        _report(exc, debug)
        return exc.exit_code
    args = parser.parse_args(args_list)
    run: Run | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except CommandError as exc:
        _report(exc, debug)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mls-sync: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mls-sync dump | head`): not an error. Python would complain
        # again when flushing stdout at exit, so point it at devnull first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the command's last line of defence
        aws = _aws_error(exc)
        if aws is not None:
            _report(exc, debug, prefix="", text=aws)
            return EXIT_FAILED
        _report(exc, debug, prefix=f"{type(exc).__name__}: ")
        return EXIT_FAILED


# What an AWS error code means in the local runtime, told in one line.
_AWS_HINTS: dict[str, str] = {
    "ResourceNotFoundException": "is the stack deployed? `mls-sync local deploy`",
    "AWS.SimpleQueueService.NonExistentQueue": "is the stack deployed? `mls-sync local deploy`",
    "ValidationError": "is the stack deployed? `mls-sync local deploy`",
}


def _aws_error(exc: BaseException) -> str | None:
    """botocore's ClientError as ``Operation: Code: message (hint)``, without importing
    botocore here (most commands never load it)."""
    response = getattr(exc, "response", None)
    operation = getattr(exc, "operation_name", None)
    if type(exc).__name__ != "ClientError" or not isinstance(response, dict):
        return None
    error = response.get("Error") or {}
    code = str(error.get("Code") or "error")
    message = " ".join(str(error.get("Message") or "").split())
    hint = _AWS_HINTS.get(code)
    text = f"{operation or 'AWS'} failed: {code}" + (f": {message}" if message else "")
    return text + (f" ({hint})" if hint else "")


def _report(exc: BaseException, debug: bool, prefix: str = "", text: str | None = None) -> None:
    if debug:
        traceback.print_exception(exc)
    hint = "" if debug else " (--debug for details)" if prefix else ""
    print(f"mls-sync: error: {prefix}{text or _one_line(exc)}{hint}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
