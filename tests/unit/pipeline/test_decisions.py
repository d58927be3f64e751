"""The worker's pure decisions: what a record means, which effects a change carries, which
event announces it, and how credentials are read from the secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mls_sync.models import Connection, Listing
from mls_sync.pipeline.sync import (
    CredentialsError,
    credentials_from_secret,
    deletion_update,
    effects_for,
    event_for,
    mls_update,
    reconcile_due,
    status_change,
)
from mls_sync.policy import TransitionPolicy, parse_unpublish_on
from mls_sync.reso.auth import BearerToken, ClientCredentials
from mls_sync.reso.records import MlsRecord
from mls_sync.status import StandardStatus, Status
from mls_sync.timeutil import Instant

NOW = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
POLICY = TransitionPolicy()


def _record(status: StandardStatus | None, *, visible: bool = True) -> MlsRecord:
    return MlsRecord(
        listing_key="K1",
        standard_status=status,
        mls_status="Sold" if status else None,
        modification=Instant.parse("2026-11-28T16:59:59.1234567Z"),
        visible=visible,
    )


def _listing(status: Status) -> Listing:
    return Listing(
        listing_id="l-1", user_id="u-1", connection_id="c-1", listing_key="K1", status=status
    )


def test_record_maps_to_our_status_and_keeps_raw_fields() -> None:
    update = mls_update(_record(StandardStatus.CLOSED), "2026-11-28T17:00:00.000000Z")
    assert update.status is Status.SOLD
    assert update.standard_status == "Closed"
    assert update.modified.epoch_ns % 1000 == 700  # nanoseconds kept for the guard


def test_a_record_flagged_not_visible_is_a_deletion() -> None:
    assert mls_update(_record(StandardStatus.ACTIVE, visible=False), "x").status is Status.DELETED
    assert mls_update(_record(None, visible=False), "x").status is Status.DELETED


def test_deletion_by_absence_is_stamped_with_the_detection() -> None:
    update = deletion_update(NOW)
    assert update.status is Status.DELETED
    assert update.modified == Instant.from_datetime(NOW)


@pytest.mark.parametrize(
    ("before", "after", "effects"),
    [
        (Status.ACTIVE, Status.SOLD, ["event", "unpublish"]),
        (Status.PENDING, Status.SOLD, ["event", "unpublish"]),
        (Status.ACTIVE, Status.PENDING, ["event"]),
        (Status.PENDING, Status.ACTIVE, ["event"]),
        (Status.SOLD, Status.ACTIVE, ["event"]),
        (Status.ACTIVE, Status.DELETED, ["event"]),
    ],
)
def test_effects_follow_the_policy(before: Status, after: Status, effects: list[str]) -> None:
    assert effects_for(POLICY, before, after) == effects


def test_unpublish_statuses_are_configuration() -> None:
    policy = TransitionPolicy(unpublish_on=parse_unpublish_on("sold,deleted"))
    assert effects_for(policy, Status.ACTIVE, Status.DELETED) == ["event", "unpublish"]


def test_same_status_is_no_change() -> None:
    update = mls_update(_record(StandardStatus.ACTIVE), "2026-11-28T17:00:00Z")
    change = status_change(
        _listing(Status.ACTIVE), update, policy=POLICY, source="schedule", correlation_id="c"
    )
    assert change is None


def test_change_key_comes_from_the_record_so_a_retry_finds_the_same_entry() -> None:
    update = mls_update(_record(StandardStatus.CLOSED), "2026-11-28T17:00:00Z")
    later = mls_update(_record(StandardStatus.CLOSED), "2026-11-28T18:00:00Z")
    a = status_change(
        _listing(Status.ACTIVE), update, policy=POLICY, source="schedule", correlation_id="c"
    )
    b = status_change(
        _listing(Status.PENDING), later, policy=POLICY, source="manual", correlation_id="d"
    )
    assert a is not None
    assert b is not None
    assert a.change_key == b.change_key == "2026-11-28T16:59:59.123456700Z#sold"


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (Status.PENDING, Status.ACTIVE, "ListingRestored"),
        (Status.ACTIVE, Status.DELETED, "ListingDeleted"),
        (Status.ACTIVE, Status.SOLD, "ListingStatusChanged"),
        (Status.SOLD, Status.ACTIVE, "ListingStatusChanged"),
    ],
)
def test_event_type_and_detail(before: Status, after: Status, kind: str) -> None:
    update = mls_update(_record(StandardStatus.CLOSED), "2026-11-28T17:00:00Z")
    update = type(update)(after, update.standard_status, None, update.modified, update.synced_at)
    change = status_change(
        _listing(before), update, policy=POLICY, source="schedule", correlation_id="corr"
    )
    assert change is not None
    event = event_for(change, POLICY)
    assert event.detail_type == kind
    detail = event.detail.to_item()
    assert detail["from"] == before.value
    assert detail["to"] == after.value
    assert detail["changeKey"] == change.change_key
    assert detail["correlationId"] == "corr"


def test_reconcile_cadence() -> None:
    base = Connection(
        connection_id="c",
        user_id="u",
        vendor="reso",
        base_url="https://x",
        credentials_secret_arn="arn",
    )
    assert reconcile_due(base, NOW, 24)
    recent = base.model_copy(update={"last_reconciled_at": "2026-11-28T00:00:00Z"})
    assert not reconcile_due(recent, NOW, 24)
    assert reconcile_due(recent, NOW + timedelta(hours=7), 24)


def test_credentials_from_the_secret() -> None:
    assert isinstance(credentials_from_secret({"token": "t"}), BearerToken)
    cc = credentials_from_secret(
        {"clientId": "id", "clientSecret": "s3cret", "tokenUrl": "https://t", "scope": "api"}
    )
    assert isinstance(cc, ClientCredentials)
    assert cc.scope == "api"
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret({"clientId": "id", "password": "hunter2"})
    assert "hunter2" not in str(info.value)
