"""`mls-sync seed` and `mls-sync dump` against the stack's tables in moto: a valid file is
written with secrets in Secrets Manager only, an invalid one writes nothing and exits 2, and
seeding twice changes nothing at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from mls_sync.dal import ConnectionsRepo
from mls_sync.models import Cursor

from mls_sync_local.cli import build_parser
from mls_sync_local.dump import scan_all
from tests.support.stack import STACK, LocalStack

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "portfolio.sample.yaml"
SAMPLE_SECRETS = (
    "fake-mlsgrid-token-ada",
    "fake-trestle-secret",
    "fake-fb-page-token",
    "fake-ig-token",
    "fake-li-access",
    "fake-li-refresh",
)


@pytest.fixture
def seeded_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("MLS_SYNC_STACK", STACK)
    return stack


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = build_parser(("mls_sync_local.seed", "mls_sync_local.dump"))
    args = parser.parse_args(list(argv))
    # moto runs in this process (mock_aws), not behind a loopback AWS_ENDPOINT_URL.
    code = args.run(args, local_only=False)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _snapshot(stack: LocalStack) -> dict[str, Any]:
    """Every item of every table, and every secret with its versions and value."""
    t = stack.tables
    tables = {
        name: sorted(scan_all(table), key=lambda i: json.dumps(i, sort_keys=True))
        for name, table in {
            "connections": t.connections,
            "listings": t.listings,
            "posts": t.posts,
            "accounts": t.accounts,
            "history": t.history,
            "syncRuns": t.sync_runs,
        }.items()
    }
    sm = boto3.client("secretsmanager")
    secrets = {}
    for secret in sm.list_secrets()["SecretList"]:
        versions = sm.list_secret_version_ids(SecretId=secret["ARN"])["Versions"]
        secrets[secret["Name"]] = {
            "arn": secret["ARN"],
            "versions": sorted(v["VersionId"] for v in versions),
            "value": sm.get_secret_value(SecretId=secret["ARN"])["SecretString"],
        }
    return {"tables": tables, "secrets": secrets}


def test_valid_file_is_written_with_secrets_only_in_secrets_manager(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the sample portfolio is seeded
    code, out, err = _cli(capsys, "seed", str(SAMPLE))
    # Then it succeeds with a one-line summary of what it created
    assert code == 0, err
    assert out.count("\n") == 1
    assert "connections 2 created/0 unchanged" in out
    assert "platformAccounts 3 created" in out
    assert "listings 4 created" in out
    assert "posts 5 created" in out
    snap = _snapshot(seeded_env)
    # and every item is there, holding secret ARNs that resolve to the file's secrets
    assert len(snap["tables"]["connections"]) == 2
    assert len(snap["tables"]["posts"]) == 5
    conn = ConnectionsRepo(seeded_env.tables.connections).get("c-ada-actris")
    assert conn is not None
    secret = snap["secrets"][f"{STACK}/mls/c-ada-actris"]
    assert conn.credentials_secret_arn == secret["arn"]
    assert json.loads(secret["value"]) == {"token": "fake-mlsgrid-token-ada"}
    trestle = json.loads(snap["secrets"][f"{STACK}/mls/c-ben-trestle"]["value"])
    assert trestle["clientSecret"] == "fake-trestle-secret"
    linkedin = json.loads(snap["secrets"][f"{STACK}/platform/a-ben-li"]["value"])
    assert linkedin["refreshToken"] == "fake-li-refresh"
    # and no secret value sits in any item, nor in what the command printed
    items_text = json.dumps(snap["tables"])
    for value in SAMPLE_SECRETS:
        assert value not in items_text
        assert value not in out + err
    # and enabled connections are visible to the dispatcher's sparse index
    assert sorted(ConnectionsRepo(seeded_env.tables.connections).iter_enabled_ids()) == [
        "c-ada-actris",
        "c-ben-trestle",
    ]


def test_seeding_twice_changes_nothing(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a seeded stack
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    before = _snapshot(seeded_env)
    # When the same file is seeded again
    code, out, err = _cli(capsys, "seed", str(SAMPLE))
    # Then nothing is created and not one item, secret or secret version differs
    assert code == 0, err
    assert "connections 0 created/2 unchanged" in out
    assert "posts 0 created/5 unchanged" in out
    assert _snapshot(seeded_env) == before


def test_reseeding_leaves_mls_synced_state_alone(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a seeded stack whose connection has since synced (cursor moved) and whose file
    # now says something different about an existing connection
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    repo = ConnectionsRepo(seeded_env.tables.connections)
    cursor = Cursor(timestamp="2026-11-28T10:00:00.1234567Z", listing_key="ACT1001")
    repo.advance_cursor("c-ada-actris", cursor, expected=None, synced_at="2026-11-28T10:01:00Z")
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        SAMPLE.read_text(encoding="utf-8").replace(
            "https://api.mlsgrid.com/v2", "https://api.mlsgrid.com/v3"
        ),
        encoding="utf-8",
    )
    before = _snapshot(seeded_env)
    # When the edited file is seeded
    code, _, err = _cli(capsys, "seed", str(edited))
    # Then nothing is overwritten (cursor included) and the difference is reported
    assert code == 0
    assert _snapshot(seeded_env) == before
    stored = repo.get("c-ada-actris")
    assert stored is not None
    assert stored.cursor == cursor
    assert "connections c-ada-actris (baseUrl)" in err


def test_invalid_file_writes_nothing_and_names_every_error(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a file with a good connection but a misspelt status and an unknown account
    bad = tmp_path / "portfolio.yaml"
    bad.write_text(
        SAMPLE.read_text(encoding="utf-8")
        .replace("listingKey: ACT1002, status: pending", "listingKey: ACT1002, status: sould")
        .replace(
            'accountId: a-ben-li,\n     platformPostId: "urn:li:share:7000000000000000002"',
            'accountId: a-nobody,\n     platformPostId: "urn:li:share:7000000000000000002"',
        ),
        encoding="utf-8",
    )
    # When it is seeded
    code, out, err = _cli(capsys, "seed", str(bad))
    # Then it exits 2 with one line per error naming file, record and field
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert (
        f"{bad}: listings[1].status: 'sould' is not a status (expected one of: active,"
        in (lines[0])
    )
    assert (
        f"{bad}: posts[4].accountId: 'a-nobody' is neither in this file nor in the stack" in lines
    )
    assert lines[-1].endswith("2 error(s); nothing written")
    # and nothing at all was written
    snap = _snapshot(seeded_env)
    assert all(items == [] for items in snap["tables"].values())
    assert snap["secrets"] == {}


ADDITION = """\
listings:
  - {listingId: l-5, userId: u-ada, connectionId: c-ada-actris, listingKey: ACT1005,
     status: active}
