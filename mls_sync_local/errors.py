"""What a `mls-sync` command reports when it fails, and its exit codes.

0 success, 1 the work ran and something failed, 2 bad usage or input. A command raises
``CommandError`` (or ``UsageError``); ``mls_sync_local.cli`` prints it as one line on stderr
and exits with its code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line on stderr, with an exit code (1 by default)."""

    exit_code = EXIT_FAILED


class UsageError(CommandError):
    """Bad usage or input: exit 2."""

    exit_code = EXIT_USAGE
