"""Portfolio file validation: a valid file reads whole; an invalid one yields every error,
each naming file, section, record index and field, and never quoting a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mls_sync.models import Platform, PostStatus
from mls_sync.status import Status

from mls_sync_local.portfolio import Portfolio, validate_document, validate_portfolio

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "portfolio.sample.yaml"
F = "portfolio.yaml"
SECRET = "s3cr3t-VALUE-never-printed"


def _good() -> dict[str, Any]:
    return {
        "users": [{"userId": "u-1", "name": "Ada"}],
        "connections": [
            {
                "connectionId": "c-1",
                "userId": "u-1",
                "vendor": "mlsgrid",
                "baseUrl": "https://api.mlsgrid.com/v2",
                "originatingSystemName": "actris",
                "credentials": {"token": SECRET},
            }
        ],
        "platformAccounts": [
            {
                "accountId": "a-1",
                "userId": "u-1",
                "platform": "facebook",
                "externalId": "123",
                "token": {"accessToken": SECRET, "refreshToken": SECRET},
            }
        ],
        "listings": [
            {
                "listingId": "l-1",
                "userId": "u-1",
                "connectionId": "c-1",
                "listingKey": "K1",
                "status": "active",
            }
        ],
        "posts": [
            {
                "postId": "p-1",
                "listingId": "l-1",
                "platform": "facebook",
                "accountId": "a-1",
                "platformPostId": "123_456",
                "status": "published",
            }
        ],
    }


def _errors(doc: object) -> list[str]:
    result = validate_document(doc, F)
    assert isinstance(result, list), "expected errors"
    for line in result:
        assert SECRET not in line
    return result


def test_the_sample_file_is_valid() -> None:
    result = validate_portfolio(SAMPLE)
    assert isinstance(result, Portfolio), result
    assert len(result.users) == 2
    assert {p.platform for p in result.posts} == set(Platform)
    assert {c.vendor for c in result.connections} == {"mlsgrid", "trestle"}


def test_a_valid_document_reads_into_models() -> None:
    result = validate_document(_good(), F)
    assert isinstance(result, Portfolio)
    assert result.listings[0].status is Status.ACTIVE
    assert result.posts[0].status is PostStatus.PUBLISHED
    assert result.connections[0].credentials.secret_value() == {"token": SECRET}
    assert SECRET not in repr(result)  # SecretStr: even a debug print hides it


def test_json_and_yaml_files_read_the_same(tmp_path: Path) -> None:
    as_json = tmp_path / "p.json"
    as_json.write_text(json.dumps(_good()), encoding="utf-8")
    as_yaml = tmp_path / "p.yaml"
    as_yaml.write_text(yaml.safe_dump(_good()), encoding="utf-8")
    a, b = validate_portfolio(as_json), validate_portfolio(as_yaml)
    assert isinstance(a, Portfolio)
    assert a == b


def test_yaml_numbers_and_dates_stay_text(tmp_path: Path) -> None:
    # Unquoted ids that look like numbers and unquoted timestamps are what people write
    doc = yaml.safe_dump(_good()).replace("externalId: '123'", "externalId: 123")
    doc = doc.replace("status: published", "status: published\n  publishedAt: 2026-11-01T10:00:00Z")
    path = tmp_path / "p.yaml"
    path.write_text(doc, encoding="utf-8")
    result = validate_portfolio(path)
    assert isinstance(result, Portfolio), result
    assert result.platform_accounts[0].external_id == "123"
    assert result.posts[0].published_at == "2026-11-01T10:00:00.000000Z"


def test_client_credentials_are_accepted() -> None:
    doc = _good()
    doc["connections"][0]["credentials"] = {
        "clientId": "id",
        "clientSecret": SECRET,
        "tokenUrl": "https://auth.example.com/token",
        "scope": "api",
    }
    result = validate_document(doc, F)
    assert isinstance(result, Portfolio)
    assert result.connections[0].credentials.secret_value()["clientSecret"] == SECRET


def test_misspelt_status_names_file_index_field_and_the_choices() -> None:
    doc = _good()
    doc["listings"] = [doc["listings"][0]] * 3 + [
        {**doc["listings"][0], "listingId": "l-4", "listingKey": "K4", "status": "sould"}
    ]
    doc["listings"][1] = {**doc["listings"][0], "listingId": "l-2", "listingKey": "K2"}
    doc["listings"][2] = {**doc["listings"][0], "listingId": "l-3", "listingKey": "K3"}
    assert _errors(doc) == [
        "portfolio.yaml: listings[3].status: 'sould' is not a status (expected one of: active,"
        " pending, sold, coming_soon, expired, withdrawn, canceled, hold, deleted, incomplete)"
    ]


def _with(section: str, index: int, **changes: Any) -> dict[str, Any]:
    doc = _good()
    record = dict(doc[section][index])
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    doc[section][index] = record
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (_with("users", 0, userId=None), "users[0].userId: required"),
        (_with("connections", 0, vendor="zillow"), "connections[0].vendor: 'zillow' is not one"),
        (_with("connections", 0, userId="u-9"), "connections[0].userId: unknown user 'u-9'"),
        (
            _with("connections", 0, originatingSystemName=None),
            "connections[0].originatingSystemName: required for vendor mlsgrid",
        ),
        (
            _with("connections", 0, vendor="bridge", originatingSystemName=None),
            "connections[0].dataset: required for vendor bridge",
        ),
        (
            _with("connections", 0, baseUrl="http://api.mlsgrid.com/v2"),
            "connections[0].baseUrl: must use https",
        ),
        (
            _with("connections", 0, baseUrl="api.mlsgrid.com"),
            "connections[0].baseUrl: must be an absolute https:// URL",
        ),
        (
            _with("connections", 0, credentials={"clientId": "x"}),
            "connections[0].credentials: give either token or all of clientId",
        ),
        (
            _with("connections", 0, overlapSeconds=-1),
            "connections[0].overlapSeconds: Input should be greater than or equal to 0",
        ),
        (_with("connections", 0, colour="red"), "connections[0].colour: unknown field"),
        (
            _with("platformAccounts", 0, platform="myspace"),
            "platformAccounts[0].platform: 'myspace' is not one of: facebook, instagram, linkedin",
        ),
        (
            _with("platformAccounts", 0, platform="instagram"),
            "platformAccounts[0].connectedVia: required for instagram accounts",
        ),
        (
            _with("platformAccounts", 0, connectedVia="facebook_login"),
            "platformAccounts[0].connectedVia: only instagram accounts have one",
        ),
        (
            _with("platformAccounts", 0, token={"refreshToken": SECRET}),
            "platformAccounts[0].token.accessToken: required",
        ),
        (
            _with("platformAccounts", 0, token={"accessToken": SECRET, "expiresAt": "soon"}),
            "platformAccounts[0].token.expiresAt: the value is not an ISO 8601 timestamp",
        ),
        (
            _with("listings", 0, connectionId="c-9"),
            "listings[0].connectionId: unknown connection 'c-9'",
        ),
        (_with("listings", 0, status=None), "listings[0].status: required"),
        (
            _with("posts", 0, listingId="l-9"),
            "posts[0].listingId: unknown listing 'l-9'",
        ),
        (
            _with("posts", 0, accountId="a-9"),
            "posts[0].accountId: unknown platform account 'a-9'",
        ),
        (
            _with("posts", 0, platform="linkedin"),
            "posts[0].platform: 'linkedin' does not match account 'a-1', which is 'facebook'",
        ),
        (_with("posts", 0, status="posted"), "posts[0].status: 'posted' is not one of: draft"),
        (
            _with("posts", 0, publishedAt="2026-02-30T00:00:00Z"),
            "posts[0].publishedAt: '2026-02-30T00:00:00Z' is not a valid timestamp",
        ),
    ],
)
def test_each_kind_of_error_names_its_record_and_field(doc: dict[str, Any], expected: str) -> None:
    errors = _errors(doc)
    assert any(e.startswith(f"{F}: {expected}") for e in errors), errors


def test_loopback_http_is_allowed_for_local_simulators() -> None:
    for url in ("http://127.0.0.1:8123/v2", "http://localhost:9000", "http://[::1]:80/x"):
        assert isinstance(validate_document(_with("connections", 0, baseUrl=url), F), Portfolio)


def test_duplicates_are_reported_with_the_first_occurrence() -> None:
    doc = _good()
    doc["connections"].append(dict(doc["connections"][0]))
    doc["listings"].append({**doc["listings"][0], "listingId": "l-2"})
    errors = _errors(doc)
    assert f"{F}: connections[1].connectionId: duplicate id 'c-1' (first at connections[0])" in (
        errors
    )
    assert (
        f"{F}: listings[1].listingKey: 'K1' is already tracked on connection 'c-1' by listings[0]"
        in errors
    )


def test_a_listing_on_another_users_connection_is_rejected() -> None:
    doc = _good()
    doc["users"].append({"userId": "u-2"})
    doc["listings"][0]["userId"] = "u-2"
    assert _errors(doc) == [
        f"{F}: listings[0].connectionId: connection 'c-1' belongs to user 'u-1', not 'u-2'"
    ]


def test_every_error_is_reported_in_file_order_in_one_pass() -> None:
    doc = _good()
    doc["connections"][0]["userId"] = "u-9"
    doc["connections"][0]["vendor"] = "zillow"
    doc["listings"][0]["status"] = "sould"
    doc["posts"][0]["accountId"] = "a-9"
    doc["users"].append({"userId": "u-1"})
    errors = _errors(doc)
    sections = [e.split(": ")[1].split("[")[0] for e in errors]
    assert sections == ["users", "connections", "connections", "listings", "listings", "posts"]


def test_a_bad_record_does_not_cascade_into_unknown_reference_errors() -> None:
    # The connection is invalid (bad vendor) but its id is still known to the listing
    errors = _errors(_with("connections", 0, vendor="zillow"))
    assert not any("unknown connection" in e for e in errors)


def test_secrets_never_appear_in_messages() -> None:
    doc = _good()
    doc["connections"][0]["credentials"] = {"token": SECRET, "clientId": SECRET, "x": SECRET}
    doc["platformAccounts"][0]["token"] = {"accessToken": SECRET, "expiresAt": SECRET}
    doc["connections"][0]["baseUrl"] = f"http://user:{SECRET}@mls.example.com"
    errors = _errors(doc)  # asserts the secret is in none of them
    assert len(errors) >= 3


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("users: [\n  {userId: u-1\n", ".yaml", "portfolio.yaml: line"),
        ('{"users": [}', ".json", "portfolio.yaml: line 1 column 12: invalid JSON"),
        ("- just\n- a list\n", ".yaml", "portfolio.yaml: the file must hold one object"),
        ("users: {userId: u-1}\n", ".yaml", "portfolio.yaml: users: must be a list of records"),
        ("users: [u-1]\n", ".yaml", "portfolio.yaml: users[0]: must be an object"),
        ("agents: []\n", ".yaml", "portfolio.yaml: agents: unknown section"),
    ],
)
def test_structural_errors(text: str, suffix: str, expected: str) -> None:
    from mls_sync_local.portfolio import validate_text  # noqa: PLC0415

    result = validate_text(text, F, suffix=suffix)
    assert isinstance(result, list)
    assert result[0].startswith(expected), result


def test_a_yaml_syntax_error_does_not_quote_the_line() -> None:
    from mls_sync_local.portfolio import validate_text  # noqa: PLC0415

    result = validate_text(f"connections:\n  - credentials: {{token: {SECRET}\n", F)
    assert isinstance(result, list)
    assert all(SECRET not in e for e in result)


def test_an_empty_file_is_an_empty_portfolio(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert validate_portfolio(path) == Portfolio()


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert validate_portfolio(missing) == [f"{missing}: cannot read: No such file or directory"]
