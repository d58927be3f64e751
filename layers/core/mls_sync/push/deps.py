"""The receiver's collaborators, built once per container from settings (never at import)."""

from __future__ import annotations

from mls_sync import aws
from mls_sync.config import ConfigError, Settings, get_settings
from mls_sync.container import per_container
from mls_sync.dal.push_access import PushAccessRepo
from mls_sync.dal.push_inbox import PushInboxRepo
from mls_sync.push.access_cache import CachedAccess
from mls_sync.push.jobs import PushJobSender
from mls_sync.push.receiver import PushDeps
from mls_sync.secrets import SECRET_MAX_AGE_SECONDS, SecretStore


def build_push_deps(settings: Settings | None = None) -> PushDeps:
    settings = settings or get_settings()
    if not settings.push_inbox_table:
        raise ConfigError("invalid configuration: PUSH_INBOX_TABLE is not set")
    # Clients with short timeouts: the producer is waiting for the answer (quick=True).
    return PushDeps(
        # One DynamoDB request a push, not two: the access answer is kept a while (why:
        # push/access_cache.py).
        connections=CachedAccess(
            PushAccessRepo(aws.dynamodb(quick=True), settings.connections_table)
        ),
        inbox=PushInboxRepo(aws.dynamodb(quick=True), settings.push_inbox_table),
        secrets=SecretStore(aws.secrets(quick=True), max_age=SECRET_MAX_AGE_SECONDS),
        jobs=PushJobSender(aws.sqs(quick=True), settings.sync_queue_url),
    )


@per_container
def default_push_deps() -> PushDeps:
    return build_push_deps()
