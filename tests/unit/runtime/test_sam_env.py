"""`mls-sync local env-json`: the --env-vars file names every function of the template and
the moto endpoint it is given, whatever its port."""

from __future__ import annotations

from mls_sync_local.runtime.sam_env import SAM_SETS, env_vars_file
from mls_sync_local.runtime.stack import template_facts

ENDPOINT = "http://127.0.0.1:45931"


def _deployed_environment(logical_id: str) -> dict[str, str]:
    """What local_environment answers for a deployed function (no moto here)."""
    return {
        "CONNECTIONS_TABLE": "mls-sync-dev-Connections",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",  # a stale value: the file's endpoint wins
        "AWS_LAMBDA_FUNCTION_NAME": f"mls-sync-dev-{logical_id}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLS_SYNC_ALLOW_LOOPBACK": "true",
    }


def test_every_function_of_the_template_names_the_endpoint_given() -> None:
    functions = template_facts().functions
    document = env_vars_file(functions, ENDPOINT, _deployed_environment)
    assert set(document) == set(functions)
    assert {"DispatcherFunction", "WorkerFunction", "PublisherFunction"} <= set(document)
    for env in document.values():
        assert env["AWS_ENDPOINT_URL"] == ENDPOINT
        assert env["CONNECTIONS_TABLE"] == "mls-sync-dev-Connections"
        assert env["MLS_SYNC_ALLOW_LOOPBACK"] == "true"
        # what sam local invoke sets itself is left to it
        assert not SAM_SETS & set(env)
        assert ":5000" not in "".join(env.values())
