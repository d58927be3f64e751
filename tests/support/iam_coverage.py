"""`python -m tests.support.iam_coverage FILE...`: every action each function's IAM policy
grants was used by some test (the usage files the functional and integration tiers write
with ``MLS_SYNC_IAM_USAGE``), or is listed in :data:`EXEMPT` with the reason AWS needs it
although no handler code calls it. Exit 1 naming each unused grant and each denied call.

``make test`` runs it after both tiers (a policy that gains an action nothing uses fails
there); a policy that loses an action a handler uses fails the test that made the call
(``tests/support/iam_recorder.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.support.iam import Coverage, Naming, Request, Use, coverage

_ESM = "the SQS event source mapping polls, deletes and reads the queue with the function's role"
_LOGS = "the Lambda service writes the function's log streams with its role"
_XRAY = "the Lambda service sends the function's X-Ray segments with its role (Tracing: Active)"

EXEMPT: dict[tuple[str, str], str] = {
    **{
        (fn, action): _LOGS
        for fn in (
            "DispatcherFunction",
            "WorkerFunction",
            "PublisherFunction",
            "ManualSyncFunction",
            "PushFunction",
        )
        for action in ("logs:CreateLogStream", "logs:PutLogEvents")
    },
    **{
        (fn, action): _XRAY
        for fn in (
            "DispatcherFunction",
            "WorkerFunction",
            "PublisherFunction",
            "ManualSyncFunction",
            "PushFunction",
        )
        for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
    },
    **{
        (fn, action): _ESM
        for fn in ("WorkerFunction", "PublisherFunction")
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
    },
    ("PublisherFunction", "dynamodb:GetItem@Idempotency"): (
        "Powertools reads an idempotency record when a duplicate's conditional put comes back "
        "without it (DynamoDB returns it, ReturnValuesOnConditionCheckFailure; moto may not)"
    ),
}
"""(function, action) — or (function, action@Table) for one resource — granted for AWS's
sake or for a path no test reaches, with the reason. Keep it short: each entry is a grant
no test proves."""

SCHEDULE_DLQ = "the dispatcher's failed async invocations: Lambda sends them with its role"


def exempt_for(function: str, action: str, resource: str) -> str | None:
    if (function, action) in EXEMPT:
        return EXEMPT[(function, action)]
    table = resource.rsplit(":table/", 1)[-1].split("/", 1)[0] if ":table/" in resource else ""
    suffix = table.rsplit("-", 1)[-1] if table else ""
    if suffix and (function, f"{action}@{suffix}") in EXEMPT:
        return EXEMPT[(function, f"{action}@{suffix}")]
    if (
        function == "DispatcherFunction"
        and action == "sqs:SendMessage"
        and "schedule-dlq" in (resource)
    ):
        return SCHEDULE_DLQ
    return None


def load_uses(paths: Iterable[Path]) -> list[Use]:
    uses: list[Use] = []
    for path in paths:
        rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        for row in rows:
            naming = Naming(**row["naming"])
            uses.append(Use(row["function"], naming, Request.from_json(row["request"])))
    return uses


def check(uses: Sequence[Use], **kwargs: Any) -> Coverage:
    return coverage(uses, exempt_for=exempt_for, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(a) for a in args]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        print(f"iam-coverage: no usage file {missing or ''} (run the tiers first)", file=sys.stderr)
        return 2
    uses = load_uses(paths)
    result = check(uses)
    for use in result.denied:
        request = use.request
        print(f"iam-coverage: DENIED {use.function}: {request.action} on {request.resource}")
    for grant in result.unused:
        print(f"iam-coverage: UNUSED {grant} (no test used it; remove it or list why in EXEMPT)")
    if result.denied or result.unused:
        return 1
    functions = {u.function for u in uses}
    print(
        f"iam-coverage: every granted action of {len(functions)} functions used by a test "
        f"({len(uses)} distinct requests) or exempt with a reason ({len(EXEMPT) + 1} entries)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