posts:
  - {postId: p-6, listingId: l-5, platform: facebook, accountId: a-ada-fb,
     platformPostId: "1234567890_995", status: published}
  - {postId: p-7, listingId: l-1, platform: linkedin, accountId: a-ben-li,
     platformPostId: "urn:li:share:7000000000000000007", status: published}
"""


def test_a_second_file_adds_listings_and_posts_to_what_the_stack_holds(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a stack seeded from the sample (users, connections, accounts, listings, posts)
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    # and a file with only a listing and posts, naming the sample's connection, user,
    # accounts and one of its listings
    more = tmp_path / "more.yaml"
    more.write_text(ADDITION, encoding="utf-8")
    # When it is seeded
    code, out, err = _cli(capsys, "seed", str(more))
    # Then its references resolve against the stack and only the new items are created
    assert code == 0, err
    assert "connections 0 created/0 unchanged" in out
    assert "listings 1 created/0 unchanged" in out
    assert "posts 2 created/0 unchanged" in out
    snap = _snapshot(seeded_env)
    listings = {i["listingId"]: i for i in snap["tables"]["listings"]}
    assert listings["l-5"]["connectionId"] == "c-ada-actris"
    posts = {i["postId"]: i for i in snap["tables"]["posts"]}
    assert posts["p-6"]["listingId"] == "l-5"
    assert posts["p-7"]["listingId"] == "l-1"
    assert len(posts) == 7
    # and seeding it again changes nothing
    before = _snapshot(seeded_env)
    code, out, _ = _cli(capsys, "seed", str(more))
    assert code == 0
    assert "posts 0 created/2 unchanged" in out
    assert _snapshot(seeded_env) == before


def test_a_reference_neither_in_the_file_nor_in_the_stack_writes_nothing(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a seeded stack and a file whose records name, besides good references, a
    # listing, an account and a connection that exist nowhere, a post whose platform is not
    # its stack account's, and a listing whose stack connection belongs to another user
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    before = _snapshot(seeded_env)
    bad = tmp_path / "my.yaml"
    bad.write_text(
        """\
