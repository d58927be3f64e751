"""`mls-sync dlq list` and `mls-sync dlq redrive [QUEUE]`.

The dead-letter queues are found in template.yaml: targets of a queue's RedrivePolicy
(which can be redriven to that queue) and queues named as a DeadLetterConfig / OnFailure
destination (the schedule's: nothing to redrive them to).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from mls_sync_local.cli import UsageError
from mls_sync_local.runtime.stack import (
    DeployedStack,
    TemplateFacts,
    endpoint_from_env,
    region,
    stack_name,
    template_facts,
)

PEEK = 3


@dataclass(frozen=True)
class DeadLetterQueue:
    logical_id: str
    url: str
    source: str | None  # logical id of the queue it is redriven to
    source_url: str | None
    fifo: bool


def dead_letter_queues(
    deployed: DeployedStack, facts: TemplateFacts | None = None
) -> list[DeadLetterQueue]:
    facts = facts or template_facts()
    fifo = facts.fifo_queues
    found = [
        DeadLetterQueue(dlq, deployed.physical(dlq), src, deployed.physical(src), dlq in fifo)
        for src, (dlq, _) in sorted(facts.redrive.items())
    ]
    found.extend(
        DeadLetterQueue(dlq, deployed.physical(dlq), None, None, dlq in fifo)
        for dlq in facts.other_dlqs
    )
    return found


def _count(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def dead_letter_counts(deployed: DeployedStack) -> dict[str, int]:
    sqs = deployed.client("sqs")
    return {q.logical_id: _count(sqs, q.url) for q in dead_letter_queues(deployed)}


def list_dead_letters(deployed: DeployedStack, peek: int = PEEK) -> list[dict[str, Any]]:
    """Each dead-letter queue with its count and up to ``peek`` message bodies.

    Peeking receives with a zero visibility timeout: the messages stay available (their
    receive count in the dead-letter queue goes up, which nothing reads)."""
    sqs = deployed.client("sqs")
    listing = []
    for queue in dead_letter_queues(deployed):
        bodies: list[str] = []
        if peek > 0:
            got = sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=min(10, peek),
                VisibilityTimeout=0,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            bodies = [m["Body"] for m in got]
        listing.append(
            {
                "queue": queue.logical_id,
                "url": queue.url,
                "redrivesTo": queue.source,
                "count": _count(sqs, queue.url),
                "peek": bodies,
            }
        )
    return listing


def redrive(deployed: DeployedStack, queue: str | None = None) -> dict[str, int]:
    """Move every message of one (or every redrivable) dead-letter queue back to its source
    queue; returns how many moved per queue. FIFO messages keep their group; they get a new
    deduplication id, or the source queue would drop them as duplicates of the original."""
    queues = [q for q in dead_letter_queues(deployed) if q.source]
    if queue is not None:
        wanted = queue.lower()
        chosen = [
            q
            for q in dead_letter_queues(deployed)
            if wanted in (q.logical_id.lower(), q.url.rsplit("/", 1)[-1].lower())
        ]
        if not chosen:
            names = ", ".join(q.logical_id for q in dead_letter_queues(deployed))
            raise UsageError(f"unknown dead-letter queue {queue!r} (expected one of: {names})")
        if chosen[0].source is None:
            raise UsageError(f"{chosen[0].logical_id} has no source queue to redrive to")
        queues = chosen
    sqs = deployed.client("sqs")
    moved: dict[str, int] = {}
    for dlq in queues:
        assert dlq.source_url is not None
        count = 0
        while True:
            messages = sqs.receive_message(
                QueueUrl=dlq.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                send: dict[str, Any] = {"QueueUrl": dlq.source_url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    send["MessageAttributes"] = message["MessageAttributes"]
                if dlq.fifo:
                    attrs = message.get("Attributes", {})
                    send["MessageGroupId"] = attrs.get("MessageGroupId", "redrive")
                    send["MessageDeduplicationId"] = f"redrive-{message['MessageId']}"
                sqs.send_message(**send)
                sqs.delete_message(QueueUrl=dlq.url, ReceiptHandle=message["ReceiptHandle"])
                count += 1
        moved[dlq.logical_id] = count
    return moved


# ------------------------------------------------------------------------------ CLI


def _deployed() -> DeployedStack:
    return DeployedStack.describe(stack_name(), endpoint_from_env(), region())


def _run_list(args: argparse.Namespace) -> int:
    listing = list_dead_letters(_deployed(), peek=args.peek)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for entry in listing:
        target = f" -> {entry['redrivesTo']}" if entry["redrivesTo"] else ""
        print(f"{entry['queue']}{target}: {entry['count']} message(s)")
        for body in entry["peek"]:
            print(f"  {body[:200]}")
    return 0


def _run_redrive(args: argparse.Namespace) -> int:
    moved = redrive(_deployed(), args.queue)
    for name, count in moved.items():
        print(f"{name}: {count} message(s) moved back")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="dead-letter queues: list, redrive")
    sub = parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="each dead-letter queue with its count and a peek")
    lst.add_argument("--peek", type=int, default=PEEK, help=f"bodies to show (default {PEEK})")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=_run_list)
    red = sub.add_parser("redrive", help="move dead letters back to their source queue")
    red.add_argument("queue", nargs="?", help="SyncDLQ, UnpublishDLQ, ... (default: all)")
    red.set_defaults(run=_run_redrive)
