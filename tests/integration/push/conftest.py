"""A moto server with the stack deployed, one connection whose MLS may push, and the local
runtime that runs PushFunction."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from mls_sync import aws
from mls_sync.dal import ConnectionsRepo
from mls_sync.models import Connection

from mls_sync_local.push import PUSH, set_push_token
from mls_sync_local.runtime.deploy import deploy
from mls_sync_local.runtime.handlers import process_environment
from mls_sync_local.runtime.local import LocalRuntime
from mls_sync_local.runtime.moto_server import moto_server
from tests.support.dynalite import dynalite_server, mirror_tables

STACK = "mls-sync-push-test"
CONNECTION = "c-flood"
TOKEN = "flood-token-7f3c9a"
DYNAMODB_ENDPOINT = "AWS_ENDPOINT_URL_DYNAMODB"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    with moto_server() as url:
        yield _deployed(url)


@pytest.fixture
def runtime_apart() -> Iterator[LocalRuntime]:
    """As ``runtime``, with moto in a process of its own: its CPU, memory and GIL are not
    the receiver's (the flood measures ours)."""
    with moto_process() as url:
        yield _deployed(url)


@pytest.fixture
def runtime_dynalite() -> Iterator[LocalRuntime]:
    """As ``runtime_apart``, with DynamoDB served by dynalite (tests/support/dynalite.py):
    the functions' DynamoDB requests go there (``AWS_ENDPOINT_URL_DYNAMODB``, which boto3
    prefers to ``AWS_ENDPOINT_URL``), everything else to moto."""
    with moto_process() as url, dynalite_server() as dynamodb_url:
        yield _deployed(url, dynamodb_url=dynamodb_url)


def dynamodb_client(runtime: LocalRuntime) -> Any:
    """A client of the DynamoDB the functions use (moto's, or dynalite's when set)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=runtime.overrides.get(DYNAMODB_ENDPOINT, runtime.deployed.endpoint_url),
        region_name=runtime.deployed.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _deployed(url: str, *, dynamodb_url: str | None = None) -> LocalRuntime:
    deploy(url, stack=STACK)
    runtime = LocalRuntime.connect(url, stack=STACK)
    if dynamodb_url is not None:
        environment = runtime.function_environment(PUSH)
        moto = dynamodb_client(runtime)
        runtime.overrides[DYNAMODB_ENDPOINT] = dynamodb_url
        tables = [environment["CONNECTIONS_TABLE"], environment["PUSH_INBOX_TABLE"]]
        mirror_tables(moto, dynamodb_client(runtime), tables)
    add_connection(runtime, CONNECTION)
    set_push_token(runtime, CONNECTION, TOKEN)
    return runtime


_MOTO = """
import logging, threading
from mls_sync_local.runtime import moto_patches
moto_patches.transactions_copy_tables_once()
moto_patches.serialise_dynamodb_writes()  # DynamoDB's writes, and their answers, are atomic
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
threading.Event().wait()
"""


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a child process; its port is the first line it prints."""
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


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
        # Generous: the front answers one push at a time, and a loaded machine is slow.
        self._http = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
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
