"""dynalite: a second DynamoDB, written by others from the public API reference, on loopback.

moto answers a DynamoDB request in 5-7 ms of its own CPU (its HTTP server closes every
connection, and each UpdateItem goes through Flask and a generic serializer); dynalite
answers in about 1 ms. Tests that measure our throughput (the push flood) use it so that
the figure is ours, not the emulator's, and tests that run on both hold our DynamoDB use to
two independent implementations.

``tests/support/dynalite/`` pins it (``package-lock.json``); the first use installs it into
``.tools/dynalite`` with ``npm ci`` (from the npm registry; in memory, no native build).
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "dynalite"
INSTALL = ROOT / ".tools" / "dynalite"
_FILES = ("package.json", "package-lock.json", "serve.js")


class DynaliteError(RuntimeError):
    pass


def install() -> Path:
    """The installed copy, made or refreshed when the pinned files changed."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise DynaliteError("dynalite needs Node.js and npm on PATH (apt install nodejs npm)")
    fresh = (INSTALL / "node_modules" / "dynalite").is_dir() and all(
        (INSTALL / name).is_file() and filecmp.cmp(SOURCE / name, INSTALL / name, shallow=False)
        for name in _FILES
    )
    if not fresh:
        INSTALL.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            shutil.copyfile(SOURCE / name, INSTALL / name)
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=INSTALL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise DynaliteError(f"npm ci for dynalite failed: {done.stderr.strip()[-500:]}")
    return INSTALL


@contextmanager
def dynalite_server() -> Iterator[str]:
    """A dynalite on 127.0.0.1 (port chosen by the OS) for the block; its URL."""
    node = shutil.which("node")
    home = install()
    assert node is not None  # install() checked
    process = subprocess.Popen(
        [node, "serve.js"], cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            error = process.stderr.read() if process.stderr else ""
            raise DynaliteError(f"dynalite did not start: {line} {error}"[:500])
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        process.kill()
        process.wait(timeout=10)


def mirror_tables(source: Any, target: Any, names: Collection[str]) -> None:
    """Creates in ``target`` each table of ``source`` named, with the same keys and indexes
    (boto3 DynamoDB clients; the tables are empty)."""
    for name in names:
        table = source.describe_table(TableName=name)["Table"]
        spec: dict[str, Any] = {
            "TableName": name,
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": table["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        indexes = [
            {
                "IndexName": i["IndexName"],
                "KeySchema": i["KeySchema"],
                "Projection": i["Projection"],
            }
            for i in table.get("GlobalSecondaryIndexes", [])
        ]
        if indexes:
            spec["GlobalSecondaryIndexes"] = indexes
        target.create_table(**spec)
        target.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
