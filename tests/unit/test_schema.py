"""The checked-in JSON Schemas are the models' own: regenerate with
`python -m mls_sync_local.schema` when a model changes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from mls_sync_local.schema import ROOT, expected_files, portfolio_schema


@pytest.mark.parametrize("path", sorted(expected_files()), ids=lambda p: p.name)
def test_checked_in_schema_matches_the_models(path: Path) -> None:
    files = expected_files()
    assert path in files
    assert path.read_text(encoding="utf-8") == files[path], (
        f"{path} drifted from the models: run `python -m mls_sync_local.schema`"
    )


def test_the_sample_portfolio_satisfies_the_schema() -> None:
    sample = yaml.safe_load((ROOT / "events" / "portfolio.sample.yaml").read_text("utf-8"))
    jsonschema.Draft202012Validator(portfolio_schema()).validate(sample)


def test_the_schema_rejects_what_the_models_reject() -> None:
    validator = jsonschema.Draft202012Validator(portfolio_schema())
    bad = {
        "listings": [
            {
                "listingId": "l",
                "userId": "u",
                "connectionId": "c",
                "listingKey": "k",
                "status": "sould",
            }
        ]
    }
    assert list(validator.iter_errors(bad))
    assert json.dumps(portfolio_schema())  # serialisable
