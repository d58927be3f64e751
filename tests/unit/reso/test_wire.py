"""OData wire helpers: query encoding, filter literals, nextLink resolution, error bodies."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from mls_sync.reso.odata import (
    encode_query,
    enum_literal,
    error_detail,
    resolve_link,
    timestamp_literal,
    www_authenticate_error,
)
from mls_sync.reso.transport import basic_credentials
from mls_sync.timeutil import Instant


def test_query_keeps_dollar_and_encodes_space_as_percent_20_and_plus_as_2b() -> None:
    # Given a filter with spaces, a quote and a +00:00 offset
    query = encode_query(
        {"$filter": "K eq 'O''Neil' and T gt 2021-05-21T06:28:34+00:00", "$top": "5"}
    )
    # Then $ is literal (4.0 servers), no '+' is left to be read as a space, and it round-trips
    assert query.startswith("$filter=K%20eq%20%27O%27%27Neil%27%20and%20T%20gt%20")
    assert "%2B00:00" in query
    assert "+" not in query
    assert "%24" not in query
    assert query.endswith("&$top=5")
    assert unquote(query.split("&")[0].split("=", 1)[1]).endswith("+00:00")


@pytest.mark.parametrize(
    ("raw", "literal"),
    [
        ("2021-05-21T06:28:34Z", "2021-05-21T06:28:34Z"),
        ("2021-05-21T06:28:34.1234567+00:00", "2021-05-21T06:28:34.1234567+00:00"),
        ("2021-05-21T01:28:34.007-05:00", "2021-05-21T01:28:34.007-05:00"),
        ("2021-05-21T06:28:34.007z", "2021-05-21T06:28:34.007Z"),
        ("2021-05-21 06:28:34", "2021-05-21T06:28:34Z"),
        ("2021-05-21T06:28-0500", "2021-05-21T06:28:00-05:00"),
    ],
)
def test_timestamp_literal_is_abnf_valid_and_keeps_the_servers_digits(
    raw: str, literal: str
) -> None:
    assert timestamp_literal(raw) == literal
    assert Instant.parse(literal) == Instant.parse(raw)


def test_enum_literal_forms() -> None:
    assert enum_literal("Active", form="string") == "'Active'"
    assert enum_literal("Active", form="qualified") == "Odata.Models.StandardStatus'Active'"


@pytest.mark.parametrize(
    ("link", "context", "expected"),
    [
        ("https://h/odata/Property?$skip=5", None, "https://h/odata/Property?$skip=5"),
        # relative to the context URL (OData JSON 4.01 §4.6)
        (
            "Property?$skip=5",
            "https://h/odata/$metadata#Property",
            "https://h/odata/Property?$skip=5",
        ),
        # a relative context is itself relative to the request URL
        ("Property?$skip=5", "$metadata#Property", "https://h/odata/Property?$skip=5"),
        # no context: relative to the request URL
        ("Property?$skiptoken=abc", None, "https://h/odata/Property?$skiptoken=abc"),
        ("/odata/Property?$skip=5", None, "https://h/odata/Property?$skip=5"),
    ],
)
def test_next_links_resolve_against_context_then_request_url(
    link: str, context: str | None, expected: str
) -> None:
    request = "https://h/odata/Property?$filter=X%20eq%201&$top=5"
    assert resolve_link(link, request_url=request, context=context) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"error": {"code": "400", "message": "Bad field X"}}', None, "400: Bad field X"),
        (
            b'{"error": {"code": "E1", "message": {"lang": "en", "value": "old style"}}}',
            None,
            "E1: old style",
        ),
        (
            b'{"error": "invalid_client", "error_description": "bad secret"}',
            None,
            "invalid_client: bad secret",
        ),
        (
            b"<html><head><title>503 Service Unavailable</title></head><body>x</body></html>",
            "text/html",
            "HTML page: 503 Service Unavailable",
        ),
        (b"upstream connect error", "text/plain", "upstream connect error"),
        (b"", None, "empty body"),
    ],
)
def test_error_details_are_one_clear_line(
    body: bytes, content_type: str | None, expected: str
) -> None:
    assert error_detail(body, content_type) == expected


def test_www_authenticate_error_parameter() -> None:
    header = 'Bearer realm="mls", error="invalid_token", error_description="expired"'
    assert www_authenticate_error(header) == "invalid_token"
    assert www_authenticate_error('Basic realm="x"') is None
    assert www_authenticate_error(None) is None


def test_basic_credentials_are_form_urlencoded_before_base64() -> None:
    # RFC 6749 §2.3.1: a ':' in the id must not split it
    header = basic_credentials("id:1", "p w+")
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == "id%3A1:p+w%2B"
