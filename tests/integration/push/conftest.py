"""A moto server with the stack deployed, one connection whose MLS may push, and the local
runtime that runs PushFunction."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo
from mls_sync.models import Connection

from mls_sync_local.push import PUSH, set_push_token
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.handlers import process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server

STACK = "mls-sync-push-test"
CONNECTION = "c-flood"
TOKEN = "flood-token-7f3c9a"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    with moto_server() as url:
        deploy(url, stack=STACK)
        runtime = LocalRuntime.connect(url, stack=STACK)
        add_connection(runtime, CONNECTION)
        set_push_token(runtime, CONNECTION, TOKEN)
        yield runtime


def add_connection(runtime: LocalRuntime, connection_id: str, *, enabled: bool = True) -> None:
    environment = runtime.function_environment(PUSH)
    with process_environment(environment):
        table = aws.dynamodb_resource().Table(environment["CONNECTIONS_TABLE"])
        ConnectionsRepo(table).create(
            Connection(
                connection_id=connection_id,
                user_id="u-flood",
                vendor="reso",
                base_url="https://mls.example.com/odata",
                credentials_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
                enabled=enabled,
            )
        )


class Producer:
    """An MLS pushing over one kept-alive connection, as RCP-028 producers do."""

    def __init__(self, url: str, connection_id: str = CONNECTION, token: str = TOKEN) -> None:
        parts = urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        self._path = f"/connections/{connection_id}/events"
        self._token = token

    def push(self, body: Any, **headers: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        sent = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._token}",
            **headers,
        }
        self._http.request("POST", self._path, body=json.dumps(body), headers=sent)
        answer = self._http.getresponse()
        payload = answer.read()
        return (
            answer.status,
            {k.lower(): v for k, v in answer.getheaders()},
            json.loads(payload) if payload else {},
        )

    def close(self) -> None:
        self._http.close()
