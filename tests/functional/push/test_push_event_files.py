"""The events/push.*.json samples are function URL events as Lambda delivers them (Powertools'
own model), addressed to the route, and events/env.json configures PushFunction."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.parser.models import LambdaFunctionUrlModel
from mls_sync.config import settings_from
from mls_sync.push.http import PushRequest

from tests.support.pipeline import EVENTS, load_event


@pytest.mark.parametrize(
    "name", ["push.reso-batch.json", "push.keys.json", "push.wrong-token.json"]
)
def test_push_samples_are_function_url_events_for_the_route(name: str) -> None:
    raw = load_event(name)
    event = LambdaFunctionUrlModel.model_validate(raw)
    assert event.requestContext.http.method == "POST"
    request = PushRequest.from_event(raw)
    assert request.connection_id() == "c-ada-actris"
    assert request.json_content_type()
    assert request.bearer_token() is not None
    json.loads(raw["body"])


def test_env_file_names_the_inbox_for_the_push_function() -> None:
    env = json.loads((EVENTS / "env.json").read_text())
    settings = settings_from(env["PushFunction"])
    assert settings.push_inbox_table == "mls-sync-dev-PushInbox"