listings:
  - {listingId: l-6, userId: u-ada, connectionId: c-9, listingKey: X1, status: active}
  - {listingId: l-7, userId: u-zed, connectionId: c-ben-trestle, listingKey: X2, status: active}
  - {listingId: l-5, userId: u-ada, connectionId: c-ada-actris, listingKey: X3, status: active}
posts:
  - {postId: p-6, listingId: l-5, platform: facebook, accountId: a-ada-fb,
     platformPostId: "1234567890_995", status: published}
  - {postId: p-7, listingId: l-1, platform: linkedin, accountId: a-ben-li,
     platformPostId: "urn:li:share:7000000000000000007", status: published}
  - {postId: p-8, listingId: l-9, platform: facebook, accountId: a-ada-fb,
     platformPostId: "1", status: published}
  - {postId: p-9, listingId: l-5, platform: facebook, accountId: a-9,
     platformPostId: "2", status: published}
  - {postId: p-10, listingId: l-2, platform: instagram, accountId: a-ada-fb,
     platformPostId: "3", status: published}
""",
        encoding="utf-8",
    )
    # When it is seeded
    code, out, err = _cli(capsys, "seed", str(bad))
    # Then it exits 2 naming file, section, index and field of each dangling reference
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert f"{bad}: listings[0].connectionId: 'c-9' is neither in this file nor in the stack" in (
        lines
    )
    assert f"{bad}: listings[1].userId: 'u-zed' is neither in this file nor in the stack" in lines
    assert (
        f"{bad}: listings[1].connectionId: connection 'c-ben-trestle' belongs to user 'u-ben',"
        " not 'u-zed'"
    ) in lines
    assert f"{bad}: posts[2].listingId: 'l-9' is neither in this file nor in the stack" in lines
    assert f"{bad}: posts[3].accountId: 'a-9' is neither in this file nor in the stack" in lines
    assert (
        f"{bad}: posts[4].platform: 'instagram' does not match account 'a-ada-fb',"
        " which is 'facebook'"
    ) in lines
    assert lines[-1] == "mls-sync: seed: 6 error(s); nothing written"
    # and nothing at all was written: not the valid listing, not the valid posts
    assert _snapshot(seeded_env) == before


def test_missing_file_is_bad_input(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _cli(capsys, "seed", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert f"{tmp_path / 'nope.yaml'}: cannot read" in err


def test_seed_into_a_stack_that_is_not_deployed_fails_with_one_line(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLS_SYNC_STACK", "not-deployed")
    code, _, err = _cli(capsys, "seed", str(SAMPLE))
    assert code == 1
    assert "ResourceNotFoundException" in err
    assert len(err.splitlines()) == 1


def test_dump_json_is_the_portfolio_shape_with_arns_and_status(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a seeded stack
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    # When it is dumped as JSON
    code, out, _ = _cli(capsys, "dump", "--json")
    # Then the sections are the portfolio file's, with ARNs where the secrets were
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["users", "connections", "platformAccounts", "listings", "posts"]
    assert [u["userId"] for u in data["users"]] == ["u-ada", "u-ben"]
    conn = data["connections"][0]
    assert conn["connectionId"] == "c-ada-actris"
    assert conn["credentialsSecretArn"].startswith("arn:aws:secretsmanager:")
    assert "credentials" not in conn
    assert "enabledShard" not in conn
    assert all("tokenSecretArn" in a and "token" not in a for a in data["platformAccounts"])
    assert {li["listingId"]: li["status"] for li in data["listings"]} == {
        "l-1": "active",
        "l-2": "pending",
        "l-3": "active",
        "l-4": "sold",
    }
    assert {p["postId"]: p["status"] for p in data["posts"]}["p-5"] == "unpublished"
    for value in SAMPLE_SECRETS:
        assert value not in out


def test_dump_text_lists_connections_listings_and_posts(
    seeded_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(capsys, "seed", str(SAMPLE))[0] == 0
    code, out, _ = _cli(capsys, "dump")
    assert code == 0
    assert "CONNECTIONS (2)" in out
    assert "LISTINGS (4)" in out
    assert "POSTS (5)" in out
    listing_line = next(line for line in out.splitlines() if line.startswith("l-4 "))
    assert "sold" in listing_line.split()
