"""A run's failure is typed where it is raised and health names the cause from the type:
the transport's errors carry the last attempt's kind and the attempt count, and the words
of a message never decide the cause."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from mls_sync.health import describe_failure
from mls_sync.http.failures import FailureKind, Problem
from mls_sync.pipeline.decisions import describe_error
from mls_sync.reso.auth import BearerToken, TokenCache, TokenState
from mls_sync.reso.errors import (
    CircuitOpen,
    MlsAuthError,
    MlsError,
    MlsMalformedPage,
    MlsUnavailable,
)
from mls_sync.reso.limits import CircuitBreaker, RateLimiter
from mls_sync.reso.profiles import Quotas, profile_for
from mls_sync.reso.transport import Transport
from mls_sync.run_failure import (
    Category,
    CircuitWait,
    Exhausted,
    FailureText,
    Refusal,
    failure_of,
    read_failure,
)
from pydantic import SecretStr

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BASE = "https://mls.example.com/odata"


def _failing(handler: httpx.MockTransport, attempts: int = 3) -> MlsError:
    transport = Transport(
        http=httpx.Client(transport=handler),
        base_url=BASE,
        profile=profile_for("reso"),
        tokens=TokenState(
            BearerToken(token=SecretStr("static-token-123")), lambda: NOW, TokenCache()
        ),
        limiter=RateLimiter(Quotas()),
        breaker=CircuitBreaker(threshold=100),
        clock=lambda: NOW,
        sleep=lambda _s: None,
        monotonic=lambda: 0.0,
        rng=random.Random(1),
        timeout=10.0,
        max_attempts=attempts,
        allow_loopback=False,
    )
    with pytest.raises(MlsError) as caught:
        transport.get_json(f"{BASE}/Property", None, deadline=None)
    return caught.value


def _refused(request: httpx.Request) -> httpx.Response:
    # Words that would read as "host not found"; the chained OS error says refused
    os_error = ConnectionRefusedError(111, "Connection refused")
    raise httpx.ConnectError("name or service not known", request=request) from os_error


def test_a_refused_connection_is_named_from_its_type_not_its_words() -> None:
    # Given an MLS whose connections are refused (with misleading words)
    error = _failing(httpx.MockTransport(_refused))
    # Then the error carries the kind and the attempts
    assert isinstance(error, MlsUnavailable)
    assert error.problem is not None
    assert error.problem.kind is FailureKind.REFUSED
    assert error.attempts == 3
    # And health, reading the run's recorded error, names the refusal
    failure = describe_failure([describe_error(error)])
    assert (failure.error_class, failure.cause) == (
        "MlsUnavailable",
        "MLS unreachable: connection refused (3 attempts)",
    )


def test_a_server_error_whose_body_mentions_json_is_a_server_error() -> None:
    # Given an MLS that answers 503 with a body about JSON
    error = _failing(
        httpx.MockTransport(lambda _r: httpx.Response(503, text="JSON backend down")), 2
    )
    # Then it is unavailable (a typed 5xx), not a malformed page
    assert type(error) is MlsUnavailable
    failure = describe_failure([describe_error(error)])
    assert failure.cause == "MLS failing: HTTP 503 (2 attempts)"


def test_an_unreadable_page_is_typed_as_such() -> None:
    error = _failing(httpx.MockTransport(lambda _r: httpx.Response(200, text="<html>")), 2)
    assert isinstance(error, MlsMalformedPage)
    assert (
        describe_failure([describe_error(error)]).cause
        == "MLS sent an unreadable page (2 attempts)"
    )


def test_the_recorded_error_is_text_carrying_its_type() -> None:
    error = CircuitOpen("circuit open for mls.example.com after repeated failures", 42.4)
    text = describe_error(error)
    assert isinstance(text, FailureText)
    assert text == "CircuitOpen: circuit open for mls.example.com after repeated failures"
    assert text.failure.category is Category.CIRCUIT
    assert text.failure.cause == CircuitWait(42.4)
    assert describe_failure([text]).cause == (
        "MLS unreachable: circuit open after repeated failures (next try in 42 s)"
    )


def test_any_other_exception_keeps_its_class_and_message() -> None:
    failure = failure_of(KeyError("ListingKey"))
    assert (failure.error_class, failure.category, failure.kind) == (
        "KeyError",
        Category.OTHER,
        None,
    )


def test_text_recorded_before_types_reads_back_into_the_same_type() -> None:
    # A SyncRun item written as text only reads back to the fields the error carried
    read = read_failure(
        "MlsUnavailable: 127.0.0.1: connection failed (ConnectError: [Errno 111] "
        "Connection refused) after 5 attempts"
    )
    assert read is not None
    # the problem the transport wrote the text from (its own words, kind and class) and the
    # attempts
    assert read.category is Category.UNAVAILABLE
    assert read.cause == Exhausted(
        Problem(
            FailureKind.REFUSED,
            "connection failed (ConnectError: [Errno 111] Connection refused)",
            error="ConnectError",
            detail="[Errno 111] Connection refused",
        ),
        5,
    )
    assert read_failure("no type here") is None


def test_a_live_error_and_its_recorded_text_carry_the_same_types() -> None:
    # A transport error's failure holds the very problem the error carried
    error = _failing(httpx.MockTransport(lambda _r: httpx.Response(503, text="down")), 2)
    assert failure_of(error).cause == Exhausted(error.problem, 2)
    # and a refused credential reads back from its text to the refusal it was raised with
    refused = MlsAuthError(
        "token endpoint of auth.mls.com refused the credentials (400, invalid_client: no)",
        endpoint="token endpoint",
        status=400,
        error_code="invalid_client",
    )
    read = read_failure(describe_error(refused))
    assert read is not None
    assert (
        read.cause == failure_of(refused).cause == Refusal("token endpoint", 400, "invalid_client")
    )
