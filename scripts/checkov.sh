#!/usr/bin/env bash
# `make checkov`: checkov on template.yaml, in its own tool environment (.tools/checkov:
# checkov pins boto3==1.35.x, which must not touch .venv). 0 failed checks required; each
# suppression lives in the template (Metadata.checkov.skip) with its reason.
# When checkov cannot be installed here (no package registry), it says NOT RUN with the
# reason and exits 3: never a green line for a check that did not run.
set -uo pipefail
cd "$(dirname "$0")/.."
tools=${CHECKOV_VENV:-.tools/checkov}
version=3.3.30
uv_version=0.13.9
if [ ! -x "$tools/bin/checkov" ]; then
  python=$(scripts/find-python.sh 2>/dev/null) \
    || { echo "checkov: NOT RUN (no Python >= 3.11 found)" >&2; exit 3; }
  log=$(mktemp)
  if ! { "$python" -m venv "$tools" \
         && "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version" \
         && "$tools/bin/uv" pip install --quiet --python "$tools/bin/python" "checkov==$version"; } \
       >"$log" 2>&1; then
    reason=$(grep -iE "error|could not|failed|no matching" "$log" | grep -v "is ignored" | head -1)
    echo "checkov: NOT RUN (cannot install checkov==$version: ${reason:-see the pip output})" >&2
    rm -rf "$tools" "$log"
    exit 3
  fi
  rm -f "$log"
fi
out=$(mktemp)
# --skip-download: otherwise checkov calls its vendor's API (unreachable here) and prints a
# traceback; the checks themselves ship with the package.
"$tools/bin/checkov" -f template.yaml --framework cloudformation --compact --quiet \
  --skip-download >"$out" 2>&1
rc=$?
summary=$(grep -oE "Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+" "$out" | head -1)
if [ -z "$summary" ]; then
  cat "$out" >&2
  echo "checkov: NOT RUN (it printed no result; exit $rc)" >&2
  rm -f "$out"
  exit 3
fi
failed=$(sed -E 's/.*Failed checks: ([0-9]+).*/\1/' <<<"$summary")
if [ "$failed" != "0" ] || [ "$rc" -ne 0 ]; then
  cat "$out"
  echo "checkov: FAILED: $summary" >&2
  rm -f "$out"
  exit 1
fi
rm -f "$out"
echo "checkov: $summary (every skip's reason: template.yaml, Metadata.checkov.skip)"
