"""Runs every benchmark module in bench/ that defines ``run(out: Path) -> dict``.

`python -m bench` runs them all; `python -m bench NAME ...` runs the named ones. Each writes
its figures as JSON under bench/results/ (ignored by git) and prints a summary.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def available() -> list[str]:
    names = []
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            names.append(info.name)
    return sorted(names)


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"bench: unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        print(f"bench: available: {', '.join(available())}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"== bench {name}", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        figures = module.run(RESULTS)
        out = RESULTS / f"{name}.json"
        out.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"== {name}: {time.perf_counter() - started:.1f} s, figures in {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
