"""Tokens never show in reprs, exception text or outcome reasons."""

from __future__ import annotations

import logging

import httpx
import pytest
from mls_sync.platforms.base import OUTCOME_ADAPTER, RefreshError, Token, TokenCheckError
from mls_sync.platforms.facebook import FacebookClient
from mls_sync.platforms.linkedin import LinkedInClient, OAuthApp
from pydantic import SecretStr

from tests.unit.platforms.helpers import (
    SETTINGS,
    TOKEN,
    Recorder,
    account,
    graph_error,
    json_response,
    post,
)


def test_reprs_hide_tokens() -> None:
    acc = account("facebook")
    token = Token(access_token=SecretStr(TOKEN), refresh_token=SecretStr("refresh-xyz-123"))
    app = OAuthApp(client_id="id", client_secret=SecretStr("client-secret-xyz"))
    client = LinkedInClient(settings=SETTINGS, http=Recorder().http(), app=app)
    text = " ".join(
        [
            repr(acc),
            str(acc),
            repr(token),
            str(token),
            repr(app),
            repr(client),
            acc.model_dump_json(),
            token.model_dump_json(),
        ]
    )
    for secret in (TOKEN, "refresh-xyz-123", "client-secret-xyz"):
        assert secret not in text


def test_graph_error_text_echoing_the_token_is_scrubbed() -> None:
    # Given a platform error message that echoes the token (and a bearer header)
    rec = Recorder(
        [
            graph_error(
                368,
                message=f"Blocked token {TOKEN} (Authorization: Bearer "
                f"{TOKEN}) access_token={TOKEN}",
            )
        ]
    )
    client = FacebookClient(settings=SETTINGS, http=rec.http(attempts=1))
    # When
    outcome = client.delete_post(account("facebook"), post())
    # Then the stored reason and its JSON form carry no token
    assert outcome.kind == "permanent_error"
    assert TOKEN not in outcome.reason
    assert TOKEN not in OUTCOME_ADAPTER.dump_json(outcome).decode()
    assert "Blocked token" in outcome.reason


def test_network_error_text_is_scrubbed() -> None:
    rec = Recorder([httpx.ConnectError(f"failed sending Bearer {TOKEN}")])
    outcome = FacebookClient(settings=SETTINGS, http=rec.http(attempts=1)).delete_post(
        account("facebook"), post()
    )
    assert outcome.kind == "transient"
    assert TOKEN not in outcome.reason


def test_token_check_error_has_no_token() -> None:
    rec = Recorder([httpx.Response(500, text=f"oops {TOKEN}")])
    client = FacebookClient(settings=SETTINGS, http=rec.http(attempts=1))
    with pytest.raises(TokenCheckError) as excinfo:
        client.verify_token(account("facebook"))
    assert TOKEN not in str(excinfo.value)


def test_refresh_error_echoing_secrets_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder(
        [
            json_response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "bad token refresh-xyz-123 for "
                    "client_secret=client-secret-xyz",
                },
            )
        ]
    )
    app = OAuthApp(client_id="id", client_secret=SecretStr("client-secret-xyz"))
    client = LinkedInClient(settings=SETTINGS, http=rec.http(attempts=1), app=app)
    with pytest.raises(RefreshError) as excinfo:
        client.refresh(account("linkedin"), SecretStr("refresh-xyz-123"))
    text = str(excinfo.value) + repr(excinfo.value.outcome) + caplog.text
    assert "refresh-xyz-123" not in text
    assert "client-secret-xyz" not in text
    assert "invalid_grant" in str(excinfo.value)


def test_logs_of_retries_hold_no_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder([httpx.Response(503, text=f"x {TOKEN}"), json_response(200, {"success": True})])
    FacebookClient(settings=SETTINGS, http=rec.http(attempts=2)).delete_post(
        account("facebook"), post()
    )
    records = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "retrying" in records
    assert TOKEN not in records
