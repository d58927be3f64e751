"""Every conditional write of the data access layer (listing status writes have their own
file): creates never overwrite, cursors never rewind, post outcomes only leave 'published',
one refresher holds an account's lease, a sync run starts once and finishes once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import boto3
import pytest
from mls_sync.dal import (
    AccountsRepo,
    ConditionFailed,
    ConnectionsRepo,
    HistoryRepo,
    ListingsRepo,
    PostsRepo,
    SyncRunsRepo,
)
from mls_sync.dal.history import change_key
from mls_sync.dal.listings import MlsUpdate
from mls_sync.models import (
    Connection,
    Cursor,
    Listing,
    Platform,
    PlatformAccount,
    Post,
    PostStatus,
    StatusChange,
    SyncRun,
)
from mls_sync.run_counts import RunCounts
from mls_sync.status import Status
from mls_sync.timeutil import Instant

from tests.support.stack import LocalStack

NOW = "2026-11-28T17:00:00.000000Z"
LATER = "2026-11-28T17:05:00.000000Z"


def _connection(cid: str = "c-1", *, user: str = "u-1", enabled: bool = True) -> Connection:
    return Connection(
        connection_id=cid,
        user_id=user,
        vendor="reso",
        base_url="https://mls.example.com/odata",
        credentials_secret_arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{cid}",
        enabled=enabled,
    )


def _listing(lid: str = "l-1") -> Listing:
    return Listing(
        listing_id=lid, user_id="u-1", connection_id="c-1", listing_key=f"K-{lid}", status="active"
    )


def _post(pid: str = "p-1", status: PostStatus = PostStatus.PUBLISHED) -> Post:
    return Post(
        post_id=pid,
        listing_id="l-1",
        platform=Platform.FACEBOOK,
        account_id="a-1",
        platform_post_id=f"1_{pid}",
        status=status,
    )


def _account(aid: str = "a-1") -> PlatformAccount:
    return PlatformAccount(
        account_id=aid,
        user_id="u-1",
        platform=Platform.LINKEDIN,
        external_id="urn:li:person:x",
        token_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:a",
    )


def _run(key: str = "2026-11-28T17:00:00Z#schedule") -> SyncRun:
    return SyncRun(connection_id="c-1", run_key=key, reason="schedule", started_at=NOW)


def _listings(stack: LocalStack) -> ListingsRepo:
    return ListingsRepo(
        stack.tables.listings,
        boto3.client("dynamodb"),
        stack.settings.history_table,
        stack.settings.listing_keys_table,
    )


# ---------------------------------------------------------------------------- create twice


@pytest.mark.parametrize("kind", ["connection", "listing", "post", "account"])
def test_a_second_create_of_the_same_id_fails_and_keeps_the_first(
    stack: LocalStack, kind: str
) -> None:
    t = stack.tables
    first: dict[str, tuple[Callable[[], None], Callable[[], None], Callable[[], object]]] = {
        "connection": (
            lambda: ConnectionsRepo(t.connections).create(_connection()),
            lambda: ConnectionsRepo(t.connections).create(_connection(user="u-2")),
            lambda: ConnectionsRepo(t.connections).get_item("c-1"),
        ),
        "listing": (
            lambda: _listings(stack).create(_listing()),
            lambda: _listings(stack).create(_listing().model_copy(update={"user_id": "u-2"})),
            lambda: _listings(stack).get_raw("l-1"),
        ),
        "post": (
            lambda: PostsRepo(t.posts).create(_post()),
            lambda: PostsRepo(t.posts).create(_post().model_copy(update={"listing_id": "l-2"})),
            lambda: PostsRepo(t.posts).get_raw("p-1"),
        ),
        "account": (
            lambda: AccountsRepo(t.accounts).create(_account()),
            lambda: AccountsRepo(t.accounts).create(
                _account().model_copy(update={"user_id": "u-2"})
            ),
            lambda: AccountsRepo(t.accounts).get_raw("a-1"),
        ),
    }
    create, create_other, read = first[kind]
    # Given an item created once
    create()
    before = read()
    # When another create with the same id but different content arrives
    with pytest.raises(ConditionFailed) as caught:
        create_other()
    # Then it fails saying so, shows the item as it is, and the item is untouched
    assert caught.value.reason == "exists"
    assert caught.value.current == before
    assert read() == before


def test_a_sync_run_starts_once(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    assert repo.start(_run()) == _run()
    # A duplicate delivery of the same job: no second start
    assert repo.start(_run().model_copy(update={"reason": "manual"})) is None
    stored = repo.get("c-1", _run().run_key)
    assert stored is not None
    assert stored.reason == "schedule"


# ---------------------------------------------------------------------------- connections


def test_cursor_advances_from_nothing_then_from_what_was_read(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection())
    first = Cursor(timestamp="2026-11-28T10:00:00.1234567Z", listing_key="A")
    second = Cursor(timestamp="2026-11-28T11:00:00Z", listing_key="B")
    repo.advance_cursor("c-1", first, expected=None, synced_at=NOW)
    repo.advance_cursor("c-1", second, expected=first, synced_at=LATER)
    stored = repo.get("c-1")
    assert stored is not None
    assert stored.cursor == second
    assert stored.last_synced_at == LATER


def test_a_cursor_moved_by_someone_else_is_never_rewound(stack: LocalStack) -> None:
    # Given two workers that both read the cursor at A
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection())
    a = Cursor(timestamp="2026-11-28T10:00:00Z", listing_key="A")
    repo.advance_cursor("c-1", a, expected=None, synced_at=NOW)
    # When one moves it to C and the other then tries to move it to B
    c = Cursor(timestamp="2026-11-28T12:00:00Z", listing_key="C")
    b = Cursor(timestamp="2026-11-28T11:00:00Z", listing_key="B")
    repo.advance_cursor("c-1", c, expected=a, synced_at=NOW)
    with pytest.raises(ConditionFailed) as caught:
        repo.advance_cursor("c-1", b, expected=a, synced_at=LATER)
    # Then the second learns why and the cursor stays at C
    assert caught.value.reason == "cursor moved"
    assert caught.value.current is not None
    assert caught.value.current["cursor"] == c.to_item()
    stored = repo.get("c-1")
    assert stored is not None
    assert stored.cursor == c


def test_a_first_cursor_cannot_overwrite_an_existing_one(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection())
    a = Cursor(timestamp="2026-11-28T10:00:00Z")
    repo.advance_cursor("c-1", a, expected=None, synced_at=NOW)
    with pytest.raises(ConditionFailed, match="cursor moved"):
        repo.advance_cursor(
            "c-1", Cursor(timestamp="2020-01-01T00:00:00Z"), expected=None, synced_at=NOW
        )


def test_cursor_of_a_missing_connection_is_not_created(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    with pytest.raises(ConditionFailed):
        repo.advance_cursor("ghost", Cursor(timestamp=NOW), expected=None, synced_at=NOW)
    assert repo.get_item("ghost") is None


def test_only_enabled_connections_are_in_the_sparse_index(stack: LocalStack) -> None:
    # Given three connections, one disabled from the start
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection("c-1"))
    repo.create(_connection("c-2"))
    repo.create(_connection("c-3", enabled=False))
    assert sorted(repo.iter_enabled_ids()) == ["c-1", "c-2"]
    # When one is disabled and the other enabled
    repo.set_enabled("c-1", False)
    repo.set_enabled("c-3", True)
    # Then the dispatcher's index follows, and the items say so
    assert sorted(repo.iter_enabled_ids()) == ["c-2", "c-3"]
    disabled = repo.get_item("c-1")
    assert disabled is not None
    assert disabled["enabled"] is False
    assert "enabledShard" not in disabled


def test_set_enabled_on_a_missing_connection_creates_nothing(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    with pytest.raises(ConditionFailed, match="missing"):
        repo.set_enabled("ghost", True)
    assert repo.get_item("ghost") is None
    assert list(repo.iter_enabled_ids()) == []


def test_connections_by_user(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection("c-1"))
    repo.create(_connection("c-2", user="u-2"))
    repo.create(_connection("c-3"))
    assert [c.connection_id for c in repo.list_by_user("u-1")] == ["c-1", "c-3"]


def test_mark_reconciled_needs_the_connection(stack: LocalStack) -> None:
    repo = ConnectionsRepo(stack.tables.connections)
    repo.create(_connection())
    repo.mark_reconciled("c-1", NOW)
    stored = repo.get("c-1")
    assert stored is not None
    assert stored.last_reconciled_at == NOW
    with pytest.raises(ConditionFailed):
        repo.mark_reconciled("ghost", NOW)


# ---------------------------------------------------------------------------- listings


def test_set_excluded_needs_the_listing(stack: LocalStack) -> None:
    repo = _listings(stack)
    repo.create(_listing())
    repo.set_excluded("l-1", True)
    stored = repo.get("l-1")
    assert stored is not None
    assert stored.sync_excluded
    with pytest.raises(ConditionFailed, match="missing"):
        repo.set_excluded("ghost", True)
    assert repo.get_raw("ghost") is None


# ---------------------------------------------------------------------------- posts


def test_a_published_post_records_its_outcome_once(stack: LocalStack) -> None:
    repo = PostsRepo(stack.tables.posts)
    repo.create(_post())
    # When the publisher records the deletion
    repo.record_outcome("p-1", PostStatus.UNPUBLISHED, reason="deleted", at=NOW)
    stored = repo.get("p-1")
    assert stored is not None
    assert stored.status is PostStatus.UNPUBLISHED
    assert stored.unpublished_at == NOW
    # Then a second (duplicate) outcome cannot overwrite it
    with pytest.raises(ConditionFailed) as caught:
        repo.record_outcome("p-1", PostStatus.FAILED, reason="late duplicate", at=LATER)
    assert caught.value.reason == "status unpublished"
    again = repo.get("p-1")
    assert again == stored


@pytest.mark.parametrize(
    "status",
    [s for s in PostStatus if s is not PostStatus.PUBLISHED],
)
def test_only_published_posts_are_ever_unpublished(stack: LocalStack, status: PostStatus) -> None:
    repo = PostsRepo(stack.tables.posts)
    repo.create(_post(status=status))
    with pytest.raises(ConditionFailed, match=f"status {status.value}"):
        repo.record_outcome("p-1", PostStatus.UNPUBLISHED, reason=None, at=NOW)
    stored = repo.get("p-1")
    assert stored is not None
    assert stored.status is status


def test_an_outcome_for_a_missing_post_creates_nothing(stack: LocalStack) -> None:
    repo = PostsRepo(stack.tables.posts)
    with pytest.raises(ConditionFailed, match="status missing"):
        repo.record_outcome("ghost", PostStatus.UNPUBLISHED, reason=None, at=NOW)
    assert repo.get_raw("ghost") is None


@pytest.mark.parametrize("status", [PostStatus.DRAFT, PostStatus.SCHEDULED, PostStatus.PUBLISHED])
def test_a_published_post_cannot_become_a_non_outcome(
    stack: LocalStack, status: PostStatus
) -> None:
    with pytest.raises(ValueError, match="cannot become"):
        PostsRepo(stack.tables.posts).record_outcome("p-1", status, reason=None, at=NOW)


def test_posts_by_listing(stack: LocalStack) -> None:
    repo = PostsRepo(stack.tables.posts)
    repo.create(_post("p-2"))
    repo.create(_post("p-1"))
    repo.create(_post("p-3").model_copy(update={"listing_id": "l-9"}))
    assert [p.post_id for p in repo.list_by_listing("l-1")] == ["p-1", "p-2"]


# ---------------------------------------------------------------------------- accounts


@pytest.mark.usefixtures("atomic_writes")
def test_ten_concurrent_refreshers_exactly_one_takes_the_lease(stack: LocalStack) -> None:
    AccountsRepo(stack.tables.accounts).create(_account())
    name = stack.settings.accounts_table
    barrier = threading.Barrier(10)
    results: dict[str, bool] = {}

    def refresher(owner: str) -> None:
        # Each thread its own boto3 resource: boto3 resources are not thread-safe.
        repo = AccountsRepo(boto3.session.Session().resource("dynamodb").Table(name))
        barrier.wait()
        results[owner] = repo.acquire_refresh_lease("a-1", owner, now=NOW, until=LATER)

    threads = [threading.Thread(target=refresher, args=(f"w{i}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [owner for owner, won in results.items() if won]
    assert len(results) == 10
    assert len(winners) == 1
    stored = AccountsRepo(stack.tables.accounts).get("a-1")
    assert stored is not None
    assert stored.lease_owner == winners[0]


def test_a_live_lease_blocks_others_and_an_expired_one_can_be_taken(stack: LocalStack) -> None:
    repo = AccountsRepo(stack.tables.accounts)
    repo.create(_account())
    assert repo.acquire_refresh_lease("a-1", "w1", now=NOW, until=LATER)
    assert not repo.acquire_refresh_lease("a-1", "w2", now=NOW, until=LATER)
    # the holder may renew its own lease
    assert repo.acquire_refresh_lease("a-1", "w1", now=NOW, until=LATER)
    # after the lease ran out, another refresher takes over
    after = "2026-11-28T17:05:00.000001Z"
    assert repo.acquire_refresh_lease("a-1", "w2", now=after, until="2026-11-28T17:10:00Z")
    # and the first holder can no longer release it
    with pytest.raises(ConditionFailed, match="lease lost"):
        repo.release_refresh_lease("a-1", "w1")
    stored = repo.get("a-1")
    assert stored is not None
    assert stored.lease_owner == "w2"


def test_releasing_a_lease_records_the_new_expiry(stack: LocalStack) -> None:
    repo = AccountsRepo(stack.tables.accounts)
    repo.create(_account())
    assert repo.acquire_refresh_lease("a-1", "w1", now=NOW, until=LATER)
    repo.release_refresh_lease("a-1", "w1", token_expires_at="2027-01-28T17:00:00.000000Z")
    stored = repo.get("a-1")
    assert stored is not None
    assert stored.lease_owner is None
    assert stored.token_expires_at == "2027-01-28T17:00:00.000000Z"
    assert repo.acquire_refresh_lease("a-1", "w2", now=NOW, until=LATER)


def test_a_lease_on_a_missing_account_is_refused(stack: LocalStack) -> None:
    repo = AccountsRepo(stack.tables.accounts)
    assert not repo.acquire_refresh_lease("ghost", "w1", now=NOW, until=LATER)
    assert repo.get_raw("ghost") is None


def test_account_status_needs_the_account(stack: LocalStack) -> None:
    repo = AccountsRepo(stack.tables.accounts)
    repo.create(_account())
    repo.set_status("a-1", "reauth_required", at=NOW)
    stored = repo.get("a-1")
    assert stored is not None
    assert stored.status == "reauth_required"
    with pytest.raises(ConditionFailed, match="missing"):
        repo.set_status("ghost", "active", at=NOW)
    assert repo.get_raw("ghost") is None


# ---------------------------------------------------------------------------- sync runs


def test_a_run_finishes_only_while_running(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    repo.start(_run())
    done = _run().model_copy(
        update={"outcome": "succeeded", "finished_at": LATER, "counts": RunCounts(records_read=3)}
    )
    repo.finish(done)
    assert repo.get("c-1", _run().run_key) == done
    # A second finish (say, a retried invocation) cannot overwrite the first
    with pytest.raises(ConditionFailed, match="not running"):
        repo.finish(done.model_copy(update={"outcome": "failed"}))
    stored = repo.get("c-1", _run().run_key)
    assert stored is not None
    assert stored.outcome == "succeeded"


def test_a_run_that_never_started_cannot_be_finished(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    with pytest.raises(ConditionFailed):
        repo.finish(_run().model_copy(update={"outcome": "succeeded"}))
    assert repo.get("c-1", _run().run_key) is None


def test_finish_keeps_only_the_first_errors(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    repo.start(_run())
    repo.finish(
        _run().model_copy(update={"outcome": "partial", "errors": [f"e{i}" for i in range(50)]})
    )
    stored = repo.get("c-1", _run().run_key)
    assert stored is not None
    assert stored.errors == [f"e{i}" for i in range(10)]


def test_restart_only_takes_over_the_named_outcome(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    repo.start(_run())
    repo.finish(_run().model_copy(update={"outcome": "failed"}))
    retry = _run().model_copy(update={"started_at": LATER})
    assert not repo.restart(retry, previous_outcome="continued")
    assert repo.restart(retry, previous_outcome="failed")
    stored = repo.get("c-1", _run().run_key)
    assert stored is not None
    assert stored.outcome == "running"
    assert stored.started_at == LATER
    # and only once: the run is running again now
    assert not repo.restart(retry, previous_outcome="failed")


def test_runs_by_connection_newest_first(stack: LocalStack) -> None:
    repo = SyncRunsRepo(stack.tables.sync_runs)
    for key in ["2026-11-28T17:00:00Z#s", "2026-11-28T17:30:00Z#s", "2026-11-28T17:15:00Z#s"]:
        repo.start(_run(key))
    assert [r.run_key for r in repo.list_for_connection("c-1")] == [
        "2026-11-28T17:30:00Z#s",
        "2026-11-28T17:15:00Z#s",
        "2026-11-28T17:00:00Z#s",
    ]


# ---------------------------------------------------------------------------- history


def test_history_reads_newest_first_and_records_each_change_once(stack: LocalStack) -> None:
    # Given a listing that went pending, then active, then sold (applied in MLS order)
    repo = _listings(stack)
    repo.create(_listing())
    steps = [
        (Status.PENDING, "2026-11-28T10:00:00.0000001Z"),
        (Status.ACTIVE, "2026-11-28T10:00:00.0000002Z"),
        (Status.SOLD, "2026-11-28T11:00:00Z"),
    ]
    for status, modified in steps:
        current = repo.get("l-1")
        assert current is not None
        update = MlsUpdate(status, None, None, Instant.parse(modified), NOW)
        change = StatusChange(
            listing_id="l-1",
            change_key=change_key(update.modified, status),
            from_status=current.status,
            to_status=status,
            detected_at=NOW,
            source="schedule",
            pending_effects=["event"],
        )
        assert repo.apply(current, update, change).applied
    history = HistoryRepo(stack.tables.history)
    entries = history.list_for_listing("l-1")
    # Then the history is newest first, even 100 ns apart
    assert [(e.from_status, e.to_status) for e in entries] == [
        (Status.ACTIVE, Status.SOLD),
        (Status.PENDING, Status.ACTIVE),
        (Status.ACTIVE, Status.PENDING),
    ]
    assert history.list_for_listing("l-1", limit=1)[0].to_status is Status.SOLD
    # and completing an outbox effect is idempotent, but needs the entry
    key = entries[0].change_key
    history.complete_effect("l-1", key, "event")
    history.complete_effect("l-1", key, "event")
    done = history.get("l-1", key)
    assert done is not None
    assert done.pending_effects == []
    with pytest.raises(ConditionFailed):
        history.complete_effect("l-1", "no-such-key", "event")
