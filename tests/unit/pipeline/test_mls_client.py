"""Where a connection's client reads: the connection's own fields, nothing more."""

from __future__ import annotations

from mls_sync.models import Connection
from mls_sync.pipeline.mls_client import target_of
from mls_sync.reso.replication_models import ReplicationTarget


def test_the_target_is_the_connections_vendor_url_resource_dataset_and_system() -> None:
    connection = Connection(
        connection_id="c",
        user_id="u",
        vendor="trestle",
        base_url="https://api.example/trestle/odata",
        resource="Property",
        dataset="ds",
        originating_system_name="Sys",
        credentials_secret_arn="arn",
    )
    assert target_of(connection) == ReplicationTarget(
        vendor="trestle",
        base_url="https://api.example/trestle/odata",
        resource="Property",
        dataset="ds",
        originating_system_name="Sys",
        extra_filter=None,
    )
