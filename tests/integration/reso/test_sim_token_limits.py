"""The MLS simulator's per-token quotas (MLS Grid style) and its following another clock
(issue 21)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from mls_sync_local.sim.mls import MlsSimulator

START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _get(sim: MlsSimulator, token: str = "sim-static-token") -> httpx.Response:
    return httpx.get(
        f"{sim.url}/Property",
        params={"$filter": "OriginatingSystemName eq 'actris'", "$top": "1"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_over_two_a_second_is_a_violation_and_suspends_the_token_until_the_window_ends() -> None:
    clock = Clock()
    with MlsSimulator(vendor="mlsgrid", static_tokens=("sim-static-token", "other")) as sim:
        # Given MLS Grid's quotas on a simulator reading our clock
        sim.follow(clock)
        sim.set_token_limits(per_second=2, per_hour=7200, per_day=40_000)
        assert sim.now.timestamp() == START
        # When a token sends two requests in a second, then a third
        assert _get(sim).status_code == 200
        clock.now += 0.6
        assert _get(sim).status_code == 200
        clock.now += 0.3
        third = _get(sim)
        # Then the third is a violation and the token is suspended for the rest of the second
        assert third.status_code == 429
        assert third.headers["Retry-After"] == "1"
        assert [(v.period, v.count) for v in sim.limit_violations] == [("second", 3)]
        clock.now += 0.05
        assert _get(sim).status_code == 429
        assert sim.suspended_refusals == 1
        # And another token is not affected
        assert _get(sim, "other").status_code == 200
        # And the next second the token works again
        clock.now = START + 1.0
        assert _get(sim).status_code == 200
        assert len(sim.limit_violations) == 1


def test_a_fixed_suspension_and_the_hourly_quota() -> None:
    clock = Clock()
    with MlsSimulator(vendor="mlsgrid") as sim:
        sim.follow(clock)
        sim.set_token_limits(per_hour=3, suspend_seconds=600)
        for _ in range(3):
            assert _get(sim).status_code == 200
            clock.now += 10
        over = _get(sim)
        assert over.status_code == 429
        assert over.headers["Retry-After"] == "600"
        assert sim.limit_violations[0].period == "hour"
        clock.now += 601
        # The suspension is over, but the hour's quota is still spent
        assert _get(sim).status_code == 429
        assert len(sim.limit_violations) == 2
        # A new hour (and the suspension it caused over): counting starts again
        clock.now = START + 3600 + 601
        assert _get(sim).status_code == 200
        sim.set_token_limits()
        assert sim.token_limits is None


def test_following_a_clock_refuses_moving_the_simulators_own() -> None:
    clock = Clock()
    with MlsSimulator() as sim:
        sim.follow(clock)
        clock.now += 5
        assert sim.now.timestamp() == START + 5
        try:
            sim.advance(1)
        except RuntimeError:
            pass
        else:
            raise AssertionError("advance while following must be refused")
        sim.follow(None)
        sim.advance(1)
