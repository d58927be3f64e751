"""Cold start: each handler's ``import`` + first init beside the bare bundle, in one run.

Every sample is a fresh interpreter (``python -c``), like a new Lambda execution
environment, that cannot import what the dev environment has and the Lambda layer does not
(``NOT_IN_LAMBDA``). Inside it the child measures, with ``time.process_time``:

- **import**: ``import functions.<name>.app`` (what Lambda's INIT phase runs);
- **init**: building the handler's dependencies as its first invocation does (settings,
  boto3 clients, repositories, the MLS client factory, ...), with no network: resource
  names, region and fake credentials come from the environment, and nothing calls AWS;
- **first job**: what the handler's first job loads that its import + init do not
  (``FIRST_USE``: the MLS and platform clients' guarded transport, Powertools' secrets
  provider), run right after init: a cut that moves work to the first invocation shows
  as moved, not gone;

and its peak RSS (``VmHWM``, after the first job's loads). The **bare bundle** is what any
handler of this stack needs at the least: ``import boto3, pydantic, httpx``, Powertools
``Logger`` and ``Metrics`` created, and one boto3 client (the goal is against it). Two of
its imports load only a shell: ``import pydantic`` is lazy (``BaseModel`` and the schema
machinery load on first use, ~0.15-0.2 s here) and ``import httpx`` leaves out its transport
(``httpcore``, loaded when a client is made). The row "bare bundle + pydantic" also defines
and validates one pydantic model: the floor for a handler that validates anything with
pydantic. The row "bare bundle in use" opens one ``httpx.Client`` as well: what the
libraries cost once used, the floor for a handler that parses events and calls an HTTP API;
each handler's ratio to it is reported too. Samples alternate (the bare rows, every handler,
in a rotating order) for ``ROUNDS`` rounds so that the machine's noise falls on all of them
alike; the figures are medians and the ratio is handler ÷ bare of the medians of import +
init CPU.

After the rounds, a pass of ``CLASS_ROUNDS`` samples a handler (tracing off) clocks the
building of classes inside its import (pydantic's ``ModelMetaclass.__new__`` and
``dataclasses._process_class``, each at its outermost call), with pydantic's schema
machinery loaded first and left out of the import's time (the row "bare bundle + pydantic"
shows it): how much of a handler's own import is defining its models and dataclasses. It
is a pass of its own because the clocks cost a little; the rows above are measured without
them.

Goal (issue 16): every handler's import + init <= 1.3x the bare bundle, tracing off
(``POWERTOOLS_TRACE_DISABLED=true``, as in the local runtime and the tests). The same
handlers are also measured with tracing on (in Lambda with ``Tracing: Active``): there the
X-Ray SDK is imported and patched in, and its cost is shown, not hidden.

No child writes bytecode (``PYTHONDONTWRITEBYTECODE``, as Lambda's read-only code): our
modules are compiled in every sample, as at a Lambda cold start without a valid ``.pyc``;
the libraries load what the venv holds (its installer wrote no ``.pyc`` for pydantic, httpx
or Powertools, so they are compiled too, on both sides alike). ``make build`` ships
checked-hash bytecode for all of it, which takes that cost off in Lambda:
``MLS_SYNC_BENCH_BYTECODE=1`` measures that case, every module a sample imports (standard
library, libraries, our code) loaded from checked-hash bytecode in a cache of the run's own
(``PYTHONPYCACHEPREFIX``), written by one unmeasured pass of every kind first.

``MLS_SYNC_BENCH_ROUNDS`` overrides the number of rounds (default 7).
``MLS_SYNC_BENCH_BEFORE=<another checkout>`` (e.g. a ``git worktree`` of an older commit)
adds that checkout's handlers, tracing off, to the same alternation: before and after
side by side in one run.
"""

from __future__ import annotations

