"""boto3 clients for the runtime itself (not the handlers'): pointed explicitly at the local
endpoint, with timeouts and bounded retries, cached per (service, endpoint, region)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=3,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 5},
)


@cache
def client(service: str, endpoint_url: str, region: str) -> Any:
    # Fake credentials when none are set: the endpoint is always a loopback moto server,
    # and this keeps a missing ~/.aws from failing requests before they are sent.
    session = boto3.session.Session(
        aws_access_key_id=_env("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=_env("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=_env("AWS_SESSION_TOKEN", None),
        region_name=region,
    )
    return session.client(service, endpoint_url=endpoint_url, config=_CONFIG)  # type: ignore[call-overload]


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(name, default)
