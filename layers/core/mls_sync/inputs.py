"""Hostile input, refused plainly (issue 19): what every handler checks before it trusts an
event.

- A direct invoke or an HTTP body must be a JSON *object*, at most :data:`MAX_DEPTH` levels
  deep (``json.loads`` raises ``RecursionError``, not ``JSONDecodeError``, on deep arrays),
  within a size cap, valid base64 and strict UTF-8: :class:`InputError` carries the HTTP
  status to answer (400, 413) and one readable message that never repeats the input.
- An SQS batch must be a list of records each with a ``messageId``, so that a bad record
  can fail alone (``batchItemFailures``); :func:`sqs_batch_problem` says what is wrong with
  one that is not, and :func:`check_body_size` lets a record model refuse an oversize body
  before parsing it.
- Our own ids (users, connections, listings, posts, accounts) are matched *whole*
  (:data:`ID_PATTERN` with ``re.fullmatch``; a ``$`` would let ``"c-1\\n"`` through into SQS
  group ids and keys): ``mls_sync.models.Ident``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting accepted in an event or body: our requests are two levels deep."""
MAX_HTTP_BODY_BYTES = 64 * 1024
"""A manual sync request is a few hundred bytes."""
MAX_SQS_BODY_BYTES = 256 * 1024
"""Our jobs are under 100 KB (a sync job's at most 1,000 listing keys are short)."""

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}"
"""An id of ours: a letter or digit, then up to 127 letters, digits or ``._:@+=-``. Always
applied with ``re.fullmatch``."""
_ID = re.compile(ID_PATTERN)


class InputError(ValueError):
    """Input refused: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str) -> str:
    """``value`` if it is an id of ours, else ValueError (for pydantic validators)."""
    if not is_id(value):
        raise ValueError(
            "must be 1-128 characters: a letter or digit, then letters, digits or ._:@+=-"
        )
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests lists/objects more than ``limit`` levels (iterative: a
    hostile structure cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def require_object(value: Any, *, what: str = "request") -> dict[str, Any]:
    """``value`` if it is a JSON object (dict with string keys) of acceptable depth."""
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise InputError(400, f"{what} must be a JSON object, got {kind}")
    if not all(isinstance(key, str) for key in value):
        raise InputError(400, f"{what} must be a JSON object with string keys")
    if too_deep(value):
        raise InputError(400, f"{what} is nested deeper than {MAX_DEPTH} levels")
    return value


def decode_body(body: Any, *, base64_encoded: bool, max_bytes: int) -> str:
    """An HTTP body as text: 413 past ``max_bytes``, 400 for what is not base64 (when marked
    so) or not strict UTF-8."""
    if body is None:
        return ""
    if not isinstance(body, str):
        raise InputError(400, "body must be a string")
    # base64 is 4/3 the size of what it carries; a UTF-8 character at most 4 bytes.
    if len(body) > (max_bytes * 4 // 3 + 4 if base64_encoded else max_bytes):
        raise InputError(413, f"body is larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(body, validate=True) if base64_encoded else body.encode("utf-8")
    except (binascii.Error, ValueError):
        raise InputError(400, "body is not valid base64") from None
    except UnicodeEncodeError:
        raise InputError(400, "body is not valid UTF-8 (lone surrogate)") from None
    if len(raw) > max_bytes:
        raise InputError(413, f"body is larger than {max_bytes} bytes")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(400, "body is not valid UTF-8") from None


def loads_object(text: str, *, what: str = "body") -> dict[str, Any]:
    """A JSON object from ``text``: 400 for what is not JSON, too deep, or not an object."""
    if not text.strip():
        raise InputError(400, f"{what} is empty: send a JSON object")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(400, f"{what} is not JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(400, f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    return require_object(value, what=what)


def sqs_batch_problem(event: Any) -> str | None:
    """Why ``event`` is not an SQS batch whose records can fail one by one (None if it is)."""
    if not isinstance(event, dict):
        return f"event must be an SQS batch object, got {type(event).__name__}"
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return "event has no Records list"
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("messageId"), str):
            return f"Records[{index}] is not an SQS record with a messageId"
    return None


def record_ids(event: Any) -> list[str]:
    """The ``messageId`` of every record that has one (to fail them all, never drop one)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return []
    return [
        r["messageId"]
        for r in records
        if isinstance(r, dict) and isinstance(r.get("messageId"), str)
    ]


def not_a_batch(event: Any, problem: str) -> dict[str, Any]:
    """The answer to an invocation that is not an SQS batch (a direct invoke gone wrong):
    the problem, and every record that can be named reported failed (none silently
    dropped)."""
    return {
        "error": problem,
        "batchItemFailures": [{"itemIdentifier": i} for i in record_ids(event)],
    }


def refusal_detail(exc: BaseException) -> str | None:
    """One line for a record that did not parse (a pydantic ``ValidationError``): where and
    why, never the input (a body may be anything). None for any other failure."""
    errors = getattr(exc, "errors", None)
    if type(exc).__name__ != "ValidationError" or not callable(errors):
        return None
    found = errors(include_url=False, include_input=False)
    if not found:
        return "invalid"
    first = found[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def log_refused(log: Any, record: Any, exc_info: Any) -> None:
    """For a batch processor's ``failure_handler``: one warning for a record refused as
    unreadable (it fails alone and, after the queue's maxReceiveCount, is dead-lettered)."""
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else exc_info
    detail = refusal_detail(exc) if isinstance(exc, BaseException) else None
    if detail is None:
        return
    # A raw record, Powertools' SQSRecord (unparsed: message_id) or a parsed model (messageId)
    if isinstance(record, dict):
        message_id = record.get("messageId")
    else:
        message_id = getattr(record, "message_id", None) or getattr(record, "messageId", None)
    log.warning("record refused", extra={"messageId": message_id, "error": detail})


def check_body_size(body: Any, limit: int = MAX_SQS_BODY_BYTES) -> Any:
    """For a record model's ``body`` (mode="before"): an oversize body fails that record
    before it is parsed."""
    if isinstance(body, str | bytes) and len(body) > limit:
        raise ValueError(f"message body is larger than {limit} bytes")
    return body


__all__ = [
    "ID_PATTERN",
    "MAX_DEPTH",
    "MAX_HTTP_BODY_BYTES",
    "MAX_SQS_BODY_BYTES",
    "InputError",
    "check_body_size",
    "check_id",
    "decode_body",
    "is_id",
    "loads_object",
    "log_refused",
    "not_a_batch",
    "record_ids",
    "refusal_detail",
    "require_object",
    "sqs_batch_problem",
    "too_deep",
]