import json
import os
import py_compile
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from mls_sync.config import stack_environment

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("MLS_SYNC_BENCH_ROUNDS", "7"))
BEFORE = os.environ.get("MLS_SYNC_BENCH_BEFORE")
BYTECODE = os.environ.get("MLS_SYNC_BENCH_BYTECODE") == "1"
GOAL_RATIO = 1.3
CLASS_ROUNDS = 3

# How each handler's first invocation builds its dependencies: the module-level builder it
# calls (cached per process). A handler missing here is an error, not a silent skip.
INIT: dict[str, str] = {
    "dispatcher": "default_deps",
    "manual_sync": "default_manual_deps",
    "publisher": "default_deps",
    "push": "default_push_deps",
    "worker": "default_sync_deps",
}

# What a handler's first job loads and its import + init no longer do (issue 16 moved it
# there), run after init in the same child; "" for a handler whose init loads it all. A
# BEFORE checkout runs the same code, already loaded: its first-job figure is ~0.
_GUARDED_CLIENT = (
    "from mls_sync.nettransport import guarded_client\n"
    "guarded_client(allow_loopback=False).close()\n"
)
_SECRETS_PROVIDER = "import aws_lambda_powertools.utilities.parameters.secrets\n"
FIRST_USE: dict[str, str] = {
    "dispatcher": "",
    "manual_sync": "",
    "publisher": _GUARDED_CLIENT + _SECRETS_PROVIDER,  # a takedown: platform call, token
    "push": _SECRETS_PROVIDER,  # the connection's push token
    "worker": _GUARDED_CLIENT + _SECRETS_PROVIDER,  # the MLS client and its credential
}

# Modules whose presence after import + init says what was paid for.
WATCHED = (
    "aws_xray_sdk",
    "aws_lambda_powertools.utilities.parser",
    "httpx",
    "aws_lambda_powertools.utilities.idempotency",
)

# Installed here (dev tools) but not in the Lambda layer (layers/core/requirements.txt):
# httpx imports its command line's click and pygments when it finds them (~0.1 s). The
# child hides them, so every sample imports what Lambda would.
NOT_IN_LAMBDA = ("click", "pygments", "rich")

CHILD = textwrap.dedent(
    """
    import importlib, json, os, resource, sys, time
    sys.modules.update(dict.fromkeys(os.environ["BENCH_NOT_IN_LAMBDA"].split(","), None))
    kind, builder, first_use = sys.argv[1], sys.argv[2], sys.argv[3]
    watched = sys.argv[4:]
    classes = {}
    t0 = time.process_time()
    if kind in ("bare", "bare-pydantic", "bare-in-use"):
        import boto3, httpx, pydantic
        from aws_lambda_powertools import Logger, Metrics
        Logger()
        Metrics()
        if kind in ("bare-pydantic", "bare-in-use"):
            class Job(pydantic.BaseModel):
                job_id: str
            Job.model_validate({"job_id": "j-1"})
        t1 = time.process_time()
        boto3.session.Session().client("dynamodb")
        if kind == "bare-in-use":
            httpx.Client().close()
    else:
        if os.environ.get("BENCH_CLASS_CLOCK") == "1":
            # What building classes costs of the import: pydantic models and dataclasses,
            # each clocked at its outermost call (a separate pass: the clocks cost a little).
            import dataclasses
            import pydantic
            from pydantic._internal import _model_construction as construction
            # pydantic's schema machinery loads with the first model (the row "bare bundle +
            # pydantic" pays it): loaded here first, unclocked, so the figures are our
            # classes' own, and the import is timed from here.
            class Warm(pydantic.BaseModel):
                warm: int
            Warm.model_validate({"warm": 1})
            t0 = time.process_time()
            def clocked(what, build, module_of):
                # [count, seconds] for all classes, and for ours (mls_sync, functions) alone
                classes[what] = [0, 0.0, 0, 0.0]
                depth = [0]
                def wrapper(*args, **kwargs):
                    depth[0] += 1
                    start = time.process_time()
                    try:
                        return build(*args, **kwargs)
                    finally:
                        depth[0] -= 1
                        if depth[0] == 0:
                            spent = time.process_time() - start
                            tally = classes[what]
                            tally[0] += 1
                            tally[1] += spent
                            if str(module_of(args)).startswith(("mls_sync", "functions")):
                                tally[2] += 1
                                tally[3] += spent
                return wrapper
            meta = construction.ModelMetaclass
            # ModelMetaclass.__new__(mcs, name, bases, namespace, ...); _process_class(cls, ...)
            meta.__new__ = clocked("models", meta.__new__, lambda a: a[3].get("__module__"))
            dataclasses._process_class = clocked(
                "dataclasses", dataclasses._process_class, lambda a: a[0].__module__
            )
        module = importlib.import_module(f"functions.{kind}.app")
        t1 = time.process_time()
        getattr(module, builder)()
    t2 = time.process_time()
    loaded = [m for m in watched if m in sys.modules]
    exec(first_use)
    t3 = time.process_time()
    # VmHWM: this image's peak RSS (ru_maxrss also counts the parent's, from before exec).
    try:
        with open("/proc/self/status") as status:
            hwm = [l for l in status if l.startswith("VmHWM:")][0]
        peak_kb = int(hwm.split()[1])
    except (OSError, IndexError):
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "import_s": t1 - t0,
        "classes": classes,
        "init_s": t2 - t1,
        "first_use_s": t3 - t2,
        "maxrss_kb": peak_kb,
        "modules": len(sys.modules),
        "loaded": loaded,
    }))
    """
)

