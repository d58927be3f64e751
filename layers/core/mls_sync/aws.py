"""boto3 clients, created lazily and cached per process.

Never at import time: a client made before moto starts is not mocked (and would reach real
AWS). Every client gets timeouts and the standard retry mode with a bounded attempt count.
All of them come from one session: a session loads the endpoint and retry data and the
service models once, so the second and later clients cost ~5-20 ms instead of ~70 ms each
at a cold start (boto3 sessions are not thread-safe, hence the lock around creation;
clients are).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

from mls_sync.container import per_container

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 5},
)

_QUICK_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "max_attempts": 3},
)
"""``quick=True``: for a handler that answers an HTTP caller while it waits (PushFunction): a
slow call fails within seconds and the caller is told to retry, instead of the function
timing out after it has half acted."""

_LOCK = threading.Lock()


@per_container
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@per_container
def _client(service: str, quick: bool) -> Any:  # both positional: one cache key a client
    config = _QUICK_CONFIG if quick else _CONFIG
    with _LOCK:
        return _session().client(service, config=config)  # type: ignore[call-overload]


@per_container
def _resource(service: str) -> Any:
    with _LOCK:
        return _session().resource(service, config=_CONFIG)  # type: ignore[call-overload]


def dynamodb(*, quick: bool = False) -> DynamoDBClient:
    return cast("DynamoDBClient", _client("dynamodb", quick))


def dynamodb_resource() -> DynamoDBServiceResource:
    return cast("DynamoDBServiceResource", _resource("dynamodb"))


class _OnFirstUse:
    """Stands for a client that is made (or taken from the cache) when first used: making
    one costs ~5-8 ms of a cold start, which a function that calls the service only in some
    jobs need not pay at init."""

    __slots__ = ("_quick", "_service")

    def __init__(self, service: str, quick: bool) -> None:
        self._service = service
        self._quick = quick

    def __getattr__(self, name: str) -> Any:
        return getattr(_client(self._service, self._quick), name)


def sqs(*, quick: bool = False, deferred: bool = False) -> SQSClient:
    """``deferred``: made on first use (see :class:`_OnFirstUse`)."""
    if deferred:
        return cast("SQSClient", _OnFirstUse("sqs", quick))
    return cast("SQSClient", _client("sqs", quick))


def events(*, deferred: bool = False) -> EventBridgeClient:
    """``deferred``: made on first use (see :class:`_OnFirstUse`)."""
    if deferred:
        return cast("EventBridgeClient", _OnFirstUse("events", False))
    return cast("EventBridgeClient", _client("events", False))


def secrets(*, quick: bool = False) -> SecretsManagerClient:
    return cast("SecretsManagerClient", _client("secretsmanager", quick))


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh moto between cases)."""
    _client.cache_clear()
    _resource.cache_clear()
    _session.cache_clear()
