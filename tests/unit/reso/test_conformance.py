"""The client against server behaviours the specs allow and our simulator does not show by
default, scripted with httpx.MockTransport (no sockets)."""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from mls_sync.models import Cursor
from mls_sync.reso.auth import BearerToken, ClientCredentials, Credentials, TokenCache
from mls_sync.reso.client import ReplicationClient, ReplicationTarget
from mls_sync.reso.errors import (
    MlsAuthError,
    MlsMalformedPage,
    MlsProtocolError,
    MlsQueryRefused,
    MlsUnavailable,
)
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, profile_for
from pydantic import SecretStr

BASE = "https://mls.example.com/odata"
TOKEN_URL = "https://mls.example.com/oauth/token"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = Cursor(timestamp="2026-11-28T11:00:00Z", listing_key="")

Handler = Callable[[httpx.Request], httpx.Response]


def rec(key: str, ts: str = "2026-11-28T11:30:00Z", status: str = "Active") -> dict[str, Any]:
    return {"ListingKey": key, "StandardStatus": status, "ModificationTimestamp": ts}


def page(values: list[dict[str, Any]], link: str | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"@odata.context": f"{BASE}/$metadata#Property", "value": values}
    if link is not None:
        body["@odata.nextLink"] = link
    body.update(extra)
    return httpx.Response(200, json=body)


class Server:
    """Records every request; answers from a handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def mls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != urlsplit(TOKEN_URL).path]

    def tokens(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == urlsplit(TOKEN_URL).path]


def make(
    handler: Handler,
    *,
    vendor: str = "reso",
    credentials: Credentials | None = None,
    cache: TokenCache | None = None,
    page_size: int | None = None,
) -> tuple[ReplicationClient, Server]:
    server = Server(handler)
    profile = profile_for(vendor)
    if page_size is not None:
        profile = profile.model_copy(update={"page_size": page_size})
    client = ReplicationClient(
        ReplicationTarget(vendor=vendor, base_url=BASE),
        credentials or BearerToken(token=SecretStr("static-token-123")),
        http=httpx.Client(transport=httpx.MockTransport(server)),
        clock=lambda: NOW,
        sleep=lambda _: None,
        monotonic=lambda: 0.0,
        rng=random.Random(1),
        limiter=RateLimiter(Quotas()),
        breaker=CircuitBreaker(threshold=100),
        token_cache=cache or TokenCache(),
        profile=profile,
        allow_loopback=False,
    )
    return client, server


def oauth(method: str = "auto", secret: str = "s3cr3t-value") -> ClientCredentials:
    return ClientCredentials(
        client_id="my id",
        client_secret=SecretStr(secret),
        token_url=TOKEN_URL,
        auth_method=method,
    )


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def filter_of(request: httpx.Request) -> str:
    query = request.url.raw_path.decode().split("?", 1)[1]
    parts = dict(p.split("=", 1) for p in query.split("&"))
    return unquote(parts["$filter"])


# --------------------------------------------------------------------------- OAuth2


def token_server(
    *, accept: str, token_body: dict[str, Any] | None = None, mls: Handler | None = None
) -> Handler:
    """A token endpoint accepting only ``accept`` ("basic" or "body") client authentication."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            form = form_of(request)
            basic = request.headers.get("Authorization", "")
            assert not (basic and "client_secret" in form), "two methods in one request"
            ok = (accept == "basic" and basic.startswith("Basic ")) or (
                accept == "body" and form.get("client_secret") == "s3cr3t-value"
            )
            if not ok:
                return httpx.Response(401, json={"error": "invalid_client"})
            return httpx.Response(
                200, json=token_body or {"access_token": "tok-1", "token_type": "Bearer"}
            )
        return mls(request) if mls else page([])

    return handler


