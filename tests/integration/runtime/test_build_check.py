"""build_check imports handlers from a build folder alone, and fails when one cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from mls_sync_local.build_check import main

TEMPLATE = """
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: CoreLayer}
  GoodFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: GoodFunction, Handler: app.lambda_handler}
  BadFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: BadFunction, Handler: app.lambda_handler}
"""


def test_handlers_import_from_the_build_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a build whose good handler uses its layer and boto3, and whose bad handler
    # imports a package that is installed here (pytest) but not in the build
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "CoreLayer" / "python" / "corelib").mkdir(parents=True)
    (tmp_path / "CoreLayer" / "python" / "corelib" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "GoodFunction").mkdir()
    (tmp_path / "GoodFunction" / "app.py").write_text(
        "import boto3\nimport corelib\n\n"
        "def lambda_handler(event, context):\n    return corelib.X\n"
    )
    (tmp_path / "BadFunction").mkdir()
    (tmp_path / "BadFunction" / "app.py").write_text(
        "import pytest\n\ndef lambda_handler(event, context):\n    return 1\n"
    )
    # When checked
    code = main([str(tmp_path)])
    # Then the good one imports, the bad one is named with its error, and the check fails
    out, err = capsys.readouterr()
    assert "ok   GoodFunction" in out
    assert "BadFunction: app.lambda_handler: ModuleNotFoundError: No module named 'pytest'" in err
    assert code == 1


def test_missing_build_is_a_usage_error(tmp_path: Path) -> None:
    assert main([str(tmp_path / "nothing")]) == 2
