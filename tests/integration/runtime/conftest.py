"""A moto server on a free loopback port with the stack deployed from template.yaml.

``deployed`` gives each test its own server (moto allows one PurgeQueue a minute, so
emptying shared queues between tests is not an option); ``module_stack`` is shared by tests
that only read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls_sync_local.runtime.deploy import DeployResult, deploy
from mls_sync_local.runtime.moto_server import moto_server
from mls_sync_local.runtime.stack import DeployedStack

STACK = "mls-sync-test"


@pytest.fixture(scope="module")
def module_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def first_deploy(module_endpoint: str) -> DeployResult:
    return deploy(module_endpoint, stack=STACK)


@pytest.fixture(scope="module")
def module_stack(module_endpoint: str, first_deploy: DeployResult) -> DeployedStack:
    return DeployedStack.describe(STACK, module_endpoint)


@pytest.fixture
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def deployed(endpoint: str) -> DeployedStack:
    deploy(endpoint, stack=STACK)
    return DeployedStack.describe(STACK, endpoint)