def test_basic_first_then_body_once_on_invalid_client_and_remembered() -> None:
    # Given a token endpoint that only reads client_id/client_secret from the body
    cache = TokenCache()
    client, server = make(token_server(accept="body"), credentials=oauth(), cache=cache)
    # When a cycle runs
    list(client.changes(START))
    # Then Basic (RFC 6749 §2.3.1) was tried first, then the body form, once each
    first, second = server.tokens()
    assert first.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in form_of(first)
    assert "Authorization" not in second.headers
    assert form_of(second)["client_id"] == "my id"
    assert form_of(second)["grant_type"] == "client_credentials"
    # And the next token fetch for the same credential goes straight to the body form
    cache.drop(client._transport.tokens.key)
    client2, server2 = make(token_server(accept="body"), credentials=oauth(), cache=cache)
    list(client2.changes(START))
    assert len(server2.tokens()) == 1


def test_basic_credentials_accepted_first_time() -> None:
    client, server = make(token_server(accept="basic"), credentials=oauth())
    list(client.changes(START))
    (token,) = server.tokens()
    user, _, password = base64.b64decode(token.headers["Authorization"][6:]).decode().partition(":")
    assert (user, password) == ("my+id", "s3cr3t-value")  # form-urlencoded first
    assert server.mls()[0].headers["Authorization"] == "Bearer tok-1"


def test_trestle_profile_posts_the_form_first() -> None:
    client, server = make(
        token_server(accept="body"), vendor="trestle", credentials=oauth(), page_size=10
    )
    list(client.changes(START))
    assert len(server.tokens()) == 1


def test_explicit_method_is_never_switched() -> None:
    client, server = make(token_server(accept="body"), credentials=oauth("basic"))
    with pytest.raises(MlsAuthError, match="invalid_client") as info:
        list(client.changes(START))
    assert len(server.tokens()) == 1
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", None])
def test_token_type_is_case_insensitive_and_may_be_missing(token_type: str | None) -> None:
    body: dict[str, Any] = {"access_token": "tok-x", "expires_in": "7200"}
    if token_type:
        body["token_type"] = token_type
    client, server = make(token_server(accept="basic", token_body=body), credentials=oauth())
    list(client.changes(START))
    assert server.mls()[0].headers["Authorization"] == "Bearer tok-x"


def test_a_non_bearer_token_is_refused_clearly() -> None:
    body = {"access_token": "tok-x", "token_type": "mac"}
    client, _ = make(token_server(accept="basic", token_body=body), credentials=oauth())
    with pytest.raises(MlsAuthError, match="'mac' token"):
        list(client.changes(START))


@pytest.mark.parametrize(
    ("expires_in", "life"),
    [("7200", 7200.0), (7200, 7200.0), ("soon", 3600.0), (None, 3600.0), (0, 3600.0)],
)
def test_expires_in_number_string_or_missing(expires_in: object, life: float) -> None:
    body: dict[str, Any] = {"access_token": "tok-x", "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    cache = TokenCache()
    client, _ = make(
        token_server(accept="basic", token_body=body), credentials=oauth(), cache=cache
    )
    list(client.changes(START))
    key = client._transport.tokens.key
    # cached until a minute before the end of the stated (or assumed) life
    assert cache.get(key, NOW) is not None
    held = cache._tokens[key].refresh_after - NOW
    assert held.total_seconds() == pytest.approx(life - 60)


def test_token_endpoint_400_invalid_scope_is_not_retried_with_the_other_method() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_scope", "error_description": "scope api unknown"}
        )

    client, server = make(handler, credentials=oauth())
    with pytest.raises(MlsAuthError, match="invalid_scope: scope api unknown"):
        list(client.changes(START))
    assert len(server.tokens()) == 1


def test_mls_401_names_the_bearer_challenge_without_the_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            text="token static-token-123 is not valid",
        )

    client, server = make(handler)
    with pytest.raises(MlsAuthError) as info:
        list(client.changes(START))
    assert "invalid_token" in str(info.value)
    assert "static-token-123" not in str(info.value)
    assert len(server.mls()) == 1


# --------------------------------------------------------------------------- URLs


