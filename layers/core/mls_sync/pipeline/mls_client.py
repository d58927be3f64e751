"""The worker's MLS client: what the sync needs of it, and how one is built per connection
with its credentials read from Secrets Manager."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from mls_sync.models import Connection, Cursor
from mls_sync.reso.auth import BearerToken, ClientCredentials, Credentials
from mls_sync.reso.client import ChangePage, KeyLookup, ReplicationClient, ReplicationTarget
from mls_sync.secrets import SecretStore

if TYPE_CHECKING:
    from mls_sync.reso.budget import SharedBudgets
    from mls_sync.reso.entity_events import EventAnchor, EventPage


class MlsClient(Protocol):
    """What the worker needs of the replication client (``ReplicationClient`` is one)."""

    @property
    def requests_made(self) -> int: ...

    @property
    def lookup_field(self) -> str: ...

    def changes(
        self,
        cursor: Cursor | None,
        *,
        overlap_seconds: float | None = None,
        deadline: float | None = None,
    ) -> Iterator[ChangePage]: ...

    def fetch_by_keys(self, keys: Sequence[str], *, deadline: float | None = None) -> KeyLookup: ...

    def server_now(self) -> datetime: ...

    def supports_entity_events(self, *, deadline: float | None = None) -> bool: ...

    def event_head(self, *, deadline: float | None = None) -> EventAnchor: ...

    def events_after(
        self, anchor: EventAnchor, *, deadline: float | None = None
    ) -> Iterator[EventPage]: ...

    def close(self) -> None: ...


ClientFactory = Callable[[Connection], MlsClient]


class CredentialsError(ValueError):
    """The connection's secret does not hold usable MLS credentials (values never quoted)."""


def credentials_from_secret(value: dict[str, Any]) -> Credentials:
    """The secret's JSON object (as ``mls-sync seed`` stores it) as client credentials."""
    token = value.get("token")
    if isinstance(token, str) and token:
        return BearerToken(token=SecretStr(token))
    cid = value.get("clientId") or value.get("client_id")
    secret = value.get("clientSecret") or value.get("client_secret")
    url = value.get("tokenUrl") or value.get("token_url")
    if isinstance(cid, str) and isinstance(secret, str) and isinstance(url, str):
        scope = value.get("scope")
        return ClientCredentials(
            client_id=cid,
            client_secret=SecretStr(secret),
            token_url=url,
            scope=scope if isinstance(scope, str) else None,
        )
    raise CredentialsError(
        "MLS secret holds neither 'token' nor 'clientId'/'clientSecret'/'tokenUrl'"
    )


def target_of(connection: Connection) -> ReplicationTarget:
    """Where the connection's listings live: its fields of the same names."""
    return ReplicationTarget.model_validate(connection, from_attributes=True)


def replication_client_factory(
    secrets: SecretStore, budgets: SharedBudgets | None = None, **client_options: Any
) -> ClientFactory:
    """Builds a ReplicationClient per connection, credentials read from Secrets Manager;
    with ``budgets``, its requests take permits from the budget every worker on the same
    credential shares (issue 21)."""

    def build(connection: Connection) -> MlsClient:
        credentials = credentials_from_secret(secrets.read_json(connection.credentials_secret_arn))
        if budgets is not None:
            return budgets.client(
                target_of(connection),
                credentials,
                holder=connection.connection_id,
                **client_options,
            )
        return ReplicationClient(target_of(connection), credentials, **client_options)

    return build