SETTINGS_ENV = {
    # Every resource name the template gives a function (new tables come with the helper).
    **stack_environment("bench"),
    "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-sync.fifo",
    "UNPUBLISH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-unpublish",
    "UNPUBLISH_ON_STATUSES": "sold",
    "SCHEDULE_EXPRESSION": "rate(15 minutes)",
    "UNPUBLISH_MAX_RECEIVES": "5",  # the publisher's own (template.yaml)
}


def handlers() -> list[str]:
    found = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    missing = [name for name in found if name not in INIT]
    if missing:
        raise SystemExit(f"bench cold_start: no init builder known for {', '.join(missing)}")
    return found


def child_env(
    *, tracing: bool, root: Path = ROOT, pycache: Path | None = None, write: bool = False
) -> dict[str, str]:
    """A Lambda-like environment with nothing that could reach AWS: fake credentials, no
    endpoint, no profile, no instance metadata; ``root``'s code first on the path; bytecode
    from ``pycache`` only when given, and written there only when ``write``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "POWERTOOLS_", "MLS_SYNC_", "LAMBDA_", "_X_AMZN"))
        and k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")
    }
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if not write:
        # As Lambda's read-only code: a sample never leaves bytecode for the next one.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(root / "layers" / "core"), str(root)])
    env["BENCH_NOT_IN_LAMBDA"] = ",".join(NOT_IN_LAMBDA)
    env.update(SETTINGS_ENV)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": "bench-cold-start",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(root),
            "POWERTOOLS_SERVICE_NAME": "mls-sync",
            "POWERTOOLS_METRICS_NAMESPACE": "MlsSync",
        }
    )
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def sample(
    kind: str,
    *,
    tracing: bool,
    root: Path = ROOT,
    pycache: Path | None = None,
    write: bool = False,
    class_clock: bool = False,
) -> dict[str, Any]:
    builder = INIT.get(kind, "-")
    env = child_env(tracing=tracing, root=root, pycache=pycache, write=write)
    if class_clock:
        env["BENCH_CLASS_CLOCK"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, builder, FIRST_USE.get(kind, ""), *WATCHED],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench cold_start: {kind} failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime
    )
    return figures


def write_bytecode(kinds: list[tuple[str, bool, Path]], pycache: Path) -> None:
    """Checked-hash bytecode (PEP 552, as ``make build`` ships it) in ``pycache`` for every
    module the samples of ``kinds`` import: one unmeasured sample of each writes it (the
    interpreter's own, by timestamp), then each file is compiled again by source hash."""
    for kind, tracing, root in kinds:
        sample(kind, tracing=tracing, root=root, pycache=pycache, write=True)
    for cfile in pycache.rglob("*.pyc"):
        name = cfile.name.split(".")[0] + ".py"
        source = Path("/") / cfile.parent.relative_to(pycache) / name
        if source.is_file():
            py_compile.compile(
                str(source),
                cfile=str(cfile),
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            )


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    total = [s["import_s"] + s["init_s"] for s in samples]
    return {
        "import_s": round(statistics.median(s["import_s"] for s in samples), 4),
        "init_s": round(statistics.median(s["init_s"] for s in samples), 4),
        "import_init_s": round(statistics.median(total), 4),
        "import_init_all_s": [round(t, 4) for t in total],
        "first_use_s": round(statistics.median(s["first_use_s"] for s in samples), 4),
        "process_cpu_s": round(statistics.median(s["process_cpu_s"] for s in samples), 4),
        "peak_rss_mb": round(statistics.median(s["maxrss_kb"] for s in samples) / 1024, 1),
        "modules": int(statistics.median(s["modules"] for s in samples)),
        "loaded": samples[-1]["loaded"],
    }


def _classes(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of a handler's class-clock samples: its import, and how many pydantic models and
    dataclasses it built and in how long (ours: those of ``mls_sync`` and ``functions``), with
    the share of the import that building ours took."""

    def median(what: str, i: int) -> float:
        return float(statistics.median(s["classes"][what][i] for s in samples))

    import_s = statistics.median(s["import_s"] for s in samples)
    ours_s = median("models", 3) + median("dataclasses", 3)
    return {
        "import_s": round(import_s, 4),
        "models": int(median("models", 0)),
        "models_ms": round(median("models", 1) * 1000, 1),
        "our_models": int(median("models", 2)),
        "our_models_ms": round(median("models", 3) * 1000, 1),
        "dataclasses": int(median("dataclasses", 0)),
        "dataclasses_ms": round(median("dataclasses", 1) * 1000, 1),
        "our_dataclasses": int(median("dataclasses", 2)),
        "our_dataclasses_ms": round(median("dataclasses", 3) * 1000, 1),
        "our_share": round(ours_s / import_s, 2),
    }


def run(out: Path) -> dict[str, Any]:
    del out  # bench/__main__ writes the returned figures
    names = handlers()
    here, before = ROOT, Path(BEFORE).resolve() if BEFORE else None
    # (name, tracing, root): the bare bundles, every handler tracing off and on, and the
    # handlers of the BEFORE checkout (tracing off) when one is named.
    kinds: list[tuple[str, bool, Path]] = [
        ("bare", False, here),
        ("bare-pydantic", False, here),
        ("bare-in-use", False, here),
    ]
    kinds += [(name, False, here) for name in names]
    kinds += [(name, True, here) for name in names]
    if before is not None:
        kinds += [(name, False, before) for name in names]
    samples: dict[tuple[str, bool, Path], list[dict[str, Any]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="cold_start-pycache-") as tmp:
        pycache = Path(tmp) if BYTECODE else None
        if pycache is not None:
            write_bytecode(kinds, pycache)
        for round_no in range(ROUNDS):
            shift = round_no % len(kinds)
            for kind, tracing, root in kinds[shift:] + kinds[:shift]:
                figures = sample(kind, tracing=tracing, root=root, pycache=pycache)
                samples[(kind, tracing, root)].append(figures)
            print(f"round {round_no + 1}/{ROUNDS} done", flush=True)
        # Where a handler's import goes: a pass of its own, with the class clocks on.
        clocked: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for _ in range(CLASS_ROUNDS):
            for name in names:
                clocked[name].append(sample(name, tracing=False, pycache=pycache, class_clock=True))
    bare = _summary(samples[kinds[0]])
    with_pydantic = _summary(samples[kinds[1]])
    with_pydantic["ratio"] = round(with_pydantic["import_init_s"] / bare["import_init_s"], 2)
    in_use = _summary(samples[kinds[2]])
    in_use["ratio"] = round(in_use["import_init_s"] / bare["import_init_s"], 2)
    rows: list[dict[str, Any]] = []
    for name, tracing, root in kinds[3:]:
        row = {
            "handler": name,
            "tracing": tracing,
            "checkout": "this" if root == here else str(root),
            **_summary(samples[(name, tracing, root)]),
        }
        row["ratio"] = round(row["import_init_s"] / bare["import_init_s"], 2)
        row["ratio_in_use"] = round(row["import_init_s"] / in_use["import_init_s"], 2)
        row["within_goal"] = tracing or root != here or row["ratio"] <= GOAL_RATIO
        rows.append(row)
    print(
        f"{'':<26}{'import':>8}{'init':>8}{'total':>8}{'ratio':>7}{'in use':>8}"
        f"{'1st job':>8}{'process':>9}{'RSS MB':>8}  loaded"
    )

    def line(label: str, r: dict[str, Any], ratio: str, ratio_in_use: str) -> None:
        print(
            f"{label:<26}{r['import_s']:>8.3f}{r['init_s']:>8.3f}{r['import_init_s']:>8.3f}"
            f"{ratio:>7}{ratio_in_use:>8}{r['first_use_s']:>8.3f}{r['process_cpu_s']:>9.3f}"
            f"{r['peak_rss_mb']:>8.1f}  " + (", ".join(r["loaded"]) or "-")
        )

    line("bare bundle", bare, "1.00", "")
    line("bare bundle + pydantic", with_pydantic, f"{with_pydantic['ratio']:.2f}", "")
    line("bare bundle in use", in_use, f"{in_use['ratio']:.2f}", "1.00")
    for row in rows:
        label = row["handler"] + (" (tracing on)" if row["tracing"] else "")
        label += " (before)" if row["checkout"] != "this" else ""
        line(label, row, f"{row['ratio']:.2f}", f"{row['ratio_in_use']:.2f}")
    classes = {name: _classes(clocked[name]) for name in names}
    print(
        f"\nclass building inside the import, tracing off ({CLASS_ROUNDS} samples, medians;"
        " all classes / ours):\n"
        f"{'':<26}{'import':>8}{'models':>10}{'ms':>12}{'dataclasses':>13}{'ms':>12}"
        f"{'ours':>7}"
    )
    for name, c in classes.items():
        print(
            f"{name:<26}{c['import_s']:>8.3f}{c['models']:>5} / {c['our_models']:<3}"
            f"{c['models_ms']:>6.1f} / {c['our_models_ms']:<4.1f}"
            f"{c['dataclasses']:>8} / {c['our_dataclasses']:<3}"
            f"{c['dataclasses_ms']:>6.1f} / {c['our_dataclasses_ms']:<4.1f}{c['our_share']:>6.0%}"
        )
    off = [r for r in rows if not r["tracing"] and r["checkout"] == "this"]
    verdict = "ok" if all(r["within_goal"] for r in off) else "OVER GOAL"
    print(f"goal: every handler <= {GOAL_RATIO}x the bare bundle, tracing off: {verdict}")
    print("bytecode: " + ("every module, checked-hash" if BYTECODE else "none, all compiled"))
    return {
        "command": f"{Path(sys.executable).name} -m bench cold_start",
        "rounds": ROUNDS,
        "before": BEFORE,
        "load_average": os.getloadavg(),
        "goal_ratio": GOAL_RATIO,
        "bare": bare,
        "bare_with_pydantic": with_pydantic,
        "bare_in_use": in_use,
        "bytecode": BYTECODE,
        "handlers": rows,
        "class_building": classes,
        "within_goal": all(r["within_goal"] for r in off),
    }
