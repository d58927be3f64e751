"""samconfig.toml: every `--config-env` the README and docs name exists, and every section
deploys as it stands (a stack name, capabilities, a region, parameters the template allows)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mls_sync_local.parameters import check_parameters, parse_overrides
from mls_sync_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
SECTIONS = sorted(k for k in CONFIG if k != "version")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _named_config_envs() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        for line in doc.read_text(encoding="utf-8").splitlines():
            if "sam " in line or "sam deploy" in line:
                found.extend((doc.name, m) for m in re.findall(r"--config-env[ =](\w+)", line))
    return found


def test_the_docs_name_config_envs() -> None:
    assert {env for _, env in _named_config_envs()} >= {"dev", "prod"}


@pytest.mark.parametrize(("doc", "env"), _named_config_envs())
def test_every_config_env_the_docs_name_exists(doc: str, env: str) -> None:
    assert env in CONFIG, f"{doc} names --config-env {env}; samconfig.toml has {SECTIONS}"
    assert "deploy" in CONFIG[env], f"[{env}] has no deploy parameters"


def test_default_dev_and_prod_exist() -> None:
    assert {"default", "dev", "prod"} <= set(SECTIONS)


@pytest.mark.parametrize("env", SECTIONS)
def test_every_section_deploys_as_it_stands(env: str) -> None:
    section = CONFIG[env]
    deploy = section["deploy"]["parameters"]
    stack = deploy.get("stack_name") or section.get("global", {}).get("parameters", {}).get(
        "stack_name"
    )
    # sam deploy --config-env X without --stack-name needs one here
    assert stack, f"[{env}] has no stack_name"
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["region"]
    assert deploy.get("resolve_s3") or deploy.get("s3_bucket")
    overrides = parse_overrides(deploy["parameter_overrides"])
    assert check_parameters(load_template(), overrides) == []
    assert overrides["Environment"] == ("prod" if env == "prod" else "dev")


def test_parameter_overrides_are_read_as_sam_reads_them() -> None:
    text = 'Environment=dev ScheduleExpression="rate(15 minutes)" LogLevel=INFO'
    assert parse_overrides(text) == {
        "Environment": "dev",
        "ScheduleExpression": "rate(15 minutes)",
        "LogLevel": "INFO",
    }
