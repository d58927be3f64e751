"""A run's errors read as a cause an on-call engineer can act on; a connection's recorded
outcome reads as health flags and a lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mls_sync.health import (
    CIRCUIT_NOTE,
    HealthFacts,
    describe_failure,
    format_lag,
    through_open_circuit,
)
from mls_sync.timeutil import format_utc

NOW = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
PERIOD = 900


@pytest.mark.parametrize(
    ("error", "error_class", "cause"),
    [
        (
            "MlsUnavailable: 127.0.0.1: connection failed (ConnectError: [Errno 111] "
            "Connection refused) after 5 attempts",
            "MlsUnavailable",
            "MLS unreachable: connection refused (5 attempts)",
        ),
        (
            "MlsUnavailable: mls.example.com: connection failed (ConnectError: mls-sync local "
            "runtime: refusing to connect to non-loopback host 'mls.example.com' (point it at "
            "a simulator on 127.0.0.1)) after 5 attempts",
            "MlsUnavailable",
            "blocked: not a loopback host",
        ),
        (
            "MlsUnavailable: mls.example.com: connection failed (ConnectError: [Errno -2] "
            "Name or service not known) after 5 attempts",
            "MlsUnavailable",
            "MLS unreachable: host not found (5 attempts)",
        ),
        (
            "MlsUnavailable: api.mls.com: timed out after 5 attempts",
            "MlsUnavailable",
            "MLS unreachable: timed out (5 attempts)",
        ),
        (
            "MlsUnavailable: api.mls.com: HTTP 503 (maintenance) after 5 attempts",
            "MlsUnavailable",
            "MLS failing: HTTP 503 (5 attempts)",
        ),
        (
            "MlsRateLimited: api.mls.com: HTTP 429 (slow down) after 5 attempts",
            "MlsRateLimited",
            "MLS rate limit: HTTP 429 (5 attempts)",
        ),
        (
            "MlsAuthError: MLS of 127.0.0.1 refused the credentials (401, invalid_token: "
            "invalid_token: token missing or expired)",
            "MlsAuthError",
            "MLS refused the credentials (401 invalid_token)",
        ),
        (
            "MlsAuthError: token endpoint of auth.mls.com refused the credentials (400, "
            "invalid_client: bad secret)",
            "MlsAuthError",
            "token endpoint refused the credentials (400 invalid_client)",
        ),
        (
            "CircuitOpen: circuit open for api.mls.com after repeated failures; next try in 30s",
            "CircuitOpen",
            "MLS unreachable: circuit open after repeated failures (next try in 30 s)",
        ),
        (
            "CredentialsError: MLS secret holds neither 'token' nor 'clientId'",
            "CredentialsError",
            "misconfigured connection: MLS secret holds neither 'token' nor 'clientId'",
        ),
    ],
)
def test_a_failed_runs_first_error_names_its_cause(
    error: str, error_class: str, cause: str
) -> None:
    # When the errors of a failed run are described
    failure = describe_failure([error])
    # Then the class and the one-line cause are the on-call engineer's words
    assert (failure.error_class, failure.cause) == (error_class, cause)


def test_a_partial_run_names_its_failed_listings() -> None:
    failure = describe_failure(
        ["K12: ClientError: ProvisionedThroughputExceeded", "K13: timeout"], failed_listings=2
    )
    assert failure.error_class == "ListingsFailed"
    assert failure.cause == "2 listing(s) failed: K12: ClientError: ProvisionedThroughputExceeded"


def test_a_cause_is_one_bounded_line() -> None:
    failure = describe_failure(["ValueError: " + "x\n" * 500])
    assert "\n" not in failure.cause
    assert len(failure.cause) <= 160


def test_no_error_recorded_still_says_so() -> None:
    assert describe_failure([]).cause == "failed without a recorded error"


def _health(**fields: object) -> tuple[tuple[str, ...], int | None]:
    values: dict[str, object] = {
        "enabled": True,
        "last_success_at": None,
        "failing_since": None,
        "last_attempt_at": None,
        "consecutive_failures": 0,
        "braked": False,
    }
    values.update(fields)
    health = HealthFacts(**values).health(NOW, PERIOD)  # type: ignore[arg-type]
    return health.flags, health.lag_seconds


def _ago(minutes: int) -> str:
    return format_utc(NOW - timedelta(minutes=minutes))


def test_health_flags() -> None:
    # A connection synced a period ago is well
    assert _health(last_success_at=_ago(15), last_attempt_at=_ago(15)) == ((), 900)
    # More than two periods without a success: stale
    assert _health(last_success_at=_ago(31), last_attempt_at=_ago(1)) == (("stale",), 1860)
    # Exactly two periods is not yet stale
    assert _health(last_success_at=_ago(30))[0] == ()
    # Failing since its first attempt, never succeeded: failing, then stale
    failing = {"failing_since": _ago(16), "last_attempt_at": _ago(1), "consecutive_failures": 3}
    assert _health(**failing) == (("failing",), 960)
    assert _health(**{**failing, "failing_since": _ago(45)})[0] == ("stale", "failing")
    # Braked, disabled, and never attempted
    assert _health(braked=True, last_success_at=_ago(1))[0] == ("braked",)
    assert _health(enabled=False, consecutive_failures=9) == (("disabled",), None)
    assert _health() == ((), None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (5, "5s"), (125, "2m"), (3_900, "1h05m"), (200_000, "2d07h")],
)
def test_lag_reads_short(seconds: int | None, text: str) -> None:
    assert format_lag(seconds) == text


def test_an_open_circuit_keeps_the_cause_that_opened_it() -> None:
    refused = describe_failure(
        [
            "MlsUnavailable: 127.0.0.1: connection failed (ConnectError: [Errno 111] "
            "Connection refused) after 5 attempts"
        ]
    )
    circuit = describe_failure(
        ["CircuitOpen: circuit open for 127.0.0.1 after repeated failures; next try in 120s"]
    )
    carried = through_open_circuit(circuit, refused)
    assert carried.error_class == "MlsUnavailable"
    assert carried.cause == "MLS unreachable: connection refused (5 attempts)" + CIRCUIT_NOTE
    # carried again, the note is not repeated; without a cause before it, the circuit speaks
    assert through_open_circuit(circuit, carried) == carried
    assert through_open_circuit(circuit, None) == circuit
    assert through_open_circuit(refused, carried) == refused
