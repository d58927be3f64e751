"""`mls-sync local env-json`: the ``--env-vars`` file for `sam local invoke` against the
local stack, with the moto server's real endpoint (no assumed port).

Each function's environment is read from the deployed stack as `mls-sync invoke` reads it
(table names, queue URLs, parameters), plus the local mode's own
variables. SAM applies a function's entry only to variables its template declares; the
others (``AWS_ENDPOINT_URL``, ``MLS_SYNC_ALLOW_LOOPBACK``) are there for a template that
declares them and for reading (docs/local-runtime.md says what that means).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

# Set by `sam local invoke` itself for the function it runs (from its own template reading
# and the shell's credentials): never taken from the file.
SAM_SETS = frozenset(
    {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
)


def env_vars_file(
    functions: Iterable[str], endpoint_url: str, environment_of: Callable[[str], dict[str, str]]
) -> dict[str, dict[str, str]]:
    """``{LogicalId: {NAME: value}}`` for every function, each naming ``endpoint_url``."""
    document: dict[str, dict[str, str]] = {}
    for logical_id in sorted(functions):
        env = {k: v for k, v in environment_of(logical_id).items() if k not in SAM_SETS}
        env["AWS_ENDPOINT_URL"] = endpoint_url
        document[logical_id] = dict(sorted(env.items()))
    return document


def _run(args: argparse.Namespace) -> int:
    from mls_sync_local.runtime.local import LocalRuntime  # noqa: PLC0415 - boto3 is slow

    runtime = LocalRuntime.connect()
    document = env_vars_file(
        runtime.facts.functions, runtime.deployed.endpoint_url, runtime.function_environment
    )
    text = json.dumps(document, indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    Path(args.out).write_text(text, encoding="utf-8")
    print(
        f"wrote {args.out}: {len(document)} functions of stack {runtime.deployed.name} "
        f"at {runtime.deployed.endpoint_url}"
    )
    return 0


def register(local_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = local_sub.add_parser(
        "env-json",
        help="write the --env-vars file for `sam local invoke` against the deployed local stack",
        description=(
            "Every function of template.yaml with the environment the deployed local stack "
            "gives it (table names, queue URLs, parameters) and AWS_ENDPOINT_URL naming the "
            "moto server at AWS_ENDPOINT_URL, port included."
        ),
    )
    parser.add_argument(
        "--out",
        default="env.json",
        metavar="FILE",
        help="where to write it (default env.json; - for stdout)",
    )
    parser.set_defaults(run=_run)
