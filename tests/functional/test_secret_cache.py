"""Secrets are read through Powertools' parameters cache with a max age: a warm handler
asks Secrets Manager once per secret per max age, a fresh read always asks, our own writes
are never answered from an older cached copy, and the cache expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from mls_sync.secrets import SecretError, SecretStore
from moto import mock_aws


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _counting(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    return calls


def test_a_cached_read_asks_once_within_the_max_age(client: Any) -> None:
    # Given a secret and a store that keeps reads 300 s
    arn = SecretStore(client).put_json("stack/mls/c-1", {"token": "one"})
    store = SecretStore(client, max_age=300)
    calls = _counting(client)
    # When a warm handler reads it for three jobs
    values = [store.read_json(arn) for _ in range(3)]
    # Then Secrets Manager was asked once
    assert values == [{"token": "one"}] * 3
    assert calls == [arn]


def test_the_cache_expires(client: Any) -> None:
    # Given a store that keeps reads 1 s, and a secret it has read
    arn = SecretStore(client).put_json("stack/mls/c-2", {"token": "one"})
    store = SecretStore(client, max_age=1)
    assert store.read_json(arn) == {"token": "one"}
    # And the secret replaced elsewhere (rotation, another process)
    client.put_secret_value(SecretId=arn, SecretString='{"token": "two"}')
    calls = _counting(client)
    # When it is read within the max age, and again after it
    within = store.read_json(arn)
    time.sleep(1.2)
    after = store.read_json(arn)
    # Then the first answer is the cached copy, the second the new value, asked for once
    assert within == {"token": "one"}
    assert after == {"token": "two"}
    assert calls == [arn]


def test_a_fresh_read_always_asks(client: Any) -> None:
    arn = SecretStore(client).put_json("stack/platform/a-1", {"accessToken": "old"})
    store = SecretStore(client, max_age=300)
    assert store.read_json(arn) == {"accessToken": "old"}
    client.put_secret_value(SecretId=arn, SecretString='{"accessToken": "new"}')
    assert store.read_json(arn) == {"accessToken": "old"}
    assert store.read_json(arn, fresh=True) == {"accessToken": "new"}
    assert store.read_json(arn) == {"accessToken": "new"}


def test_our_own_update_is_what_the_next_read_gets(client: Any) -> None:
    # Given a cached token
    arn = SecretStore(client).put_json("stack/platform/a-2", {"accessToken": "old"})
    store = SecretStore(client, max_age=300)
    assert store.read_json(arn) == {"accessToken": "old"}
    # When this store writes a refreshed one
    store.update_json(arn, {"accessToken": "refreshed"})
    # Then the next read is the refreshed token, not the cached one
    assert store.read_json(arn) == {"accessToken": "refreshed"}


def test_without_a_max_age_every_read_asks(client: Any) -> None:
    arn = SecretStore(client).put_json("stack/mls/c-3", {"token": "one"})
    store = SecretStore(client)
    calls = _counting(client)
    store.read_json(arn)
    store.read_json(arn)
    assert calls == [arn, arn]


def test_a_missing_secret_is_a_secret_error_naming_it_not_its_value(client: Any) -> None:
    store = SecretStore(client, max_age=300)
    with pytest.raises(SecretError, match=r"cannot read secret stack/mls/nope: ResourceNotFound"):
        store.read_json("stack/mls/nope")
