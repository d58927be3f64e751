"""A run's quota use, read from the shared budget its client took permits from."""

from __future__ import annotations

from types import SimpleNamespace

from mls_sync.quota import quota_use

NOW = 1_796_100_000.0  # a time inside hour 498,916 and day 20,788 (UTC)
HOUR, DAY = int(NOW // 3600), int(NOW // 86_400)


def _client(*, hour: int = HOUR, day: int = DAY, per_hour: int | None = 7200) -> object:
    state = SimpleNamespace(hour=hour, hour_used=6480, day=day, day_used=10_000)
    policy = SimpleNamespace(per_hour=per_hour, per_day=40_000)
    budget = SimpleNamespace(key="mlsgrid#abc", policy=policy, last_seen=state)
    return SimpleNamespace(budget=budget)


def test_the_higher_of_the_hour_and_the_day_is_the_use() -> None:
    use = quota_use(_client(), NOW)
    assert use is not None
    assert (use.vendor, use.hour_used, use.day_used) == ("mlsgrid", 6480, 10_000)
    assert use.percent == 90.0  # 6,480 of 7,200 this hour; the day is at 25 %
    assert use.to_log()["budgetKey"] == "mlsgrid#abc"


def test_counts_of_an_earlier_window_are_spent_no_more() -> None:
    use = quota_use(_client(hour=HOUR - 1), NOW)
    assert use is not None
    assert use.percent == 25.0


def test_no_budget_or_no_quota_is_no_figure() -> None:
    assert quota_use(object(), NOW) is None
    assert quota_use(SimpleNamespace(budget=None), NOW) is None
    no_quota = _client()
    no_quota.budget.policy = SimpleNamespace(per_hour=None, per_day=None)  # type: ignore[attr-defined]
    assert quota_use(no_quota, NOW) is None
