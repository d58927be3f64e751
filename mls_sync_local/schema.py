"""JSON Schemas generated from the models: `python -m mls_sync_local.schema` writes them to
docs/schema/ (``--check`` only compares). A unit test fails when the checked-in files drift.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mls_sync.models import Connection, Listing, PlatformAccount, Post, StatusChange, SyncRun
from pydantic.json_schema import models_json_schema

from mls_sync_local.portfolio import Portfolio

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schema"

ITEM_MODELS = (Connection, Listing, Post, PlatformAccount, StatusChange, SyncRun)


def portfolio_schema() -> dict[str, Any]:
    schema = Portfolio.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mls-sync portfolio file"
    return schema


def items_schema() -> dict[str, Any]:
    """The DynamoDB item shapes (as written: camelCase, None omitted)."""
    _, schema = models_json_schema(
        [(m, "serialization") for m in ITEM_MODELS],
        by_alias=True,
        title="mls-sync DynamoDB items",
        description="One definition per table's item; bookkeeping attributes "
        "(enabledShard, leases, postsDownFor) are described in docs/data-model.md.",
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    return {
        SCHEMA_DIR / "portfolio.schema.json": render(portfolio_schema()),
        SCHEMA_DIR / "items.schema.json": render(items_schema()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "is out of date" if check else "written"
        print(f"{path.relative_to(ROOT)}: {verb}", file=sys.stderr if check else sys.stdout)
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