def test_request_urls_use_literal_dollar_and_percent_20() -> None:
    client, server = make(lambda r: page([]))
    list(client.changes(Cursor(timestamp="2026-11-28T11:00:00+00:00", listing_key="K 1")))
    raw = server.mls()[0].url.raw_path.decode()
    assert "?$filter=" in raw
    assert "&$top=" in raw
    assert "&$orderby=" in raw
    assert "+" not in raw.split("?", 1)[1]
    assert "%2B00:00" in raw


def test_filter_literal_gets_a_zone_when_the_server_spelled_none() -> None:
    client, server = make(lambda r: page([]))
    list(
        client.changes(Cursor(timestamp="2026-11-28 11:00:00", listing_key="K"), overlap_seconds=0)
    )
    assert "ModificationTimestamp gt 2026-11-28T11:00:00Z" in filter_of(server.mls()[0])


# --------------------------------------------------------------------------- paging


def test_relative_next_links_and_odata_401_control_names_are_followed() -> None:
    # Given a Spark-like server writing 4.01 control names and relative links
    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("$skiptoken")
        if token is None:
            body = {
                "@context": "$metadata#Property",
                "value": [rec("A")],
                "@nextLink": "Property?$skiptoken=t1",
            }
            return httpx.Response(200, json=body)
        if token == "t1":
            return page([], link="/odata/Property?$skiptoken=t2")  # empty, not the end
        return page([rec("B")])

    client, server = make(handler, vendor="spark")
    pages = list(client.changes(START))
    assert [r.listing_key for p in pages for r in p.records] == ["A", "B"]
    assert [r.url.params.get("$skiptoken") for r in server.mls()] == [None, "t1", "t2"]
    assert pages[-1].complete


def test_keyset_follows_an_empty_page_that_has_a_next_link() -> None:
    # Given a server that filters after paging: an empty first page with a nextLink
    def handler(request: httpx.Request) -> httpx.Response:
        if "$skip" in request.url.params:
            return page([rec("A"), rec("B")])
        if "ListingKey gt 'B'" in filter_of(request):
            return page([])
        return page([], link=f"{BASE}/Property?$skip=200")

    client, _ = make(handler)
    pages = list(client.changes(START, overlap_seconds=0))
    assert [r.listing_key for p in pages for r in p.records] == ["A", "B"]


def test_a_repeated_next_link_stops_the_loop() -> None:
    client, server = make(
        lambda r: page([rec("A")], link=f"{BASE}/Property?$skiptoken=same"), vendor="spark"
    )
    with pytest.raises(MlsProtocolError, match="repeated a nextLink"):
        list(client.changes(START))
    assert len(server.mls()) == 2


def test_endless_empty_pages_are_bounded() -> None:
    counter = iter(range(1000))
    client, server = make(lambda r: page([], link=f"{BASE}/Property?$skip={next(counter)}"))
    with pytest.raises(MlsProtocolError, match="empty pages"):
        list(client.changes(START))
    assert len(server.mls()) < 30


def test_http_next_link_on_the_same_host_is_upgraded_to_https() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("$skiptoken"):
            return page([rec("B")])
        return page([rec("A")], link="http://mls.example.com/odata/Property?$skiptoken=x")

    client, server = make(handler, vendor="spark")
    list(client.changes(START))
    assert [r.url.scheme for r in server.mls()] == ["https", "https"]


def test_next_link_to_another_host_is_refused() -> None:
    client, _ = make(
        lambda r: page([rec("A")], link="https://evil.example.net/Property?$skip=1"),
        vendor="spark",
    )
    with pytest.raises(MlsProtocolError, match="another origin"):
        list(client.changes(START))


def test_a_server_that_returns_more_than_top_is_read_by_keyset() -> None:
    # Given a server ignoring $top=2 and sending 3 records, then the rest
    def handler(request: httpx.Request) -> httpx.Response:
        if "ListingKey gt 'C'" in filter_of(request):
            return page([rec("D")])
        return page([rec("A"), rec("B"), rec("C")])

    client, server = make(handler, page_size=2)
    pages = list(client.changes(START, overlap_seconds=0))
    assert [r.listing_key for p in pages for r in p.records] == ["A", "B", "C", "D"]
    assert len(server.mls()) == 2


