"""Shared test wiring: clients over httpx.MockTransport with a fixed clock and no sleeping."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from mls_sync.http.retry import Backoff
from mls_sync.platforms.base import AccountRef, PostRef
from mls_sync.platforms.http import PlatformHttp, RetryPolicy
from mls_sync.platforms.settings import PlatformSettings
from pydantic import SecretStr

NOW = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)
TOKEN = "EAAB-live-page-token-0123456789"
SETTINGS = PlatformSettings()

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Collects requests and sleeps, answers with a scripted list of responses."""

    responses: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.responses:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def http(self, *, attempts: int = 3, rng: float = 1.0) -> PlatformHttp:
        return PlatformHttp(
            transport=httpx.MockTransport(self.handler),
            retry=RetryPolicy(attempts=attempts, backoff=Backoff(base=0.2, cap=2.0)),
            sleep=self.sleeps.append,
            clock=lambda: NOW,
            rng=lambda: rng,
        )


def graph_error(
    code: int,
    subcode: int | None = None,
    *,
    status: int = 400,
    is_transient: bool | None = None,
    message: str = "An error",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    return httpx.Response(status, json={"error": error}, headers=headers)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def account(
    platform: str = "facebook", *, connected_via: str | None = None, token: str = TOKEN
) -> AccountRef:
    return AccountRef.model_validate(
        {
            "platform": platform,
            "external_id": "1234567890",
            "connected_via": connected_via,
            "access_token": SecretStr(token),
        }
    )


def post(post_id: str = "1234567890_987", permalink: str | None = None) -> PostRef:
    return PostRef(platform_post_id=post_id, permalink=permalink)
