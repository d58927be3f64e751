"""`mls-sync seed FILE`: validate a portfolio file whole, then write it idempotently.

Nothing is written unless the whole file is valid. A reference the file does not resolve (a
post's listing or account, a listing's connection or user) is looked up in the stack first,
so a file may add listings and posts to what an earlier seed wrote. Writes are creates guarded by
``attribute_not_exists``: an item that already exists is left exactly as it is (its status,
cursor and MLS timestamps belong to the sync from then on), and so is its secret, which a
token refresh may have rotated since. Running seed twice therefore changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError
from mls_sync import aws
from mls_sync.config import stack_environment
from mls_sync.dal import AccountsRepo, ConditionFailed, ConnectionsRepo, PostsRepo, Tables
from mls_sync.dal.listings import ListingsRepo
from mls_sync.models import Connection, Listing, PlatformAccount, Post
from mls_sync.secrets import SecretError, SecretStore, mls_secret_name, platform_secret_name

from mls_sync_local.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from mls_sync_local.portfolio import (
    Portfolio,
    PortfolioAccount,
    PortfolioConnection,
    PortfolioListing,
    PortfolioPost,
    StackLookup,
    validate_portfolio,
)
from mls_sync_local.runtime.stack import endpoint_from_env, region

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

DEFAULT_STACK = "mls-sync-dev"

KINDS: tuple[str, ...] = ("connections", "platformAccounts", "listings", "posts")


def stack_name(env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return source.get("MLS_SYNC_STACK") or DEFAULT_STACK


def stack_tables(stack: str, resource: DynamoDBServiceResource | None = None) -> Tables:
    """The stack's tables by the names template.yaml gives them (no queue URLs needed)."""
    names = stack_environment(stack)
    db = resource or aws.dynamodb_resource()
    return Tables(
        connections=db.Table(names["CONNECTIONS_TABLE"]),
        listings=db.Table(names["LISTINGS_TABLE"]),
        posts=db.Table(names["POSTS_TABLE"]),
        accounts=db.Table(names["ACCOUNTS_TABLE"]),
        history=db.Table(names["HISTORY_TABLE"]),
        sync_runs=db.Table(names["SYNC_RUNS_TABLE"]),
        idempotency_name=names["IDEMPOTENCY_TABLE"],
        listing_keys_name=names["LISTING_KEYS_TABLE"],
    )


