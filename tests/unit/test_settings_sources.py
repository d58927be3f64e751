"""The environment has one reader (``mls_sync.config``), and the names it reads are the ones
template.yaml writes: every variable a function is given is read, and every variable its
settings require is given."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from mls_sync.config import (
    EnvSettings,
    Settings,
    env_names,
    required_env_names,
    stack_environment,
)
from mls_sync.unpublish.settings import PublisherSettings

from mls_sync_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "mls_sync"
SETTINGS_MODULE = PACKAGE / "config.py"
TEMPLATE = load_template()

# Read by Powertools itself (Logger, Metrics), not by our code.
POWERTOOLS_OWN = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
# Given to every function by the template and read by no code today.
UNREAD = {"SECRETS_PREFIX"}

MODELS: dict[str, type[EnvSettings]] = {"PublisherFunction": PublisherSettings}
_ENV_NAMES = {"environ", "environb", "getenv", "putenv", "unsetenv"}


def _environment_reads(source: str, name: str) -> list[str]:
    """Where ``source`` touches the process environment: ``os.environ``, ``os.getenv``,
    ``os.putenv`` or one of them imported from ``os``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in _ENV_NAMES
        ):
            found.append(f"{name}:{node.lineno} os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found.extend(
                f"{name}:{node.lineno} from os import {alias.name}"
                for alias in node.names
                if alias.name in _ENV_NAMES
            )
    return found


def test_the_finder_sees_each_way_of_reading_the_environment() -> None:
    source = "import os\nfrom os import getenv\na = os.environ['A']\nb = os.getenv('B')\n"
    assert len(_environment_reads(source, "probe")) == 3
    assert _environment_reads("import os\nos.path.join('a')\n", "probe") == []


def test_only_the_settings_module_reads_the_environment() -> None:
    shipped = [*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    reads = [
        hit
        for path in shipped
        if path != SETTINGS_MODULE
        for hit in _environment_reads(path.read_text(encoding="utf-8"), str(path))
    ]
    assert reads == []
    own = _environment_reads(SETTINGS_MODULE.read_text(encoding="utf-8"), "config.py")
    assert own, "the settings module is the one reader"


def _functions() -> dict[str, set[str]]:
    shared = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    return {
        name: shared | set((res["Properties"].get("Environment") or {}).get("Variables", {}))
        for name, res in TEMPLATE["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


@pytest.mark.parametrize("function", sorted(_functions()))
def test_every_variable_a_function_is_given_is_read(function: str) -> None:
    given = _functions()[function]
    read = set(env_names(MODELS.get(function, Settings)).values())
    assert given - read - POWERTOOLS_OWN - UNREAD == set()


@pytest.mark.parametrize("function", sorted(_functions()))
def test_every_variable_a_function_requires_is_given(function: str) -> None:
    given = _functions()[function]
    assert required_env_names(MODELS.get(function, Settings)) - given == set()


def test_stack_environment_uses_the_template_parameter_defaults() -> None:
    parameters = TEMPLATE["Parameters"]
    env = stack_environment("s")
    assert env["UNPUBLISH_ON_STATUSES"] == parameters["UnpublishOnStatuses"]["Default"]
    assert env["SCHEDULE_EXPRESSION"] == parameters["ScheduleExpression"]["Default"]
