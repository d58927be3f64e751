"""Stack parameters checked against template.yaml before anything is deployed.

CloudFormation checks ``AllowedValues``, ``AllowedPattern``, ``MinValue``/``MaxValue``,
``MinLength``/``MaxLength`` and ``Type: Number``; moto does not, so `mls-sync local deploy`
checks them here, plus what the functions themselves would refuse at start-up
(``ScheduleExpression``: ``rate(...)``/``cron(...)``; ``UnpublishOnStatuses``: known statuses).
The same check reads samconfig.toml's ``parameter_overrides`` in the tests.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any


def parse_overrides(text: str) -> dict[str, str]:
    """samconfig's ``parameter_overrides`` (``A=1 B="rate(5 minutes)"``) as a dict."""
    pairs: dict[str, str] = {}
    for word in shlex.split(text):
        name, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"parameter override {word!r} is not NAME=VALUE")
        pairs[name] = value
    return pairs


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _semantic(name: str, value: str) -> str | None:
    """What the functions would refuse when they read their configuration."""
    if name == "ScheduleExpression":
        from mls_sync.config import schedule_period_seconds  # noqa: PLC0415

        try:
            schedule_period_seconds(value)
        except ValueError as exc:
            return str(exc)
    if name == "UnpublishOnStatuses":
        from mls_sync.policy import parse_unpublish_on  # noqa: PLC0415

        try:
            parse_unpublish_on(value)
        except ValueError as exc:
            return str(exc)
    return None


def check_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """One readable problem per bad parameter (empty: all good)."""
    declared: Mapping[str, Any] = template.get("Parameters", {})
    problems: list[str] = []
    for name, raw in values.items():
        spec = declared.get(name)
        if spec is None:
            problems.append(
                f"{name}: not a parameter of template.yaml (known: {', '.join(sorted(declared))})"
            )
            continue
        value = str(raw)
        problem = _check_one(spec, value) or _semantic(name, value)
        if problem:
            problems.append(f"{name}={value}: {problem}")
    return problems


def _check_one(spec: Mapping[str, Any], value: str) -> str | None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"must be one of {', '.join(str(v) for v in allowed)}"
    if spec.get("Type") == "Number":
        number = _number(value)
        if number is None:
            return "must be a number"
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if low is not None and number < float(low):
            return f"must be at least {low}"
        if high is not None and number > float(high):
            return f"must be at most {high}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        return spec.get("ConstraintDescription") or f"must match {pattern}"
    low_len, high_len = spec.get("MinLength"), spec.get("MaxLength")
    if low_len is not None and len(value) < int(low_len):
        return f"must be at least {low_len} characters"
    if high_len is not None and len(value) > int(high_len):
        return f"must be at most {high_len} characters"
    return None


__all__ = ["check_parameters", "parse_overrides"]