class StackItems:
    """The portfolio's ``StackLookup`` over a stack's tables: items by id, and users as the
    owners of a connection or platform account (there is no users table)."""

    def __init__(self, tables: Tables) -> None:
        self._tables = {
            "connections": (tables.connections, "connectionId"),
            "platformAccounts": (tables.accounts, "accountId"),
            "listings": (tables.listings, "listingId"),
            "posts": (tables.posts, "postId"),
        }

    def __call__(self, section: str, ids: Collection[str]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for item_id in ids:
            item = self._user(item_id) if section == "users" else self._item(section, item_id)
            if item is not None:
                found[item_id] = item
        return found

    def _item(self, section: str, item_id: str) -> Mapping[str, Any] | None:
        table, key = self._tables[section]
        item: Mapping[str, Any] | None = table.get_item(Key={key: item_id}).get("Item")
        return item

    def _user(self, user_id: str) -> Mapping[str, Any] | None:
        for section in ("connections", "platformAccounts"):
            table, _ = self._tables[section]
            page = table.query(
                IndexName="byUser", KeyConditionExpression=Key("userId").eq(user_id), Limit=1
            )
            if page.get("Items"):
                return {"userId": user_id}
        return None


@dataclass
class SeedReport:
    """What one seed did: per kind, how many items it created and how many it found."""

    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    # Existing items whose identity fields differ from the file (seed never overwrites).
    differing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{k} {self.created[k]} created/{self.unchanged[k]} unchanged" for k in KINDS]
        return "; ".join(parts)


class Seeder:
    """Writes a validated portfolio into a stack's tables and secrets."""

    def __init__(self, tables: Tables, secrets: SecretStore, stack: str) -> None:
        self._prefix = f"{stack}/"
        self._secrets = secrets
        self._connections = ConnectionsRepo(tables.connections)
        self._accounts = AccountsRepo(tables.accounts)
        self._listings = ListingsRepo(
            tables.listings, aws.dynamodb(), tables.history.name, tables.listing_keys_name
        )
        self._posts = PostsRepo(tables.posts)

    def seed(self, portfolio: Portfolio) -> SeedReport:
        report = SeedReport()
        for conn in portfolio.connections:
            self._connection(conn, report)
        for account in portfolio.platform_accounts:
            self._account(account, report)
        for listing in portfolio.listings:
            self._listing(listing, report)
        for post in portfolio.posts:
            self._post(post, report)
        return report

    # Each kind: if the item exists, note it (and any difference) and touch nothing, not even
    # its secret; otherwise store the secret, then create the item conditionally. A create
    # that loses a race with another seeder is "unchanged" too: the item is there.

    def _connection(self, conn: PortfolioConnection, report: SeedReport) -> None:
        existing = self._connections.get_item(conn.connection_id)
        wanted = {
            "userId": conn.user_id,
            "vendor": conn.vendor,
            "baseUrl": conn.base_url,
            "resource": conn.resource,
            "dataset": conn.dataset,
            "originatingSystemName": conn.originating_system_name,
        }
        if existing is not None:
            _note_existing("connections", conn.connection_id, existing, wanted, report)
            return
        arn = self._secrets.put_json(
            mls_secret_name(self._prefix, conn.connection_id), conn.credentials.secret_value()
        )
        item = Connection(
            connection_id=conn.connection_id,
            user_id=conn.user_id,
            vendor=conn.vendor,
            base_url=conn.base_url,
            resource=conn.resource,
            dataset=conn.dataset,
            originating_system_name=conn.originating_system_name,
            credentials_secret_arn=arn,
            enabled=conn.enabled,
            overlap_seconds=conn.overlap_seconds,
            brake_share=conn.brake_share,
            brake_min_listings=conn.brake_min_listings,
            detection=conn.detection,
        )
        _create("connections", lambda: self._connections.create(item), report)

    def _account(self, account: PortfolioAccount, report: SeedReport) -> None:
        existing = self._accounts.get_raw(account.account_id)
        wanted = {
            "userId": account.user_id,
            "platform": account.platform.value,
            "externalId": account.external_id,
            "connectedVia": account.connected_via,
        }
        if existing is not None:
            _note_existing("platformAccounts", account.account_id, existing, wanted, report)
            return
        arn = self._secrets.put_json(
            platform_secret_name(self._prefix, account.account_id), account.token.secret_value()
        )
        item = PlatformAccount(
            account_id=account.account_id,
            user_id=account.user_id,
            platform=account.platform,
            external_id=account.external_id,
            connected_via=account.connected_via,
            token_secret_arn=arn,
            token_expires_at=account.token.expires_at,
        )
        _create("platformAccounts", lambda: self._accounts.create(item), report)

    def _listing(self, listing: PortfolioListing, report: SeedReport) -> None:
        existing = self._listings.get_raw(listing.listing_id)
        wanted = {
            "userId": listing.user_id,
            "connectionId": listing.connection_id,
            "listingKey": listing.listing_key,
        }
        if existing is not None:
            _note_existing("listings", listing.listing_id, existing, wanted, report)
            return
        item = Listing(
            listing_id=listing.listing_id,
            user_id=listing.user_id,
            connection_id=listing.connection_id,
            listing_key=listing.listing_key,
            mls_listing_id=listing.mls_listing_id,
            status=listing.status,
            standard_status=listing.standard_status,
            mls_status=listing.mls_status,
            mls_modified_at=listing.mls_modified_at,
            sync_excluded=listing.sync_excluded,
        )
        _create("listings", lambda: self._listings.create(item), report)

    def _post(self, post: PortfolioPost, report: SeedReport) -> None:
        existing = self._posts.get_raw(post.post_id)
        wanted = {
            "listingId": post.listing_id,
            "platform": post.platform.value,
            "accountId": post.account_id,
            "platformPostId": post.platform_post_id,
        }
        if existing is not None:
            _note_existing("posts", post.post_id, existing, wanted, report)
            return
        item = Post(
            post_id=post.post_id,
            listing_id=post.listing_id,
            platform=post.platform,
            account_id=post.account_id,
            platform_post_id=post.platform_post_id,
            status=post.status,
            permalink=post.permalink,
            published_at=post.published_at,
        )
        _create("posts", lambda: self._posts.create(item), report)


def _note_existing(
    kind: str,
    item_id: str,
    existing: Mapping[str, Any],
    wanted: Mapping[str, Any],
    report: SeedReport,
) -> None:
    report.unchanged[kind] += 1
    differs = sorted(k for k, v in wanted.items() if existing.get(k) != v)
    if differs:
        report.differing.append(f"{kind} {item_id} ({', '.join(differs)})")


def _create(kind: str, create: Callable[[], None], report: SeedReport) -> None:
    try:
        create()
    except ConditionFailed:
        report.unchanged[kind] += 1
    else:
        report.created[kind] += 1


# ---------------------------------------------------------------------------- command


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "seed",
        help="validate a portfolio file (JSON or YAML), then write it idempotently",
        description=(
            "Validates the whole file first (exit 2 and one line per error; nothing written), "
            "then creates what does not exist yet. References the file does not resolve (a "
            "post's listing or account, a listing's connection or user) may name items "
            "already in the stack. Credentials and tokens go to Secrets "
            "Manager; items hold the secrets' ARNs. Existing items are never overwritten."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="portfolio file (.yaml, .yml or .json)")
    parser.set_defaults(run=run)


def use_local_aws() -> str:
    """The loopback endpoint from AWS_ENDPOINT_URL (a usage error otherwise: seed and dump
    write and read secrets, and must never reach a real account by accident), with the
    region defaulted as CONTRACT section 2 says and fake credentials when none are set."""
    endpoint = endpoint_from_env()
    if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = region()
    if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        os.environ["AWS_ACCESS_KEY_ID"] = "testing"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 - moto's fake
    return endpoint


def run(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    local_only: bool = True,
) -> int:
    """``local_only=False`` is for callers that set up AWS themselves (moto in-process)."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    stack = stack_name()

    def in_stack(section: str, ids: Collection[str]) -> Mapping[str, Mapping[str, Any]]:
        # Only when the file names something it does not hold: a self-contained file is
        # validated without AWS.
        if local_only:
            use_local_aws()
        return StackItems(stack_tables(stack))(section, ids)

    lookup: StackLookup = in_stack
    try:
        result = validate_portfolio(args.file, stack=lookup)
        if isinstance(result, list):
            for line in result:
                print(line, file=stderr)
            print(f"mls-sync: seed: {len(result)} error(s); nothing written", file=stderr)
            return EXIT_USAGE
        if local_only:
            use_local_aws()
        report = Seeder(stack_tables(stack), SecretStore(aws.secrets()), stack).seed(result)
    except SecretError as exc:
        print(f"mls-sync: seed: {exc}", file=stderr)
        return EXIT_FAILED
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = (
            " (is the stack deployed? `mls-sync local deploy`)"
            if error.get("Code") == "ResourceNotFoundException"
            else ""
        )
        print(
            f"mls-sync: seed: {exc.operation_name} failed: {error.get('Code', 'error')}{hint}",
            file=stderr,
        )
        return EXIT_FAILED
    except BotoCoreError as exc:
        print(f"mls-sync: seed: AWS unreachable: {type(exc).__name__}", file=stderr)
        return EXIT_FAILED
    for line in report.differing:
        print(f"mls-sync: seed: kept existing {line}: differs from the file", file=stderr)
    print(f"seeded {args.file} into {stack}: {report.summary()}", file=stdout)
    return EXIT_OK


__all__ = [
    "SeedReport",
    "Seeder",
    "StackItems",
    "register",
    "run",
    "stack_name",
    "stack_tables",
    "use_local_aws",
]
