"""What `mls-sync sim platforms` learns from the local stack: the tokens and posts seeded.

The platform simulator in its own process starts knowing nothing. By default (``sim
platforms`` without ``--strict``) it reads, whenever a request names a token, refresh token
or post it does not know, the stack at ``AWS_ENDPOINT_URL``: each PlatformAccounts item's
secret (access and refresh token, expiry) and each Posts item still on the platform. So the order of
``sim platforms``, ``local deploy`` and ``seed`` does not matter, nor does a restart of the
simulator or a second seed that adds posts, and the simulator needs no registration step.

Pulling from the stack was chosen over ``seed`` pushing to a running simulator: a push
would have to find the simulator (it may not run yet, or run on another port), and every
restart of the simulator would lose what was pushed. What the simulator already knows wins
over the stack: a post it deleted stays deleted, a token revoked through ``/_sim/revoke``
stays revoked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mls_sync.config import stack_environment


@dataclass(frozen=True)
class KnownToken:
    platform: str
    account: str
    token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class KnownPost:
    platform: str
    post_id: str
    account: str
    permalink: str | None = None


@dataclass(frozen=True)
class StackContents:
    tokens: tuple[KnownToken, ...] = ()
    posts: tuple[KnownPost, ...] = ()


StackSource = Callable[[], StackContents]

# Posts still on the platform as far as the stack knows (a failed or refused takedown too).
_LIVE = frozenset({"published", "reauth_required", "failed", "manual_action_required"})


def _expiry(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415 - boto3 only when used

    plain = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend({k: plain.deserialize(v) for k, v in i.items()} for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stack_source(stack: str, endpoint: str, region: str = "us-east-1") -> StackSource:
    """A loader of ``stack``'s accounts (with their secrets' tokens) and published posts."""

    def load() -> StackContents:
        import boto3  # noqa: PLC0415 - the simulator imports boto3 only when it needs it

        session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
            region_name=region,
        )
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        secrets = session.client("secretsmanager", endpoint_url=endpoint)
        names = stack_environment(stack)
        tokens: list[KnownToken] = []
        for account in _scan(dynamodb, names["ACCOUNTS_TABLE"]):
            arn = account.get("tokenSecretArn")
            if not arn:
                continue
            try:
                value = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
            except Exception:  # noqa: BLE001, S112 - a missing or bad secret: skip the account
                continue
            access = value.get("accessToken") if isinstance(value, dict) else None
            if not isinstance(access, str) or not access:
                continue
            refresh = value.get("refreshToken")
            tokens.append(
                KnownToken(
                    platform=str(account.get("platform")),
                    account=str(account["accountId"]),
                    token=access,
                    refresh_token=refresh if isinstance(refresh, str) and refresh else None,
                    expires_at=_expiry(value.get("expiresAt")),
                )
            )
        posts = tuple(
            KnownPost(
                platform=str(item.get("platform")),
                post_id=str(item["platformPostId"]),
                account=str(item.get("accountId")),
                permalink=item.get("permalink"),
            )
            for item in _scan(dynamodb, names["POSTS_TABLE"])
            if item.get("status") in _LIVE and item.get("platformPostId")
        )
        return StackContents(tuple(tokens), posts)

    return load


__all__ = ["KnownPost", "KnownToken", "StackContents", "StackSource", "stack_source"]
