"""Secrets Manager access: MLS credentials and platform tokens live there, never in items.

Secret names are ``<stack>/mls/<connectionId>`` and ``<stack>/platform/<accountId>`` so each
function's IAM policy can grant exactly its prefix.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient


class SecretError(RuntimeError):
    """A secret could not be read or written. The message names the secret, never its value."""


def mls_secret_name(prefix: str, connection_id: str) -> str:
    return f"{prefix}mls/{connection_id}"


def platform_secret_name(prefix: str, account_id: str) -> str:
    return f"{prefix}platform/{account_id}"


class SecretStore:
    def __init__(self, client: SecretsManagerClient) -> None:
        self._client = client

    def read_json(self, secret_id: str) -> dict[str, Any]:
        try:
            value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SecretError(f"cannot read secret {secret_id}: {code}") from None
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise SecretError(f"secret {secret_id} does not hold a JSON object")
        return parsed

    def put_json(self, name: str, value: dict[str, Any]) -> str:
        """Creates the secret or stores a new version of it; returns its ARN. Writing the same
        value again stores nothing new (so seeding twice changes nothing)."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
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