def test_keys_in_case_insensitive_collation_order_are_accepted() -> None:
    # SQL Server's default collation: 'a1' < 'B2' < 'c3'
    client, _ = make(lambda r: page([rec("a1"), rec("B2"), rec("c3")]))
    pages = list(client.changes(START, overlap_seconds=0))
    assert [r.listing_key for r in pages[0].records] == ["a1", "B2", "c3"]


def test_keys_out_of_any_order_within_a_timestamp_are_refused() -> None:
    client, _ = make(lambda r: page([rec("b"), rec("a")]))
    with pytest.raises(MlsProtocolError, match="out of"):
        list(client.changes(START, overlap_seconds=0))


# --------------------------------------------------------------------------- errors


def test_503_html_is_retried_then_reported_with_its_title() -> None:
    html = "<html><head><title>Service Unavailable</title></head><body>down</body></html>"
    client, server = make(
        lambda r: httpx.Response(503, text=html, headers={"Content-Type": "text/html"})
    )
    with pytest.raises(MlsUnavailable, match="HTTP 503 \\(HTML page: Service Unavailable\\)"):
        list(client.changes(START))
    assert len(server.mls()) == 5


def test_odata_error_json_is_reported_as_code_and_message() -> None:
    body = {"error": {"code": "InvalidFilter", "message": "Property 'Foo' does not exist"}}
    client, server = make(lambda r: httpx.Response(400, json=body))
    with pytest.raises(MlsQueryRefused, match="InvalidFilter: Property 'Foo' does not exist"):
        list(client.changes(START))
    assert len(server.mls()) == 1


def test_error_object_in_a_200_is_malformed_with_the_message() -> None:
    body = {"error": {"code": "E", "message": "quota exceeded"}}
    client, _ = make(lambda r: httpx.Response(200, json=body))
    with pytest.raises(MlsMalformedPage, match="quota exceeded"):
        list(client.changes(START))


def test_redirects_are_not_followed_and_say_where() -> None:
    client, server = make(
        lambda r: httpx.Response(301, headers={"Location": "https://new.example.com/v3/Property"})
    )
    with pytest.raises(MlsProtocolError, match=r"new\.example\.com/v3/Property"):
        list(client.changes(START))
    assert len(server.mls()) == 1


def test_in_operator_refused_falls_back_to_or_chains() -> None:
    # Given an OData 4.0 server without `in`
    def handler(request: httpx.Request) -> httpx.Response:
        text = filter_of(request)
        if " in (" in text:
            return httpx.Response(400, json={"error": {"code": "400", "message": "unknown 'in'"}})
        keys = [k for k in ("K1", "K2", "K3") if f"'{k}'" in text]
        return page([rec(k) for k in keys])

    client, server = make(handler)
    lookup = client.fetch_by_keys(["K1", "K2", "K3", "K4"])
    assert sorted(lookup.found) == ["K1", "K2", "K3"]
    assert lookup.missing == ["K4"]
    filters = [filter_of(r) for r in server.mls()]
    assert " in (" in filters[0]
    assert all(" in (" not in f for f in filters[1:])
    assert "ListingKey eq 'K1' or ListingKey eq 'K2'" in filters[1]


def test_gzip_is_asked_for_and_decoded() -> None:
    payload = gzip.compress(json.dumps({"value": [rec("A")]}).encode())

    def handler(request: httpx.Request) -> httpx.Response:
        assert "gzip" in request.headers["Accept-Encoding"]
        return httpx.Response(
            200,
            content=payload,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json;odata.metadata=minimal;charset=utf-8",
            },
        )

    client, _ = make(handler)
    pages = list(client.changes(START, overlap_seconds=0))
    assert [r.listing_key for r in pages[0].records] == ["A"]
