"""Secrets Manager access: MLS credentials and platform tokens live there, never in items.

Secret names are ``<stack>/mls/<connectionId>``, ``<stack>/push/<connectionId>`` and
``<stack>/platform/<accountId>`` so each function's IAM policy can grant exactly its prefix.

Reads go through Powertools' parameters (``SecretsProvider``): a store built with a
``max_age`` answers a secret read less than that many seconds ago from its cache, so a warm
handler does not call Secrets Manager again for every job; ``read_json(..., fresh=True)``
always asks the service (the token refresh and re-authorisation paths do).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
    from mypy_boto3_secretsmanager.client import SecretsManagerClient


SECRET_MAX_AGE_SECONDS = 300
"""How long the handlers keep a secret they read (MLS credentials, platform tokens). An MLS
credential replaced in Secrets Manager reaches warm workers within this; a platform token
replaced by an admin is re-read at once when the platform refuses the cached one
(``UnpublishService``), and our own refreshes replace the cached copy."""


class SecretError(RuntimeError):
    """A secret could not be read or written. The message names the secret, never its value."""


def mls_secret_name(prefix: str, connection_id: str) -> str:
    return f"{prefix}mls/{connection_id}"


def push_secret_name(prefix: str, connection_id: str) -> str:
    """The bearer token an MLS presents when it pushes events for the connection."""
    return f"{prefix}push/{connection_id}"


def platform_secret_name(prefix: str, account_id: str) -> str:
    return f"{prefix}platform/{account_id}"


class SecretStore:
    def __init__(self, client: SecretsManagerClient, *, max_age: int = 0) -> None:
        """``max_age`` > 0: reads are cached that many seconds (0: every read asks)."""
        self._client = client
        self._max_age = max_age
        self._cache: SecretsProvider | None = None

    @property
    def _provider(self) -> SecretsProvider:
        # Built on the first read, not with the store: a store is built at a handler's init,
        # and Powertools' parameters package imports all its providers (SSM, AppConfig,
        # DynamoDB: 15-30 ms of a cold start) that an init without a read does not need.
        if self._cache is None:
            from aws_lambda_powertools.utilities.parameters.secrets import (  # noqa: PLC0415
                SecretsProvider,
            )

            self._cache = SecretsProvider(boto3_client=self._client)
        return self._cache

    def read_json(self, secret_id: str, *, fresh: bool = False) -> dict[str, Any]:
        """The secret's JSON object: from the cache when read less than ``max_age`` seconds
        ago, unless ``fresh``."""
        from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415
            GetParameterError,  # loaded with the provider (above)
        )

        try:
            value = self._provider.get(
                secret_id, max_age=self._max_age, force_fetch=fresh or self._max_age <= 0
            )
        except GetParameterError as exc:
            cause = exc.__context__
            if not isinstance(cause, ClientError):
                raise (cause or exc) from None  # not the service's answer: as it came
            code = cause.response.get("Error", {}).get("Code", "error")
            raise SecretError(f"cannot read secret {secret_id}: {code}") from None
        if not isinstance(value, str | bytes):
            raise SecretError(f"secret {secret_id} holds no value")
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise SecretError(f"secret {secret_id} does not hold a JSON object")
        return parsed

    def put_json(self, name: str, value: dict[str, Any]) -> str:
        """Creates the secret or stores a new version of it; returns its ARN. Writing the same
        value again stores nothing new (so seeding twice changes nothing)."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        self._forget()
        try:
            created = self._client.create_secret(Name=name, SecretString=text)
            return created["ARN"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                code = exc.response.get("Error", {}).get("Code", "error")
                raise SecretError(f"cannot create secret {name}: {code}") from None
        current = self._client.get_secret_value(SecretId=name)
        if current.get("SecretString") != text:
            self._client.put_secret_value(SecretId=name, SecretString=text)
        return self._client.describe_secret(SecretId=name)["ARN"]

    def update_json(self, secret_id: str, value: dict[str, Any]) -> None:
        """Stores a new version of an existing secret (a refreshed token)."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        try:
            self._client.put_secret_value(SecretId=secret_id, SecretString=text)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SecretError(f"cannot update secret {secret_id}: {code}") from None
        finally:
            self._forget()

    def _forget(self) -> None:
        """Drop every cached read (keys are the ids as read: a name or an ARN), so the next
        read of a secret written here asks the service."""
        if self._cache is not None:  # nothing read yet: nothing cached
            self._cache.clear_cache()  # type: ignore[no-untyped-call]
