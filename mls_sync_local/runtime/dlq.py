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

from mls_sync_local.errors import UsageError
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
    """Each dead-letter queue with its count and up to ``peek`` messages: the body, what it
    is about (``connectionId``, ``postId``), how many times it was received before this
    listing, and its last error.

    The last error: for a sync job, its connection's ``lastError`` (the worker records it
    after every run); for an unpublish job, its post's status and ``outcomeReason``; for a
    schedule firing, the ``ERROR_MESSAGE`` EventBridge attaches. Peeking receives with a
    zero visibility timeout: the messages stay available, and each listing adds one to
    their receive count (which nothing else reads in a dead-letter queue)."""
    sqs = deployed.client("sqs")
    listing = []
    for queue in dead_letter_queues(deployed):
        got: list[dict[str, Any]] = []
        if peek > 0:
            got = sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=min(10, peek),
                VisibilityTimeout=0,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        listing.append(
            {
                "queue": queue.logical_id,
                "url": queue.url,
                "redrivesTo": queue.source,
                "count": _count(sqs, queue.url),
                "peek": [m["Body"] for m in got],
                "messages": [_describe(deployed, m) for m in got],
            }
        )
    return listing


def _describe(deployed: DeployedStack, message: dict[str, Any]) -> dict[str, Any]:
    received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    described: dict[str, Any] = {"body": message["Body"], "receiveCount": max(0, received - 1)}
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("connectionId"), str):
        described["connectionId"] = body["connectionId"]
        described["lastError"] = _connection_error(deployed, body["connectionId"])
    elif isinstance(body, dict) and isinstance(body.get("postId"), str):
        described["postId"] = body["postId"]
        described["lastError"] = _post_error(deployed, body["postId"])
    else:
        attributes = message.get("MessageAttributes", {})
        error = attributes.get("ERROR_MESSAGE", {}).get("StringValue")
        code = attributes.get("ERROR_CODE", {}).get("StringValue")
        described["lastError"] = ": ".join(x for x in (code, error) if x) or None
    return described


def _item(deployed: DeployedStack, table: str, key: dict[str, str]) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415 - boto3 is loaded here
    from mls_sync.dal.base import plain  # noqa: PLC0415

    name = deployed.physical_ids.get(table)
    if not name:
        return None
    found = deployed.client("dynamodb").get_item(
        TableName=name, Key={k: {"S": v} for k, v in key.items()}
    )
    if "Item" not in found:
        return None
    deserializer = TypeDeserializer()
    return plain({k: deserializer.deserialize(v) for k, v in found["Item"].items()})


def _connection_error(deployed: DeployedStack, connection_id: str) -> str | None:
    item = _item(deployed, "ConnectionsTable", {"connectionId": connection_id})
    error = (item or {}).get("lastError")
    return str(error.get("message")) if isinstance(error, dict) else None


def _post_error(deployed: DeployedStack, post_id: str) -> str | None:
    item = _item(deployed, "PostsTable", {"postId": post_id})
    if not item:
        return "post not found"
    reason = item.get("outcomeReason")
    return f"{item.get('status')}: {reason}" if reason else str(item.get("status"))


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
        for message in entry["messages"]:
            print("  " + render_message(message))
    return 0


def render_message(message: dict[str, Any]) -> str:
    """``c-zoe (schedule 2026-11-28T18:00:00.000000Z): received 3 times; last error: ...``"""
    try:
        body = json.loads(message["body"])
    except ValueError:
        body = None
    if isinstance(body, dict) and ("connectionId" in body or "postId" in body):
        subject = str(body.get("connectionId") or body.get("postId"))
        detail = " ".join(
            str(body[k]) for k in ("reason", "slot", "platform", "listingId") if body.get(k)
        )
        head = f"{subject} ({detail})" if detail else subject
    else:
        head = " ".join(str(message["body"]).split())[:120]
    error = message.get("lastError") or "none recorded"
    return f"{head}: received {message['receiveCount']} times; last error: {error}"


def _run_redrive(args: argparse.Namespace) -> int:
    moved = redrive(_deployed(), args.queue)
    for name, count in moved.items():
        print(f"{name}: {count} message(s) moved back")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="dead-letter queues: list, redrive")
    sub = parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    lst = sub.add_parser(
        "list",
        help="each dead-letter queue: its count, and each message's subject, receive count "
        "and last error",
    )
    lst.add_argument(
        "--peek", type=int, default=PEEK, help=f"messages to show per queue (default {PEEK})"
    )
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=_run_list)
    red = sub.add_parser("redrive", help="move dead letters back to their source queue")
    red.add_argument("queue", nargs="?", help="SyncDLQ, UnpublishDLQ, ... (default: all)")
    red.set_defaults(run=_run_redrive)
