"""`python -m mls_sync_local.build_check .aws-sam/build` (`make build-check`).

Proves what `sam build` produced can run in Lambda:
- every function's handler imports in a clean interpreter whose path holds only the
  function's build output, the layers' ``python/`` folders and boto3 (which the Lambda
  runtime provides) - no site-packages, no PYTHONPATH, no working tree;
- every native extension (``.so``) in the output is built for aarch64 (ELF e_machine 183),
  since the functions run on arm64.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

EM_AARCH64 = 183
ELF_MAGIC = b"\x7fELF"
# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")

# Run with -S -E: no site-packages, no PYTHONPATH; sys.path gets the build output only.
# On a host that is not aarch64, an aarch64 extension in the build cannot be loaded; then
# (and only then) the host's build of the same module stands in, and is reported, so the
# rest of the import is still checked from the build output.
_IMPORT = """
import importlib, importlib.machinery as m, json, os, platform, sys, time
sys.path[:0] = json.loads(sys.argv[1])
module_name, attr, host_sites = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
substituted = []

class HostNative:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        leaf = fullname.rpartition(".")[2]
        for folder in path or ():
            names = os.listdir(folder) if os.path.isdir(folder) else ()
            if any(n.startswith(leaf + ".") and "aarch64" in n and ".so" in n for n in names):
                rel = fullname.split(".")[:-1]
                for site in host_sites:
                    spec = m.PathFinder.find_spec(fullname, [os.path.join(site, *rel)])
                    if spec is not None:
                        substituted.append(fullname)
                        return spec
        return None

if platform.machine() not in ("aarch64", "arm64"):
    sys.meta_path.append(HostNative)
started = time.perf_counter()
module = importlib.import_module(module_name)
handler = getattr(module, attr)
assert callable(handler), f"{module_name}.{attr} is not callable"
print(json.dumps({"ms": int((time.perf_counter() - started) * 1000), "host": substituted}))
"""


@dataclass(frozen=True)
class Built:
    logical_id: str
    code_dir: Path
    module: str
    handler: str


def _built_template(build_dir: Path) -> dict[str, Any]:
    path = build_dir / "template.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no built template (run `make build` first)")
    parsed: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return parsed


def built_functions(build_dir: Path, template: dict[str, Any]) -> list[Built]:
    functions = []
    for name, res in template.get("Resources", {}).items():
        if res.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        props = res.get("Properties", {})
        module, _, attr = str(props.get("Handler", "")).rpartition(".")
        code = props.get("CodeUri") or props.get("Code")
        if not isinstance(code, str) or not module:
            continue
        functions.append(Built(name, build_dir / code, module, attr))
    return functions


def layer_paths(build_dir: Path, template: dict[str, Any]) -> list[Path]:
    paths = []
    for res in template.get("Resources", {}).values():
        if res.get("Type") in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            content = res.get("Properties", {}).get("ContentUri")
            if isinstance(content, str):
                paths.append(build_dir / content / "python")
    return paths


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of ``path``, or None when it is not an ELF file."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def native_problems(build_dir: Path) -> tuple[int, list[str]]:
    """How many native extensions there are, and which are not aarch64."""
    count = 0
    problems = []
    for path in sorted(build_dir.rglob("*.so*")):
        if not path.is_file():
            continue
        machine = elf_machine(path)
        if machine is None:
            continue
        count += 1
        if machine != EM_AARCH64:
            rel = path.relative_to(build_dir)
            problems.append(f"{rel}: ELF machine {machine}, expected {EM_AARCH64} (aarch64)")
    return count, problems


def runtime_dir(target: Path) -> Path:
    """A folder holding only what the Lambda runtime adds to Python (boto3 and its
    dependencies), linked from this environment."""
    target.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            source = Path(next(iter(spec.submodule_search_locations)))
        elif spec.origin:
            source = Path(spec.origin)
        else:
            continue
        link = target / source.name
        if not link.exists():
            link.symlink_to(source)
    return target


def check_imports(build_dir: Path, template: dict[str, Any], runtime: Path) -> list[str]:
    problems = []
    layers = [str(p) for p in layer_paths(build_dir, template)]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LANG": "C.UTF-8",
    }
    for built in built_functions(build_dir, template):
        # As Lambda orders it: the function's code, then /opt/python (layers), then runtime.
        path = [str(built.code_dir), *layers, str(runtime)]
        started = time.perf_counter()
        argv = [json.dumps(path), built.module, built.handler, json.dumps(site.getsitepackages())]
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-S", "-E", "-c", _IMPORT, *argv],
            env={**env, "AWS_LAMBDA_FUNCTION_NAME": built.logical_id},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        wall = int((time.perf_counter() - started) * 1000)
        if done.returncode == 0:
            report = json.loads(done.stdout.strip().splitlines()[-1])
            host = f"; host build of {', '.join(report['host'])}" if report["host"] else ""
            print(
                f"ok   {built.logical_id}: {built.module}.{built.handler} imports "
                f"({report['ms']} ms import, {wall} ms process{host})"
            )
        else:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            problems.append(f"{built.logical_id}: {built.module}.{built.handler}: {last}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    build_dir = Path(args[0] if args else ".aws-sam/build")
    try:
        template = _built_template(build_dir)
    except FileNotFoundError as exc:
        print(f"build-check: {exc}", file=sys.stderr)
        return 2
    if not built_functions(build_dir, template):
        print(f"build-check: no functions in {build_dir}/template.yaml", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mls-sync-runtime-") as tmp:
        problems = check_imports(build_dir, template, runtime_dir(Path(tmp)))
    count, native = native_problems(build_dir)
    problems += native
    if count == 0:
        print(
            "note: no native extensions in the build output (is the layer's "
            "requirements.txt there?)"
        )
    else:
        print(f"{'ok  ' if not native else 'FAIL'} {count} native extension(s) checked for aarch64")
    for problem in problems:
        print(f"build-check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
