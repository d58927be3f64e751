"""The layer ships the versions we test with: every pin in layers/core/requirements.txt
(what `sam build` installs) agrees with requirements-dev.lock (what the venv holds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "core" / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line.strip())
        if m:
            found[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[2]
    return found


def test_pin_parser_normalises_names() -> None:
    assert _PIN.match("aws-lambda-powertools[tracer]==3.37.0 ; python_version >= '3.11'")
    assert pins(DEV_LOCK).get("aws-lambda-powertools")


def test_layer_requirements_exist() -> None:
    assert LAYER.is_file(), "run `make lock` to generate layers/core/requirements.txt"


def test_every_layer_pin_matches_the_dev_lock() -> None:
    if not LAYER.is_file():
        pytest.fail("layers/core/requirements.txt is missing: run `make lock`")
    layer, dev = pins(LAYER), pins(DEV_LOCK)
    assert layer, "layers/core/requirements.txt pins nothing"
    mismatched = {
        name: (version, dev.get(name))
        for name, version in layer.items()
        if dev.get(name) != version
    }
    assert mismatched == {}, f"layer pin != dev lock (layer, dev): {mismatched}"


def test_the_layer_pins_its_runtime_dependencies() -> None:
    # boto3 comes with the Lambda runtime; the rest must be in the layer
    layer = pins(LAYER)
    for name in (
        "pydantic",
        "pydantic-core",
        "httpx",
        "aws-lambda-powertools",
    ):
        assert name in layer, name
    assert "boto3" not in layer
    assert "botocore" not in layer
